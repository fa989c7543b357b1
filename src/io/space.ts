/**
 * How a medium gives ranges back (DISCARD) and makes them read as zeros
 * (WRITE_ZEROES), for every I/O queue that does it through Linux calls:
 * `fallocate(2)` modes on files (and on block devices, where the kernel
 * turns them into zero-outs), BLKDISCARD and BLKZEROOUT on block devices,
 * and the order the zeroing methods are tried in when a file system
 * refuses one (EOPNOTSUPP). One place, so the synchronous file backend and
 * the io_uring queue fall back alike. Browser-safe: constants and a buffer.
 *
 * @module
 */

import { ERRNO } from "./errno.ts";

/**
 * The calls a medium gives ranges back and zeros them with, on one
 * descriptor (`src/backend/file_space.ts` on Linux through FFI). Each
 * returns 0 or −errno (−EOPNOTSUPP where the medium cannot).
 */
export interface SpaceCalls {
  /** Deallocates `length` bytes at file position `position` (a hole, BLKDISCARD). */
  discard(position: number, length: number): number;
  /** Makes `length` bytes at `position` read as zeros by `method` (not WRITE). */
  zero(method: ZeroMethodCode, position: number, length: number): number;
  /** Releases the descriptor. */
  close(): void;
}

/** fallocate(2) mode bits (include/uapi/linux/falloc.h). */
export const Falloc = {
  /** Leave the file's size alone (needed with PUNCH_HOLE; asked for with ZERO_RANGE). */
  KEEP_SIZE: 0x01,
  /** Deallocate the range; it reads as zeros afterwards. */
  PUNCH_HOLE: 0x02,
  /** Make the range read as zeros, keeping (or making) it allocated. */
  ZERO_RANGE: 0x10,
} as const;

/** Block-device ioctls taking `u64 range[2] = {offset, length}` in bytes (include/uapi/linux/fs.h). */
export const BlockIoctl = {
  /** `_IO(0x12, 119)`: discard the range. */
  BLKDISCARD: 0x1277,
  /** `_IO(0x12, 127)`: zero the range (the kernel writes zeros where the device cannot). */
  BLKZEROOUT: 0x127f,
} as const;

/** How a range is made to read as zeros, in the order tried. */
export const ZeroMethod = {
  /** fallocate(PUNCH_HOLE | KEEP_SIZE): deallocate (WRITE_ZEROES with unmap). */
  PUNCH_HOLE: 0,
  /** fallocate(ZERO_RANGE | KEEP_SIZE), or BLKZEROOUT on a block device. */
  ZERO_RANGE: 1,
  /** Write zeros: what is left when the medium refuses both. */
  WRITE: 2,
} as const;

/** One of {@linkcode ZeroMethod}'s values. */
export type ZeroMethodCode = typeof ZeroMethod[keyof typeof ZeroMethod];

/**
 * The method tried first: deallocating when the range may be unmapped
 * (virtio 1.2 §5.2.6.2: "as if the discard command had been sent"),
 * otherwise zeroing in place.
 */
export function firstZeroMethod(unmap: boolean): ZeroMethodCode {
  return unmap ? ZeroMethod.PUNCH_HOLE : ZeroMethod.ZERO_RANGE;
}

/** The method to try after `method` was refused with {@linkcode ERRNO.EOPNOTSUPP}. */
export function nextZeroMethod(method: ZeroMethodCode): ZeroMethodCode {
  return method === ZeroMethod.PUNCH_HOLE ? ZeroMethod.ZERO_RANGE : ZeroMethod.WRITE;
}

/** The fallocate mode of a method other than WRITE. */
export function fallocateMode(method: ZeroMethodCode): number {
  return Falloc.KEEP_SIZE |
    (method === ZeroMethod.PUNCH_HOLE ? Falloc.PUNCH_HOLE : Falloc.ZERO_RANGE);
}

/** Whether `result` (0 or −errno) means the medium cannot do this, rather than that it failed. */
export function refused(result: number): boolean {
  return result === -ERRNO.EOPNOTSUPP;
}

/**
 * The result of a discard whose call returned `result`: a medium that
 * cannot deallocate has done all a discard asks (the device MAY deallocate,
 * §5.2.6.2; the data the range reads afterwards is undefined), so a refusal
 * is success.
 */
export function discardResult(result: number): number {
  return refused(result) ? 0 : result;
}

/** Bytes of the zero buffer: the most one zero-writing call moves. */
export const ZERO_CHUNK_BYTES = 1 << 20;

let zeros: Uint8Array | undefined;

/**
 * A buffer of {@linkcode ZERO_CHUNK_BYTES} zeros to write from, never
 * written to. It is WebAssembly memory, so its address is page aligned, as
 * O_DIRECT (`nocache`) needs.
 */
export function zeroChunk(): Uint8Array {
  zeros ??= new Uint8Array(
    new WebAssembly.Memory({ initial: ZERO_CHUNK_BYTES / 65536, maximum: ZERO_CHUNK_BYTES / 65536 })
      .buffer,
  );
  return zeros;
}
