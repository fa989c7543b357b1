/**
 * Guest memory held in one SharedArrayBuffer, normally the buffer of a shared
 * `WebAssembly.Memory` (page aligned, which `nocache`/O_DIRECT needs, and
 * exactly what a WASM virtual machine already has).
 *
 * @module
 */

import {
  findRegion,
  type GuestMemory,
  type GuestMemoryHandle,
  guestMemoryKinds,
  makeRegion,
  type MemoryRegion,
} from "./guest_memory.ts";

/** The handle of a shared guest memory: its buffer and where it is mapped. */
export interface SharedMemoryHandle extends GuestMemoryHandle {
  /** Tells this kind of handle apart. */
  readonly kind: "shared";
  /** The guest's memory. */
  readonly buffer: SharedArrayBuffer;
  /** Guest-physical address of its first byte. */
  readonly gpa: number;
}

/** Size of a WebAssembly page. */
export const WASM_PAGE_SIZE = 65536;

/** The largest shared WebAssembly memory (wasm32): 65536 pages = 4 GiB. */
export const MAX_WASM_PAGES = 65536;

/** Guest memory backed by one SharedArrayBuffer, mapped at one guest-physical address. */
export class SharedGuestMemory implements GuestMemory {
  readonly regions: readonly MemoryRegion[];
  readonly #buffer: SharedArrayBuffer;
  readonly #gpa: number;

  /**
   * Wraps an existing SharedArrayBuffer (for example `wasmMemory.buffer`).
   *
   * @param buffer the guest's memory
   * @param gpa the guest-physical address of `buffer[0]` (default 0)
   */
  constructor(buffer: SharedArrayBuffer, gpa = 0) {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new TypeError("guest memory must be a SharedArrayBuffer");
    }
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % 4096 !== 0) {
      throw new RangeError(`guest memory base ${gpa} must be a page-aligned address`);
    }
    this.#buffer = buffer;
    this.#gpa = gpa;
    this.regions = [makeRegion(gpa, buffer, 0, buffer.byteLength)];
  }

  /**
   * Allocates `bytes` of zeroed guest memory as a shared WebAssembly memory,
   * rounded up to whole 64 KiB pages.
   */
  static allocate(bytes: number): SharedGuestMemory {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new RangeError(`guest memory size must be a positive integer, got ${bytes}`);
    }
    const pages = Math.ceil(bytes / WASM_PAGE_SIZE);
    if (pages > MAX_WASM_PAGES) {
      throw new RangeError(
        `guest memory of ${bytes} bytes exceeds the 4 GiB of a shared WebAssembly memory`,
      );
    }
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    return new SharedGuestMemory(memory.buffer as unknown as SharedArrayBuffer);
  }

  /** Rebuilds a view from a handle made by {@linkcode SharedGuestMemory.handle}. */
  static fromHandle(handle: SharedMemoryHandle): SharedGuestMemory {
    return new SharedGuestMemory(handle.buffer, handle.gpa);
  }

  /** The underlying buffer. */
  get buffer(): SharedArrayBuffer {
    return this.#buffer;
  }

  /** Total size in bytes. */
  get size(): number {
    return this.#buffer.byteLength;
  }

  regionFor(gpa: number, length: number): MemoryRegion | undefined {
    return findRegion(this.regions, gpa, length);
  }

  handle(): SharedMemoryHandle {
    return { module: import.meta.url, kind: "shared", buffer: this.#buffer, gpa: this.#gpa };
  }
}

guestMemoryKinds.register(
  import.meta.url,
  (handle) => SharedGuestMemory.fromHandle(handle as SharedMemoryHandle),
);
