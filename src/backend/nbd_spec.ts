/**
 * Describing a disk on an NBD server: the export its URI names is probed
 * once, on the thread that configures the device (one connection: the
 * fixed-newstyle handshake, then a soft disconnect), and checked against
 * ACRN's options; the structured-cloneable {@linkcode NbdBackendSpec} it
 * returns is what every I/O thread connects with (`nbd_driver.ts`).
 *
 * What the export decides:
 * - its size is the device's (a multiple of 512, which the client checks),
 *   or `range=` chooses a window inside it;
 * - a read-only export (NBD_FLAG_READ_ONLY) makes the device read-only;
 * - FLUSH and CONFIG_WCE are offered when it has NBD_FLAG_SEND_FLUSH,
 *   DISCARD (with `discard`) when it has SEND_TRIM, WRITE_ZEROES when it
 *   has SEND_WRITE_ZEROES;
 * - its minimum block size must not exceed the device's logical block size
 *   (`sectorsize=`): requests the guest aligns to its blocks then obey it;
 * - how many connections: one per I/O thread with NBD_FLAG_CAN_MULTI_CONN,
 *   else one for the device (see `nbd_driver.ts`).
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { NbdClient } from "../nbd/client.ts";
import { parseNbdUri } from "../nbd/uri.ts";
import { NBD_DRIVER, type NbdBackendSpec, type NbdConnectionSettings } from "./nbd_driver.ts";
import { deviceWindow, rangeBytes, type SectorRange } from "./range_window.ts";
import { validateSectorSize } from "./sector_size.ts";

export type { NbdBackendSpec, NbdConnectionSettings };

/** ACRN's options that apply to an NBD export, and how its connections behave. */
export interface NbdOptions {
  /** `ro`: refuse writes (a read-only export is read-only whatever this says). Default false. */
  readonly readOnly?: boolean;
  /**
   * `range=<start>/<size>`: the device sees only this window of the export.
   * Both numbers count logical blocks (`logicalBlockSize` bytes each).
   */
  readonly range?: SectorRange;
  /** `sectorsize=<logical>`: logical block size, a power of two >= 512 (default 512). */
  readonly logicalBlockSize?: number;
  /** `sectorsize=<logical>/<physical>`: a power of two >= logical (default logical). */
  readonly physicalBlockSize?: number;
  /**
   * Timeouts and limits of every connection (the client's defaults where
   * absent, except `requestTimeoutMs`: {@linkcode NBD_DEVICE_REQUEST_TIMEOUT_MS}).
   */
  readonly connection?: NbdConnectionSettings;
}

/**
 * How long a disk's request may wait for the server (or for a connection to
 * it) before it fails with IOERR: 15 s, half of the 30 s a Linux guest's
 * block layer (and the built-in guest) waits before it gives up on a
 * request, so the guest sees the error status rather than its own timeout.
 */
export const NBD_DEVICE_REQUEST_TIMEOUT_MS = 15_000;

/**
 * Probes the export `uri` names and describes the device built on it. Pass
 * the same `logicalBlockSize`/`physicalBlockSize` to the device, since they
 * are what `range` was counted in.
 *
 * @param uri `nbd://host[:port]/export` or `nbd+unix:///export?socket=/path`
 * @param options ACRN's options that apply to an export
 * @returns the spec every thread connects with
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a bad URI or option (sector
 *   size, range shape, a range outside the export, a logical block size
 *   below the export's minimum), `UNSUPPORTED` for TLS, `BAD_BACKING_FILE`
 *   for an export that cannot back a device (unreachable, refused, a size
 *   that is not a multiple of 512, a broken handshake)
 *
 * @example
 * ```ts
 * const spec = await describeNbd("nbd://127.0.0.1:10809/disk", { range: { start: 8, size: 2048 } });
 * // spec.offset === 4096, spec.size === 1 MiB
 * ```
 */
export async function describeNbd(uri: string, options: NbdOptions = {}): Promise<NbdBackendSpec> {
  const { logical } = validateSectorSize(options.logicalBlockSize, options.physicalBlockSize);
  const address = parseNbdUri(uri);
  const window = options.range === undefined ? undefined : rangeBytes(options.range, logical);
  const connection = {
    requestTimeoutMs: NBD_DEVICE_REQUEST_TIMEOUT_MS,
    ...options.connection,
  };
  const probe = await NbdClient.connect(address, {
    connectTimeoutMs: connection.connectTimeoutMs,
    structuredReplies: connection.structuredReplies,
  });
  await probe.close();
  const info = probe.export;
  if (info.minimumBlock > logical) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `${uri}: the export's minimum block size is ${info.minimumBlock} bytes, larger than the ` +
        `logical block size ${logical}; use sectorsize=${info.minimumBlock}`,
    );
  }
  const { offset, size, windowed } = deviceWindow(
    `export ${uri}`,
    info.size,
    options.range,
    window,
  );
  return {
    module: NBD_DRIVER,
    kind: "nbd",
    name: windowed ? `${uri} bytes ${offset}-${offset + size}` : uri,
    uri,
    export: info,
    offset,
    size,
    windowed,
    readOnly: (options.readOnly ?? false) || info.readOnly,
    capabilities: {
      flush: info.canFlush,
      // NBD_CMD_TRIM and NBD_CMD_WRITE_ZEROES (nbd_io_queue.ts).
      discard: info.canTrim,
      writeZeroes: info.canWriteZeroes,
      handles: info.canMultiConn ? "async" : "exclusive",
    },
    connection,
  };
}
