/**
 * What signature probes read from: a bounded, never-throwing view of a disk
 * (or of one partition of it). Probes look at arbitrary, possibly hostile
 * bytes, so a read outside the disk, a failing device or a short answer is
 * "nothing there" (`undefined`), never an exception.
 *
 * @module
 */

/** Reads `count` 512-byte sectors starting at `sector`. May throw or return too few bytes. */
export type SectorReader = (sector: number, count: number) => Uint8Array;

/** Bytes of a disk or partition, read on demand. */
export interface ByteSource {
  /** Size in bytes. */
  readonly size: number;
  /** The logical block size of the underlying disk (the unit of MBR and GPT addresses). */
  readonly blockSize: number;
  /**
   * Bytes `[offset, offset + length)`, or `undefined` when any of them lies
   * outside the source or cannot be read.
   */
  read(offset: number, length: number): Uint8Array | undefined;
}

const SECTOR = 512;

/** Largest single read a probe may ask for (the biggest GPT entry array it accepts). */
export const MAX_PROBE_READ = 1 << 20;

function isWindow(size: number, offset: number, length: number): boolean {
  return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 &&
    length > 0 && length <= MAX_PROBE_READ && offset <= size && length <= size - offset;
}

/**
 * A source over a sector reader, e.g. the guest driver's `readSync`. Reads
 * are widened to whole `blockSize` units, because a device with 4 KiB logical
 * blocks rejects smaller or misaligned transfers.
 *
 * @param reader reads 512-byte sectors
 * @param size the disk's size in bytes
 * @param blockSize logical block size (a power of two >= 512), default 512
 *
 * @example
 * ```ts
 * const disk = sourceFromSectorReader((s, n) => driver.readSync(s, n * 512), capacity * 512);
 * ```
 */
export function sourceFromSectorReader(
  reader: SectorReader,
  size: number,
  blockSize = SECTOR,
): ByteSource {
  if (
    !(Number.isSafeInteger(blockSize) && blockSize >= SECTOR && (blockSize & (blockSize - 1)) === 0)
  ) {
    throw new RangeError(`logical block size ${blockSize} is not a power of two >= 512`);
  }
  if (!(Number.isSafeInteger(size) && size >= 0)) {
    throw new RangeError(`disk size ${size} is not a byte count`);
  }
  return {
    size,
    blockSize,
    read(offset, length) {
      if (!isWindow(size, offset, length)) return undefined;
      const first = Math.floor(offset / blockSize) * blockSize;
      const end = Math.ceil((offset + length) / blockSize) * blockSize;
      if (end > size) return undefined;
      let bytes: Uint8Array;
      try {
        bytes = reader(first / SECTOR, (end - first) / SECTOR);
      } catch {
        return undefined;
      }
      if (!(bytes instanceof Uint8Array) || bytes.length < end - first) return undefined;
      return bytes.subarray(offset - first, offset - first + length);
    },
  };
}

/** A source over bytes already in memory (an image file, a test buffer). */
export function sourceFromBytes(bytes: Uint8Array, blockSize = SECTOR): ByteSource {
  return {
    size: bytes.length,
    blockSize,
    read(offset, length) {
      return isWindow(bytes.length, offset, length)
        ? bytes.subarray(offset, offset + length)
        : undefined;
    },
  };
}

/**
 * The part `[offset, offset + size)` of `source` (a partition), clamped to
 * what `source` holds: a partition that claims to run past the end of the
 * disk is probed only over its part on the disk.
 */
export function subSource(source: ByteSource, offset: number, size: number): ByteSource {
  const start = Number.isSafeInteger(offset) ? Math.min(Math.max(0, offset), source.size) : 0;
  const length = Number.isSafeInteger(size) && Number.isSafeInteger(offset)
    ? Math.min(Math.max(0, size), source.size - start)
    : 0;
  return {
    size: length,
    blockSize: source.blockSize,
    read(at, count) {
      return isWindow(length, at, count) ? source.read(start + at, count) : undefined;
    },
  };
}
