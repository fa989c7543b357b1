/**
 * Giving ranges of a file or block device back, and zeroing them, from a
 * synchronous file backend: `fallocate(2)` and the BLKDISCARD / BLKZEROOUT
 * ioctls through Deno's FFI (Linux x86-64), on a descriptor of this
 * module's own (neither `Deno.FsFile` nor `node:fs` exposes one FFI could
 * take, and neither offers these calls). Where there is no FFI (Node), a
 * file backend zeroes by writing zeros and the device offers no DISCARD.
 *
 * fdatasync through the backend's own descriptor makes what these calls
 * changed stable: the file's extents are per inode, whichever descriptor
 * changed them.
 *
 * @module
 */

import { cString, errno, ioUringSys, Linux, SyscallError } from "../io/io_uring/sys.ts";
import {
  BlockIoctl,
  fallocateMode,
  type SpaceCalls,
  ZeroMethod,
  type ZeroMethodCode,
} from "../io/space.ts";

/**
 * Why file space cannot be given back on this runtime (no FFI, another OS,
 * FFI not allowed), or undefined when it can.
 */
export function fileSpaceUnavailable(): string | undefined {
  try {
    ioUringSys();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * A {@linkcode FileSpace} on `path`, or null where this runtime has no FFI
 * (the caller then writes zeros and gives nothing back).
 *
 * @throws {SyscallError} when `path` cannot be opened
 */
export function openFileSpace(path: string, blockDevice: boolean): FileSpace | null {
  return fileSpaceUnavailable() === undefined ? new FileSpace(path, blockDevice) : null;
}

/** A descriptor on a file or block device for fallocate and the block ioctls. */
export class FileSpace implements SpaceCalls {
  readonly #fd: number;
  readonly #blockDevice: boolean;
  /** The ioctl argument: {offset, length} in bytes. */
  readonly #range = new BigUint64Array(2);
  #closed = false;

  /**
   * Opens `path` for writing (never creating or truncating it).
   *
   * @param blockDevice whether `path` is a block device (ioctls instead of fallocate for DISCARD)
   * @throws {SyscallError} when it cannot be opened
   */
  constructor(path: string, blockDevice: boolean) {
    const fd = ioUringSys().open(cString(path), Linux.O_RDWR | Linux.O_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("open", errno());
    this.#fd = fd;
    this.#blockDevice = blockDevice;
  }

  /**
   * Deallocates `length` bytes at file position `position`: a hole punched
   * in a file (the size stays), BLKDISCARD on a block device. Returns 0 or
   * −errno (−EOPNOTSUPP where the medium cannot).
   */
  discard(position: number, length: number): number {
    return this.#blockDevice
      ? this.#ioctl(BlockIoctl.BLKDISCARD, position, length)
      : this.#fallocate(ZeroMethod.PUNCH_HOLE, position, length);
  }

  /**
   * Makes `length` bytes at `position` read as zeros by `method` (not
   * WRITE): a hole or a zeroed range of a file; on a block device, PUNCH_HOLE
   * is the kernel's zero-out that may unmap, ZERO_RANGE is BLKZEROOUT.
   * Returns 0 or −errno (−EOPNOTSUPP where the medium cannot).
   */
  zero(method: ZeroMethodCode, position: number, length: number): number {
    if (this.#blockDevice && method === ZeroMethod.ZERO_RANGE) {
      return this.#ioctl(BlockIoctl.BLKZEROOUT, position, length);
    }
    return this.#fallocate(method, position, length);
  }

  /** Closes the descriptor. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    ioUringSys().close(this.#fd);
  }

  #fallocate(method: ZeroMethodCode, position: number, length: number): number {
    const result = ioUringSys().fallocate(
      this.#fd,
      fallocateMode(method),
      BigInt(position),
      BigInt(length),
    );
    return result < 0 ? -errno() : 0;
  }

  #ioctl(request: number, position: number, length: number): number {
    this.#range[0] = BigInt(position);
    this.#range[1] = BigInt(length);
    const result = ioUringSys().ioctl(this.#fd, BigInt(request), this.#range);
    return result < 0 ? -errno() : 0;
  }
}
