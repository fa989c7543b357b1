/**
 * Describing a backing file: checks a regular file or block device against
 * ACRN's options (reference §5) once, on the thread that configures the
 * device, and returns the structured-cloneable {@linkcode FileBackendSpec}
 * every I/O thread opens its own handle from.
 *
 * Checking never creates, truncates or writes the file: it is inspected
 * through a read-only descriptor, and writability is tested by opening it
 * for writing without create or truncate and closing it unused.
 *
 * Durability contract of the backends opened from the spec: in
 * write-through mode the executor calls `flush()` (fdatasync) after each
 * write and before completing it; in write-back mode only a FLUSH request
 * calls it. fdatasync through any descriptor of a file makes the writes made
 * through every descriptor of it stable (the page cache is per inode), which
 * is why one handle per worker is enough.
 *
 * @module
 */

import * as fs from "node:fs";
import { resolve } from "node:path";
import { VirtioBlkError } from "../errors.ts";
import { isDeno } from "../runtime/is_deno.ts";
import { FILE_DRIVER, type FileBackendSpec } from "./file_driver.ts";
import { IoUring } from "../io/io_uring/ring.ts";
import { ioUringUnavailable } from "../io/io_uring/sys.ts";
import { isReadOnlyDevice, probeDeviceSize, seekDeviceSize } from "./block_device.ts";
import { fileSpaceUnavailable } from "./file_space.ts";
import { errnoName, errorText, openFailure, type OpenPurpose } from "./file_errors.ts";
import { notRawMessage, readImageFormat } from "./image_format.ts";
import { deviceWindow, rangeBytes } from "./range_window.ts";
import { validateSectorSize } from "./sector_size.ts";

/** Which I/O implementation opens the file. */
export type FileIo = FileBackendSpec["io"];

/** ACRN's backing-file options. */
export interface FileOptions {
  /** `ro`: open read-only (the device then offers VIRTIO_BLK_F_RO). Default false. */
  readonly readOnly?: boolean;
  /**
   * `range=<start>/<size>`: the device sees only this window of the file.
   * Both numbers count logical blocks (`logicalBlockSize` bytes each).
   */
  readonly range?: { readonly start: number; readonly size: number };
  /** `sectorsize=<logical>`: logical block size, a power of two >= 512 (default 512). */
  readonly logicalBlockSize?: number;
  /** `sectorsize=<logical>/<physical>`: a power of two >= logical (default logical). */
  readonly physicalBlockSize?: number;
  /**
   * Which I/O each thread uses: `"fsfile"` (Deno.FsFile, Deno only) or
   * `"node-fs"` (positional node:fs, Deno and Node). Default: `"fsfile"`
   * on Deno, `"node-fs"` elsewhere or when `direct` is set.
   */
  readonly io?: FileIo;
  /** `nocache`: open with O_DIRECT (node-fs only, Linux). Default false. */
  readonly direct?: boolean;
  /**
   * `aio=threads|io_uring` (ACRN): how each I/O thread reaches the file:
   * synchronous calls through `io` (default), or its own io_uring (Deno on
   * Linux with io_uring enabled).
   */
  readonly aio?: FileBackendSpec["aio"];
}

/**
 * Checks the file at `path` against `options` and describes the device
 * built on it. Pass the same `logicalBlockSize`/`physicalBlockSize` to the
 * device, since they are what `range` was counted in.
 *
 * @param path a regular file or a block device / partition
 * @param options ACRN's options
 * @returns the spec every thread opens with `openBackend`
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a bad option (sector size,
 * range shape, a range outside the file, an unusable `io`), and
 * `BAD_BACKING_FILE` for a file that cannot back a device (missing, a
 * directory or other non-regular file, a qcow2, VMDK, VHDX, VDI, VHD or QED
 * image (see `image_format.ts`), empty, size not a multiple of 512, not
 * writable without `ro`, no O_DIRECT support with `nocache`)
 *
 * @example
 * ```ts
 * const spec = describeFile("disk.img", { range: { start: 8, size: 2048 } });
 * // spec.offset === 4096, spec.size === 1 MiB
 * ```
 */
