/**
 * What every file backend shares, whatever I/O it uses underneath: the
 * `range=` window, the loops that turn partial reads and writes into whole
 * ones, and the errors. A subclass supplies one positional read, one
 * positional write, fdatasync and close.
 *
 * - Every access is checked against the device's `[0, size)` and moved by
 *   the window's start, so no read or write leaves the `range=` window
 *   (reference §6.8), whatever offset the caller passes.
 * - A read that reaches end of file, or any call that makes no progress, is
 *   a `SHORT_TRANSFER` error, never success (reference §6.13): a file
 *   truncated under the device reads as an error, not as zeros or stale
 *   guest memory. A failed syscall (EIO, ENOSPC, EFBIG, …) is `IO_ERROR`.
 *   The executor answers either with IOERR and keeps serving.
 *
 * DISCARD and WRITE_ZEROES (`discard`, `writeZeroes`): through the
 * subclass's {@linkcode SpaceCalls} (`openSpace`: `file_space.ts` where
 * Deno's FFI is there) — a punched hole, a zeroed range, BLKDISCARD /
 * BLKZEROOUT — falling back to writing zeros where the file system refuses
 * (EOPNOTSUPP); without them (Node, OPFS) zeros are written and a discard
 * does nothing. The same window and checks apply.
 *
 * Durability contract: in write-through mode the executor calls `flush()`
 * (fdatasync) after each write and before completing it; in write-back mode
 * only a FLUSH request calls it. fdatasync through any descriptor of a file
 * makes the writes made through every descriptor of it stable (the page
 * cache and the journal are per inode), which is why one handle per worker
 * is enough and a FLUSH on one worker covers writes done by the others.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { errnoName } from "../io/errno.ts";
import {
  discardResult,
  firstZeroMethod,
  nextZeroMethod,
  refused,
  type SpaceCalls,
  zeroChunk,
  ZeroMethod,
} from "../io/space.ts";
import type { BlockBackend } from "./backend.ts";
import { errorText } from "./file_errors.ts";

/** The window of a file a device shows, and how it is opened. */
export interface FileWindow {
  /** What names the file in messages (a path). */
  readonly path: string;
  /** Byte offset of the device's first byte in the file (`range=`). */
  readonly offset: number;
  /** Bytes the device shows. */
  readonly size: number;
  /** Whether writes are refused. */
  readonly readOnly: boolean;
}

