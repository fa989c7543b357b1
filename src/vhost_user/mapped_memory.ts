/**
 * Guest memory made of regions that are mapped into this process at known
 * host addresses: a VMM's RAM files mapped by the vhost-user back end. Each
 * region is viewed through `Deno.UnsafePointerView.getArrayBuffer`, a plain
 * (not shared) ArrayBuffer over the mapping: Atomics.load/store work on it,
 * Atomics.wait does not, so threads wait on eventfds rather than on guest
 * memory.
 *
 * The host addresses travel in the {@linkcode GuestMemoryHandle}, so a Worker
 * rebuilds its own views with {@linkcode MappedGuestMemory.fromHandle}. This
 * module never maps or unmaps anything: whoever mapped the memory (the
 * vhost-user memory table) keeps it mapped while any view may be used, and
 * calls {@linkcode MappedGuestMemory.detach} before unmapping so a stray
 * access on this thread reads an empty view instead of faulting.
 *
 * Deno only: the views need Deno's FFI pointer API (`--allow-ffi`).
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
} from "../memory/guest_memory.ts";

/** One mapped region: where it sits in the guest and in this process. */
export interface MappedRegion {
  /** Guest-physical address of the first byte. */
  readonly gpa: number;
  /** Length in bytes. */
  readonly size: number;
  /** Host virtual address of the first byte (4-byte aligned). */
  readonly hostAddress: bigint;
}

/** The handle of a mapped guest memory: each region's guest address, size and host address. */
export interface MappedMemoryHandle extends GuestMemoryHandle {
  /** Tells this kind of handle apart. */
  readonly kind: "mapped";
  /** Each region's guest address, size and host address in this process. */
  readonly regions: readonly { gpa: number; size: number; hostAddress: bigint }[];
}

/**
 * Guest memory over regions mapped at host addresses.
 *
 * @example View a region another thread (or FFI call) mapped
 * ```ts
 * const memory = new MappedGuestMemory([{ gpa: 0, size: 1 << 20, hostAddress }]);
 * memory.regionFor(0x1000, 16)?.bytes; // the guest's bytes at GPA 0x1000
 * const again = MappedGuestMemory.fromHandle(memory.handle()); // e.g. inside a Worker
 * ```
 */
export class MappedGuestMemory implements GuestMemory {
  readonly regions: readonly MemoryRegion[];
  readonly #mapped: readonly MappedRegion[];
  readonly #buffers: ArrayBuffer[];
  #detached = false;

  /**
   * Builds views of `regions`. They must not overlap in guest-physical
   * space; each must be non-empty, end below 2^53, and start 4-byte aligned
   * in the host (the 16- and 32-bit views need it).
   *
   * @param regions the mapped regions, in any order
   * @throws RangeError when a region is malformed or two overlap
   */
  constructor(regions: readonly MappedRegion[]) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < sorted.length; i++) {
      const { gpa, size, hostAddress } = sorted[i];
      if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(size) || size <= 0) {
        throw new RangeError(`mapped region [${gpa}, +${size}) is not a valid range`);
      }
      if (!Number.isSafeInteger(gpa + size)) {
        throw new RangeError(`mapped region [${gpa}, +${size}) ends beyond 2^53`);
      }
      if (hostAddress <= 0n || hostAddress % 4n !== 0n) {
        throw new RangeError(`mapped region at GPA ${gpa} has a bad host address ${hostAddress}`);
      }
      if (i > 0 && sorted[i - 1].gpa + sorted[i - 1].size > gpa) {
        throw new RangeError(`mapped regions at GPA ${sorted[i - 1].gpa} and ${gpa} overlap`);
      }
    }
    this.#mapped = sorted.map(({ gpa, size, hostAddress }) => ({ gpa, size, hostAddress }));
    this.#buffers = sorted.map(({ size, hostAddress }) => {
      const pointer = Deno.UnsafePointer.create(hostAddress);
      if (pointer === null) throw new RangeError("mapped region at host address 0");
      return Deno.UnsafePointerView.getArrayBuffer(pointer, size);
    });
    this.regions = sorted.map(({ gpa, size }, i) => makeRegion(gpa, this.#buffers[i], 0, size));
  }

  /** Guest memory with no regions: every address is outside it. */
  static empty(): MappedGuestMemory {
    return new MappedGuestMemory([]);
  }

  /** Rebuilds views (on any thread) from a handle made by {@linkcode handle}. */
  static fromHandle(handle: MappedMemoryHandle): MappedGuestMemory {
    return new MappedGuestMemory(handle.regions);
  }

  regionFor(gpa: number, length: number): MemoryRegion | undefined {
    return this.#detached ? undefined : findRegion(this.regions, gpa, length);
  }

  handle(): MappedMemoryHandle {
    return {
      module: import.meta.url,
      kind: "mapped",
      regions: this.#mapped.map((region) => ({ ...region })),
    };
  }

  /**
   * Detaches this thread's views, so that every later access through them
   * sees zero-length arrays (and {@linkcode regionFor} finds nothing) instead
   * of touching memory that is about to be unmapped. Call it once no device
   * uses the memory any more.
   */
  detach(): void {
    this.#detached = true;
    for (const buffer of this.#buffers) {
      if (!buffer.detached) buffer.transfer(0);
    }
  }
}

guestMemoryKinds.register(
  import.meta.url,
  (handle) => MappedGuestMemory.fromHandle(handle as MappedMemoryHandle),
);