export function describeFile(path: string, options: FileOptions = {}): FileBackendSpec {
  const { logical } = validateSectorSize(options.logicalBlockSize, options.physicalBlockSize);
  const readOnly = options.readOnly ?? false;
  const direct = options.direct ?? false;
  const io = chooseIo(options.io, direct);
  const aio = chooseAio(options.aio);
  const window = options.range === undefined ? undefined : rangeBytes(options.range, logical);
  const absolute = resolve(path);
  const { size: fileSize, blockDevice } = inspectFile(absolute, readOnly, direct, path);

  const { offset, size, windowed } = deviceWindow(
    `backing file ${absolute}`,
    fileSize,
    options.range,
    window,
  );
  return fileSpec({
    path: absolute,
    offset,
    size,
    ...(windowed ? { windowed } : {}),
    readOnly,
    io,
    direct,
    aio,
    blockDevice,
  });
}

/**
 * Checks `options` as {@linkcode describeFile} would, without a file: for
 * a drive whose medium comes later (ACRN's `nodisk`).
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` or `UNSUPPORTED`, as describeFile
 */
export function checkFileOptions(options: FileOptions): void {
  validateSectorSize(options.logicalBlockSize, options.physicalBlockSize);
  chooseIo(options.io, options.direct ?? false);
  chooseAio(options.aio);
}

/** What a file's spec holds besides what every file spec has in common. */
type FileFields = Omit<FileBackendSpec, "module" | "kind" | "name" | "capabilities">;

/**
 * The spec of a checked file: its driver, its name (the absolute path,
 * plus the byte window when `range=` chose one: the same file is the same
 * name in every run, also after a resize, and two windows of it are two),
 * and what it can do.
 */
function fileSpec(fields: FileFields): FileBackendSpec {
  const name = fields.windowed
    ? `${fields.path} bytes ${fields.offset}-${fields.offset + fields.size}`
    : fields.path;
  const writable = !fields.readOnly;
  return {
    module: FILE_DRIVER,
    kind: "file",
    name,
    capabilities: {
      // fdatasync empties the page cache.
      flush: true,
      // Holes, BLKDISCARD: through FFI (Deno), or io_uring's fallocate (Deno too).
      discard: writable && fileSpaceUnavailable() === undefined,
      // Zeroing falls back to writing zeros, which every writable file can take.
      writeZeroes: writable,
      // Each thread opens its own descriptor.
      handles: "per-thread",
    },
    ...fields,
  };
}

/** `aio=`: io_uring only where a ring can really be set up (a kernel may disable it). */
function chooseAio(aio: FileBackendSpec["aio"] | undefined): FileBackendSpec["aio"] {
  if (aio === undefined || aio === "threads") return "threads";
  if (aio !== "io_uring") {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `aio ${String(aio)} must be "threads" or "io_uring"`,
    );
  }
  const missing = ioUringUnavailable() ?? ioUringRefused();
  if (missing !== undefined) {
    throw new VirtioBlkError("UNSUPPORTED", `aio=io_uring: ${missing}`);
  }
  return aio;
}

/** Why this kernel refuses a ring (io_uring_disabled, seccomp, too old), or undefined. */
function ioUringRefused(): string | undefined {
  try {
    new IoUring(2).close();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function chooseIo(io: FileIo | undefined, direct: boolean): FileIo {
  if (direct && fs.constants.O_DIRECT === undefined) {
    throw new VirtioBlkError("INVALID_CONFIG", "nocache: O_DIRECT is not available on this OS");
  }
  if (io === undefined) return direct || !isDeno() ? "node-fs" : "fsfile";
  if (io !== "fsfile" && io !== "node-fs") {
    throw new VirtioBlkError("INVALID_CONFIG", `io ${String(io)} must be "fsfile" or "node-fs"`);
  }
  if (io === "fsfile" && !isDeno()) {
    throw new VirtioBlkError("INVALID_CONFIG", `io "fsfile" needs Deno; use "node-fs"`);
  }
  if (io === "fsfile" && direct) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `nocache (O_DIRECT) needs io "node-fs": Deno.open cannot pass O_DIRECT`,
    );
  }
  return io;
}