/** A backend over a window of a file or block device (or an OPFS file: `src/backend/opfs/`). */
export abstract class FileBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  /** The file or block device. */
  readonly path: string;
  /** What `flush()` calls, for its failure message. */
  protected readonly syncName: string = "fdatasync";
  /** Byte offset of the window in the file. */
  readonly #start: number;
  /** fallocate and the block ioctls, opened on first use; null: none here. */
  #space: SpaceCalls | null | undefined;
  #closed = false;

  /** Takes the window and mode from `spec`; the subclass then opens the file. */
  protected constructor(spec: FileWindow) {
    if (
      !Number.isSafeInteger(spec.offset) || !Number.isSafeInteger(spec.size) || spec.offset < 0 ||
      spec.size < 0 || !Number.isSafeInteger(spec.offset + spec.size)
    ) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `file window offset ${spec.offset}, size ${spec.size} is not a valid byte range`,
      );
    }
    this.path = spec.path;
    this.size = spec.size;
    this.readOnly = spec.readOnly;
    this.#start = spec.offset;
  }

  /**
   * Reads up to `length` bytes at file position `position` into
   * `bytes[at, …)`; returns how many it read (0 at end of file).
   */
  protected abstract readAt(
    bytes: Uint8Array,
    at: number,
    length: number,
    position: number,
  ): number;
  /** Writes up to `length` bytes from `bytes[at, …)` at `position`; returns how many. */
  protected abstract writeAt(
    bytes: Uint8Array,
    at: number,
    length: number,
    position: number,
  ): number;
  /** fdatasync. */
  protected abstract syncData(): void;
  /**
   * The calls that give ranges back and zero them on this file, opened on
   * first use; null (the default) where there are none: zeros are written
   * and a discard does nothing.
   */
  protected openSpace(): SpaceCalls | null {
    return null;
  }
  /** Closes the descriptor. */
  protected abstract closeFile(): void;

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#transfer("read", offset, bytes, at, length);
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    if (this.readOnly) {
      throw new VirtioBlkError("IO_ERROR", `write to ${this.path}, which is open read-only`);
    }
    this.#transfer("write", offset, bytes, at, length);
  }

  /**
   * Gives `length` bytes at `offset` back: a hole punched in a file,
   * BLKDISCARD on a block device. Does nothing where the medium cannot (a
   * discard may leave the data, virtio 1.2 §5.2.6.2), or without FFI.
   */
  discard(offset: number, length: number): void {
    this.#checkChange("discard", offset, length);
    const space = this.#fileSpace();
    if (space === null) return;
    const result = discardResult(space.discard(this.#start + offset, length));
    if (result < 0) throw this.#spaceFailure("discard", offset, length, result);
  }

  /**
   * Makes `length` bytes at `offset` read as zeros: deallocated (a punched
   * hole) when `unmap`, else a zeroed range (ZERO_RANGE, BLKZEROOUT), and
   * zeros written where the medium refuses both or there is no FFI.
   */
  writeZeroes(offset: number, length: number, unmap: boolean): void {
    this.#checkChange("write-zeroes", offset, length);
    const space = this.#fileSpace();
    let method = space === null ? ZeroMethod.WRITE : firstZeroMethod(unmap);
    while (method !== ZeroMethod.WRITE) {
      const result = space!.zero(method, this.#start + offset, length);
      if (result === 0) return;
      if (!refused(result)) throw this.#spaceFailure("write-zeroes", offset, length, result);
      method = nextZeroMethod(method);
    }
    const zeros = zeroChunk();
    for (let done = 0; done < length;) {
      const chunk = Math.min(zeros.length, length - done);
      this.#transfer("write", offset + done, zeros, 0, chunk);
      done += chunk;
    }
  }

  flush(): void {
    this.#checkOpen();
    try {
      this.syncData();
    } catch (error) {
      throw new VirtioBlkError(
        "IO_ERROR",
        `${this.syncName} of ${this.path} failed: ${errorText(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#space?.close();
    this.closeFile();
  }

  #checkChange(op: string, offset: number, length: number): void {
    if (this.readOnly) {
      throw new VirtioBlkError("IO_ERROR", `${op} on ${this.path}, which is open read-only`);
    }
    this.#checkRange(op, offset, length);
  }

  /** This thread's descriptor for fallocate and ioctls, or null where there is none. */
  #fileSpace(): SpaceCalls | null {
    if (this.#space !== undefined) return this.#space;
    try {
      return this.#space = this.openSpace();
    } catch (error) {
      throw new VirtioBlkError(
        "IO_ERROR",
        `cannot open ${this.path} to give space back or zero it: ${errorText(error)}`,
        { cause: error },
      );
    }
  }

  #spaceFailure(op: string, offset: number, length: number, result: number): VirtioBlkError {
    return new VirtioBlkError(
      "IO_ERROR",
      `${op} of ${length} bytes at device offset ${offset} of ${this.path} failed: ` +
        errnoName(-result),
      { cause: { errno: -result } },
    );
  }

  /** Moves all `length` bytes, or throws; a call that moves nothing ends the loop. */
  #transfer(
    op: "read" | "write",
    offset: number,
    bytes: Uint8Array,
    at: number,
    length: number,
  ): void {
    this.#check(op, offset, bytes, at, length);
    const position = this.#start + offset;
    let done = 0;
    while (done < length) {
      let count: number;
      try {
        count = op === "read"
          ? this.readAt(bytes, at + done, length - done, position + done)
          : this.writeAt(bytes, at + done, length - done, position + done);
      } catch (error) {
        throw this.#failure(op, offset, length, error);
      }
      if (count <= 0) {
        throw this.#short(op, offset, length, done, op === "read" ? "end of file" : "no progress");
      }
      done += count;
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new VirtioBlkError("CLOSED", `backend of ${this.path} is closed`);
  }

  #check(op: string, offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#checkRange(op, offset, length);
    // The executor only passes checked guest regions; anything else is a bug here.
    if (!Number.isSafeInteger(at) || at < 0 || at > bytes.length || length > bytes.length - at) {
      throw new RangeError(`${op} buffer [${at}, +${length}) outside its ${bytes.length} bytes`);
    }
  }

  /** The device's `[0, size)` holds `[offset, offset + length)`: no access leaves the window. */
  #checkRange(op: string, offset: number, length: number): void {
    this.#checkOpen();
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset > this.size || length > this.size - offset
    ) {
      throw new VirtioBlkError(
        "SHORT_TRANSFER",
        `${op} [${offset}, +${length}) lies beyond the ${this.size} bytes of ${this.path}'s device`,
      );
    }
  }

  #failure(op: string, offset: number, length: number, error: unknown): VirtioBlkError {
    return new VirtioBlkError(
      "IO_ERROR",
      `${op} of ${length} bytes at device offset ${offset} of ${this.path} failed: ` +
        errorText(error),
      { cause: error },
    );
  }

  #short(op: string, offset: number, length: number, done: number, why: string): VirtioBlkError {
    return new VirtioBlkError(
      "SHORT_TRANSFER",
      `${op} of ${length} bytes at device offset ${offset} of ${this.path} stopped after ` +
        `${done} bytes (${why})`,
    );
  }
}
