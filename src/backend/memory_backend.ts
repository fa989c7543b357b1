/**
 * A RAM disk: the medium is a SharedArrayBuffer, so every thread that opens
 * the same {@linkcode MemoryBackendSpec} sees the same bytes. Writes are
 * stable as soon as they are done, so `flush` has nothing to do. DISCARD and
 * WRITE_ZEROES zero the bytes (a SharedArrayBuffer cannot give pages back). This
 * module is the RAM disk's backend driver (it registers itself).
 * Browser-safe.
 *
 * A RAM disk has no path to name it by: it gets a random name when it is
 * described (64 bits from WebCrypto), which its spec carries, so devices
 * made again over the same RAM disk keep their default serial, and RAM
 * disks of two processes serving one guest never share one.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { backendDrivers, type BackendSpec, type BlockBackend } from "./backend.ts";

/** A RAM disk in a SharedArrayBuffer. */
export interface MemoryBackendSpec extends BackendSpec {
  /** Tells this spec from other drivers' specs. */
  readonly kind: "memory";
  /** The disk's bytes; every thread that opens the spec sees the same memory. */
  readonly buffer: SharedArrayBuffer;
}

/** Random bytes in a RAM disk's name. */
const RAM_DISK_ID_BYTES = 8;

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
    return MemoryBackend.describe(new SharedArrayBuffer(size), options);
  }

  /**
   * Describes a RAM disk over an existing buffer (its size a multiple of
   * 512), e.g. one a WASM virtual machine already has.
   */
  static describe(
    buffer: SharedArrayBuffer,
    options: { readOnly?: boolean } = {},
  ): MemoryBackendSpec {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength % 512 !== 0) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        "a RAM disk is a SharedArrayBuffer whose size is a multiple of 512 bytes",
      );
    }
    const id = crypto.getRandomValues(new Uint8Array(RAM_DISK_ID_BYTES));
    return {
      module: import.meta.url,
      kind: "memory",
      name: `RAM disk ${Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("")}`,
      size: buffer.byteLength,
      readOnly: options.readOnly ?? false,
      capabilities: { flush: true, discard: true, writeZeroes: true, handles: "shared" },
      buffer,
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

  /** Zeros the range: nothing can be given back, and zeros are what a discarded range may read. */
  discard(offset: number, length: number): void {
    this.writeZeroes(offset, length);
  }

  /** Zeros the range. */
  writeZeroes(offset: number, length: number): void {
    if (this.readOnly) throw new VirtioBlkError("IO_ERROR", "write-zeroes on a read-only RAM disk");
    this.#check(offset, length);
    this.#disk.fill(0, offset, offset + length);
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

backendDrivers.register(import.meta.url, {
  open: (spec) => new MemoryBackend(spec as MemoryBackendSpec),
});
