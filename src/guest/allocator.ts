/**
 * A guest-physical memory allocator for the guest side: rings, request
 * headers, indirect tables and data buffers. First fit over a sorted free
 * list, with adjacent free ranges merged; fine for the few hundred long-lived
 * allocations a driver and its workloads make.
 *
 * @module
 */

/** Allocates ranges of guest-physical memory inside `[start, end)`. */
export class GuestAllocator {
  // Sorted, non-overlapping, non-adjacent free ranges [start, end).
  readonly #free: { start: number; end: number }[];
  readonly #sizes = new Map<number, number>();

  /**
   * Starts with the whole range `[start, end)` free.
   *
   * @param start first guest-physical address the allocator may hand out
   * @param end address just past the last one
   * @throws {RangeError} unless both are safe integers and `start < end`
   */
  constructor(readonly start: number, readonly end: number) {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start < end)) {
      throw new RangeError(`bad allocator range [${start}, ${end})`);
    }
    this.#free = [{ start, end }];
  }

  /**
   * Allocates `size` bytes aligned to `alignment` (a power of two). Throws
   * when no free range is large enough.
   */
  alloc(size: number, alignment = 16): number {
    if (!(size > 0) || (alignment & (alignment - 1)) !== 0) {
      throw new RangeError(`bad allocation of ${size} bytes aligned to ${alignment}`);
    }
    for (let i = 0; i < this.#free.length; i++) {
      const range = this.#free[i];
      const at = Math.ceil(range.start / alignment) * alignment;
      if (at + size > range.end) continue;
      const pieces = [];
      if (at > range.start) pieces.push({ start: range.start, end: at });
      if (at + size < range.end) pieces.push({ start: at + size, end: range.end });
      this.#free.splice(i, 1, ...pieces);
      this.#sizes.set(at, size);
      return at;
    }
    throw new RangeError(`guest memory exhausted: no ${size} free bytes aligned to ${alignment}`);
  }

  /** Returns an allocation made by {@linkcode alloc}. */
  free(address: number): void {
    const size = this.#sizes.get(address);
    if (size === undefined) throw new RangeError(`free of ${address}, which was not allocated`);
    this.#sizes.delete(address);
    let range = { start: address, end: address + size };
    let i = this.#free.findIndex((r) => r.start > address);
    if (i < 0) i = this.#free.length;
    const before = this.#free[i - 1];
    const after = this.#free[i];
    if (after && after.start === range.end) {
      range = { start: range.start, end: after.end };
      this.#free.splice(i, 1);
    }
    if (before && before.end === range.start) {
      before.end = range.end;
    } else {
      this.#free.splice(i, 0, range);
    }
  }

  /** Bytes not allocated. */
  get available(): number {
    return this.#free.reduce((sum, r) => sum + r.end - r.start, 0);
  }
}
