/**
 * Describing an OPFS file as a medium: checks ACRN's options (`ro`,
 * `range=`, `sectorsize=`) as for files, probes the file and the browser
 * in a worker (`opfs_probe.ts`), and returns the structured-cloneable
 * {@linkcode OpfsBackendSpec} every blockif thread opens its own handle
 * from. Describing never creates or changes the file. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { deviceWindow, rangeBytes, type SectorRange } from "../range_window.ts";
import { validateSectorSize } from "../sector_size.ts";
import { opfsPathParts } from "./opfs_api.ts";
import { OPFS_DRIVER, type OpfsBackendSpec } from "./opfs_driver.ts";
import { probeOpfsFile } from "./opfs_probe.ts";

/** ACRN's backing-file options, for an OPFS file. */
export interface OpfsOptions {
  /** `ro`: the device offers VIRTIO_BLK_F_RO and threads open read-only handles. */
  readonly readOnly?: boolean;
  /** `range=<start>/<size>` in logical blocks: the device sees only this window. */
  readonly range?: SectorRange;
  /** `sectorsize=<logical>`: a power of two >= 512 (default 512); what `range` counts. */
  readonly logicalBlockSize?: number;
  /** `sectorsize=<logical>/<physical>` (default logical). */
  readonly physicalBlockSize?: number;
}

/**
 * Checks the OPFS file at `path` against `options` and describes the
 * device built on it. Pass the same block sizes to the device.
 *
 * @param path the file's path in the origin's OPFS (`disks/debian.img`)
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a bad option or path;
 *   `BAD_BACKING_FILE` for a missing, empty, odd-sized or busy file;
 *   `UNSUPPORTED` without OPFS, or where access handles refuse views of
 *   guest memory
 *
 * @example
 * ```ts
 * const backend = await describeOpfsFile("disks/debian.img", { range: { start: 2048, size: 8192 } });
 * ```
 */
export async function describeOpfsFile(
  path: string,
  options: OpfsOptions = {},
): Promise<OpfsBackendSpec> {
  const { logical } = validateSectorSize(options.logicalBlockSize, options.physicalBlockSize);
  const readOnly = options.readOnly ?? false;
  const bytes = options.range === undefined ? undefined : rangeBytes(options.range, logical);
  const normal = opfsPathParts(path).join("/");
  const probe = await probeOpfsFile(normal, readOnly);
  if (!probe.sharedViews) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `OPFS file ${normal}: this browser's FileSystemSyncAccessHandle refuses views of a ` +
        `SharedArrayBuffer (guest memory)`,
    );
  }
  const window = deviceWindow(`OPFS file ${normal}`, probe.size, options.range, bytes);
  const name = window.windowed
    ? `opfs:${normal} bytes ${window.offset}-${window.offset + window.size}`
    : `opfs:${normal}`;
  return {
    module: OPFS_DRIVER,
    kind: "opfs",
    name,
    path: normal,
    offset: window.offset,
    size: window.size,
    ...(window.windowed ? { windowed: true } : {}),
    readOnly,
    mode: readOnly ? "read-only" : probe.modes ? "readwrite-unsafe" : "readwrite",
    capabilities: {
      flush: true,
      discard: false,
      writeZeroes: false,
      // Without handle modes a handle locks the file: one thread serves it.
      handles: probe.modes ? "per-thread" : "exclusive",
    },
  };
}
