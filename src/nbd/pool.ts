/**
 * Several connections to one export, when the server allows it: proto.md
 * says clients SHOULD NOT use more than one connection unless the export
 * sets NBD_FLAG_CAN_MULTI_CONN ("Transmission flags"), which promises that
 * a FLUSH or FUA on any connection covers writes completed on all of them.
 * So a pool opens one connection, reads the flag, and opens the rest only
 * if it is set; every connection must find the same export.
 *
 * Two ways to use it:
 * - in one thread: {@linkcode NbdPool.open}, then {@linkcode NbdPool.client}
 *   per I/O thread index (or round robin);
 * - one connection per worker thread (a client lives on the thread that
 *   made it): open one client on the main thread, let
 *   {@linkcode connectionCount} say how many threads may have their own,
 *   and give each thread the URI and `export` (plain data) to pass as
 *   {@linkcode NbdClientOptions.expect}, with `multiConn: true` when there
 *   are several.
 *
 * @module
 */

import { NbdClient, type NbdClientOptions } from "./client.ts";
import type { NbdExport } from "./export_info.ts";
import { type NbdAddress, parseNbdUri } from "./uri.ts";

/** How many connections to use for `wanted` threads: `wanted` with CAN_MULTI_CONN, else 1. */
export function connectionCount(info: NbdExport, wanted: number): number {
  return info.canMultiConn ? Math.max(1, wanted) : 1;
}

/** Connections to one export. */
export class NbdPool implements AsyncDisposable {
  /** The connections (one unless the export allows several). */
  readonly clients: readonly NbdClient[];

  private constructor(clients: NbdClient[]) {
    this.clients = clients;
  }

  /**
   * Opens up to `wanted` connections to `uri`'s export (one if it does not
   * offer CAN_MULTI_CONN), each with `options`.
   *
   * @throws VirtioBlkError as {@linkcode NbdClient.connect} does; nothing stays open
   */
  static async open(
    uri: string | NbdAddress,
    wanted: number,
    options: NbdClientOptions = {},
  ): Promise<NbdPool> {
    const address = typeof uri === "string" ? parseNbdUri(uri) : uri;
    // Every connection of several must keep CAN_MULTI_CONN across reconnections.
    const shared = { ...options, multiConn: wanted > 1 };
    const first = await NbdClient.connect(address, shared);
    const more = connectionCount(first.export, wanted) - 1;
    const others = await Promise.allSettled(
      Array.from(
        { length: more },
        () => NbdClient.connect(address, { ...shared, expect: first.export }),
      ),
    );
    const opened = [
      first,
      ...others.flatMap((result) => result.status === "fulfilled" ? [result.value] : []),
    ];
    const failure = others.find((result) => result.status === "rejected");
    if (failure !== undefined) {
      await Promise.all(opened.map((client) => client.close()));
      throw (failure as PromiseRejectedResult).reason;
    }
    return new NbdPool(opened);
  }

  /** The export (every connection's). */
  get export(): NbdExport {
    return this.clients[0].export;
  }

  /** The connection for thread `index`: each its own while there are enough, then shared round robin. */
  client(index: number): NbdClient {
    return this.clients[index % this.clients.length];
  }

  /** Closes every connection (see {@linkcode NbdClient.close}). */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close()));
  }

  /** {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
