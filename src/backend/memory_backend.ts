/**
 * A RAM disk: the medium is a SharedArrayBuffer, so every thread that opens
 * the same {@linkcode MemoryBackendSpec} sees the same bytes. Writes are
 * stable as soon as they are done, so `flush` has nothing to do.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import type { BlockBackend, MemoryBackendSpec } from "./backend.ts";

/** A RAM disk backend. */
export class MemoryBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly #disk: Uint8Array;

  /** Opens the RAM disk described by `spec`. */
  constructor(spec: MemoryBackendSpec) {
    this.#disk = new Uint8Array(spec.buffer);
    this.size = spec.buffer.byteLength;
    this.readOnly = spec.readOnly;
  }

  /**
   * Describes a new zero-filled RAM disk of `size` bytes (a multiple of 512).
   */
  static create(size: number, options: { readOnly?: boolean } = {}): MemoryBackendSpec {
    if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `RAM disk size ${size} must be a positive multiple of 512 bytes`,
      );
    }
    return {
      kind: "memory",
      buffer: new SharedArrayBuffer(size),
      readOnly: options.readOnly ?? false,
    };
  }

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#check(offset, length);
    bytes.set(this.#disk.subarray(offset, offset + length), at);
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    if (this.readOnly) throw new VirtioBlkError("IO_ERROR", "write to a read-only RAM disk");
    this.#check(offset, length);
    this.#disk.set(bytes.subarray(at, at + length), offset);
  }

  flush(): void {}

  close(): void {}

  #check(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset > this.size || length > this.size - offset) {
      throw new VirtioBlkError(
        "SHORT_TRANSFER",
        `RAM disk access [${offset}, +${length}) beyond its ${this.size} bytes`,
      );
    }
  }
}
