/**
 * The backend driver of disks on an NBD server (`nbd://host[:port]/export`,
 * `nbd+unix:///export?socket=/path`): the export is probed once, on the
 * thread that configures the device (`src/backend/nbd_spec.ts`), and each
 * I/O thread that serves it opens a connection of its own as an
 * asynchronous I/O queue ({@linkcode NbdIoQueue}) whose completions arrive
 * on the thread's event loop. It registers itself when imported.
 *
 * How many connections: the export's capabilities say how threads may hold
 * it. One that offers NBD_FLAG_CAN_MULTI_CONN is `"async"`: every I/O
 * thread has its own connection (proto.md lets a FLUSH on any connection
 * cover writes completed on all of them). Otherwise it is `"exclusive"`:
 * the engine serves the device from one thread, so the device has one
 * connection, with many requests in flight on it.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import type { NbdClientOptions } from "../nbd/client.ts";
import type { NbdExport } from "../nbd/export_info.ts";
import { backendDrivers, type BackendSpec } from "./backend.ts";
import { NbdIoQueue } from "./nbd_io_queue.ts";

/** How each thread's connection behaves: the client's timeouts and limits (plain data). */
export type NbdConnectionSettings = Pick<
  NbdClientOptions,
  | "requestTimeoutMs"
  | "connectTimeoutMs"
  | "reconnectDelayMs"
  | "maxReconnectDelayMs"
  | "maxInFlight"
  | "structuredReplies"
>;

/** An export on an NBD server (see `src/backend/nbd_spec.ts`). */
export interface NbdBackendSpec extends BackendSpec {
  /** Tells this spec from other drivers' specs. */
  readonly kind: "nbd";
  /** The export's URI, as the user gave it. */
  readonly uri: string;
  /** The export as the probe negotiated it: every thread's connection must find the same. */
  readonly export: NbdExport;
  /** Byte offset of the device's first byte in the export (`range=`). */
  readonly offset: number;
  /** Whether `range=` chose the window (`offset`, `size`); part of the medium's name. */
  readonly windowed?: boolean;
  /** Timeouts and limits of each connection (the client's defaults where absent). */
  readonly connection: NbdConnectionSettings;
}

/** The URL NBD specs name as their driver. */
export const NBD_DRIVER: string = import.meta.url;

/** Whether `spec` describes an NBD export. */
export function isNbdSpec(spec: BackendSpec): spec is NbdBackendSpec {
  return spec.module === NBD_DRIVER;
}

backendDrivers.register(NBD_DRIVER, {
  open(spec) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `${spec.name}: an NBD export has no synchronous handle; it is served through its I/O queue`,
    );
  },
  openQueue(spec, thread) {
    return new NbdIoQueue(spec as NbdBackendSpec, thread);
  },
});
