/**
 * ACRN's `range=<start>/<size>` for any medium that is a file (a host file,
 * an OPFS file): the window of the file a device shows, counted in logical
 * sectors, checked once when the medium is described. Without a window the
 * device shows the whole file, whose size must then be whole virtio sectors.
 * Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";

/** The bytes a device shows must be whole virtio sectors (§5.2.4: capacity counts 512 bytes). */
const VIRTIO_SECTOR = 512;

/** A `range=` as given: both numbers count logical blocks. */
export interface SectorRange {
  /** First logical block of the window. */
  readonly start: number;
  /** Logical blocks in the window. */
  readonly size: number;
}

/** The bytes of a file a device shows. */
export interface DeviceWindow {
  /** Byte offset of the device's first byte in the file. */
  readonly offset: number;
  /** Bytes the device shows. */
  readonly size: number;
  /** Whether `range=` chose the window (it is then part of the medium's name). */
  readonly windowed: boolean;
}

/**
 * The byte window `[offset, end)` of a `range=` counted in `logical`-byte
 * blocks: checked before the file is looked at, so a bad option is refused
 * whatever the file.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a negative, fractional or
 *   zero-size range, or one ending beyond 2^53 bytes
 */
export function rangeBytes(range: SectorRange, logical: number): { offset: number; end: number } {
  const { start, size } = range;
  for (const [name, value] of [["start", start], ["size", size]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `range ${name} ${value} must be a whole number of ${logical}-byte sectors`,
      );
    }
  }
  if (size === 0) {
    throw new VirtioBlkError("INVALID_CONFIG", `range=${start}/0 gives a zero-size device`);
  }
  const offset = start * logical;
  const end = (start + size) * logical;
  if (!Number.isSafeInteger(end)) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `range=${start}/${size} of ${logical}-byte sectors ends beyond 2^53 bytes`,
    );
  }
  return { offset, end };
}

/**
 * The window a device shows of a file of `fileSize` bytes: the `range=`
 * (its bytes from {@linkcode rangeBytes}) if one was given, else the whole
 * file.
 *
 * @param file what the messages call the file (`backing file /srv/disk.img`)
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` for a whole file that is empty
 *   or not whole 512-byte sectors; `INVALID_CONFIG` for a range outside it
 */
export function deviceWindow(
  file: string,
  fileSize: number,
  range: SectorRange | undefined,
  bytes: { offset: number; end: number } | undefined,
): DeviceWindow {
  if (range === undefined || bytes === undefined) {
    if (fileSize === 0) {
      throw new VirtioBlkError("BAD_BACKING_FILE", `${file} is empty (0 bytes)`);
    }
    if (fileSize % VIRTIO_SECTOR !== 0) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `size of ${file} (${fileSize} bytes) is not a multiple of ${VIRTIO_SECTOR} bytes`,
      );
    }
    return { offset: 0, size: fileSize, windowed: false };
  }
  if (bytes.end > fileSize) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `range=${range.start}/${range.size} (bytes ${bytes.offset} to ${bytes.end}) lies outside ` +
        `${file} (${fileSize} bytes)`,
    );
  }
  return { offset: bytes.offset, size: bytes.end - bytes.offset, windowed: true };
}
