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
    this.closeFile();
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
    // The executor only passes checked guest regions; anything else is a bug here.
    if (!Number.isSafeInteger(at) || at < 0 || at > bytes.length || length > bytes.length - at) {
      throw new RangeError(`${op} buffer [${at}, +${length}) outside its ${bytes.length} bytes`);
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