/**
 * Checks that `path` can back a device and returns its size in bytes, and
 * whether it is a block device.
 * The type is checked with stat before anything is opened, so a FIFO or a
 * character device (a tape that rewinds on open) is never opened; the
 * descriptors are opened O_NONBLOCK and the inspected one is checked to be
 * the file that was stat'ed. A regular file must not be a non-raw image
 * (its first and last 512 bytes are read); a block device is not read.
 *
 * @param given the path as the user gave it, for the message refusing an image
 */
function inspectFile(
  path: string,
  readOnly: boolean,
  direct: boolean,
  given: string,
): { size: number; blockDevice: boolean } {
  let info: fs.Stats;
  try {
    info = fs.statSync(path);
  } catch (error) {
    const errno = errnoName(error);
    if (errno === "ENOENT" || errno === "ENOTDIR") throw openFailure(path, "read", error);
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `cannot stat backing file ${path}: ${errorText(error)}`,
      { cause: error },
    );
  }
  if (info.isDirectory()) {
    throw new VirtioBlkError("BAD_BACKING_FILE", `backing file ${path} is a directory`);
  }
  if (!info.isFile() && !info.isBlockDevice()) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `backing file ${path} is a ${fileKind(info)}, not a regular file or block device`,
    );
  }

  const { O_RDONLY, O_RDWR, O_NONBLOCK, O_DIRECT } = fs.constants;
  const fd = openFor(path, O_RDONLY | O_NONBLOCK, "read");
  let size: number;
  try {
    const opened = fs.fstatSync(fd);
    if (opened.dev !== info.dev || opened.ino !== info.ino) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `backing file ${path} was replaced while it was being checked`,
      );
    }
    size = info.isBlockDevice() ? blockDeviceSize(path, fd) : opened.size;
    const format = info.isFile() ? readImageFormat(fd, size) : undefined;
    if (format !== undefined) {
      throw new VirtioBlkError("BAD_BACKING_FILE", notRawMessage(given, format));
    }
  } finally {
    fs.closeSync(fd);
  }
  if (direct) fs.closeSync(openFor(path, O_RDONLY | O_NONBLOCK | O_DIRECT, "direct"));
  if (!readOnly) {
    // Opening for writing without O_CREAT/O_TRUNC changes nothing, not even mtime.
    fs.closeSync(openFor(path, O_RDWR | O_NONBLOCK, "write"));
    if (info.isBlockDevice() && isReadOnlyDevice(fs.statSync(path, { bigint: true }).rdev)) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `backing file ${path} is not writable (a read-only block device); use ro to open it ` +
          `read-only`,
      );
    }
  }
  return { size, blockDevice: info.isBlockDevice() };
}

function openFor(path: string, flags: number, purpose: OpenPurpose): number {
  try {
    return fs.openSync(path, flags);
  } catch (error) {
    throw openFailure(path, purpose, error);
  }
}

function blockDeviceSize(path: string, fd: number): number {
  try {
    return isDeno() ? seekDeviceSize(path) : probeDeviceSize(fd);
  } catch (error) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `cannot find the size of block device ${path}: ${errorText(error)}`,
      { cause: error },
    );
  }
}

function fileKind(info: fs.Stats): string {
  if (info.isCharacterDevice()) return "character device";
  if (info.isFIFO()) return "FIFO";
  if (info.isSocket()) return "socket";
  return "special file";
}
