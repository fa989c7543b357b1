/**
 * Media for tests that need to see what the device asks of its backend, or
 * to make the medium fail: real {@linkcode BlockBackend} implementations,
 * plugged in through the in-process engine's own-backend seam
 * (`engine: (ctx) => new InlineEngine(ctx, backend)`).
 */

import type { BlockBackend } from "../../src/backend/backend.ts";
import { VirtioBlkError } from "../../src/errors.ts";

/** One call the device made on a backend. */
export type BackendCall =
  | { op: "read" | "write"; offset: number; length: number }
  | { op: "flush" };

/**
 * Positional I/O at `base + offset` in a larger medium, as a file backend
 * with `range=` does it, and — like pread/pwrite on the file — without
 * checking the window itself, so a request that escaped the device's range
 * check would show in the bytes around the window. Logs every call.
 */
export class WindowBackend implements BlockBackend {
  readonly readOnly = false;
  readonly calls: BackendCall[] = [];
  /** Called at the start of every call, before any byte moves. */
  onCall: (call: BackendCall) => void = () => {};

  /**
   * @param medium the whole medium (e.g. a file's bytes)
   * @param base first byte of the device's window in it
   * @param size bytes of the window (the device's size)
   */
  constructor(readonly medium: Uint8Array, readonly base: number, readonly size: number) {}

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    const call = { op: "read", offset, length } as const;
    this.calls.push(call);
    this.onCall(call);
    const from = this.base + offset;
    bytes.set(this.medium.subarray(from, from + length), at);
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    const call = { op: "write", offset, length } as const;
    this.calls.push(call);
    this.onCall(call);
    this.medium.set(bytes.subarray(at, at + length), this.base + offset);
  }

  flush(): void {
    const call = { op: "flush" } as const;
    this.calls.push(call);
    this.onCall(call);
  }

  close(): void {}
}

/**
 * A medium that ends before the device does — a backing file truncated
 * behind the device's back — and optionally cannot sync. A transfer that
 * crosses `available` moves the bytes that exist and then fails with
 * SHORT_TRANSFER, as a positional read at end of file returns short.
 */
export class TruncatedBackend implements BlockBackend {
  readonly readOnly = false;
  readonly medium: Uint8Array;
  flushFails = false;

  /**
   * @param size the size the device was built with
   * @param available bytes that really exist from offset 0
   */
  constructor(readonly size: number, public available: number) {
    this.medium = new Uint8Array(size);
  }

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    const got = this.#fits(offset, length);
    bytes.set(this.medium.subarray(offset, offset + got), at);
    if (got < length) this.#short("read", offset, length, got);
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    const put = this.#fits(offset, length);
    this.medium.set(bytes.subarray(at, at + put), offset);
    if (put < length) this.#short("write", offset, length, put);
  }

  flush(): void {
    if (this.flushFails) throw new VirtioBlkError("IO_ERROR", "fdatasync failed: EIO");
  }

  close(): void {}

  #fits(offset: number, length: number): number {
    return Math.max(0, Math.min(length, this.available - offset));
  }

  #short(op: string, offset: number, length: number, done: number): never {
    throw new VirtioBlkError(
      "SHORT_TRANSFER",
      `${op} of ${length} bytes at ${offset} transferred ${done}`,
    );
  }
}
