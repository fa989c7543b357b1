/**
 * The guest-memory seam. The queue, request and device code only ever see
 * guest memory through this interface, so the same code runs over one shared
 * WebAssembly memory (our own guests) or over several regions mapped from a
 * VMM's memory files (vhost-user).
 *
 * Guest-physical addresses (GPAs) and lengths are plain numbers. Guest fields
 * that are 64-bit (descriptor addresses, sectors) are converted with
 * {@linkcode joinU64}, which maps anything at or above 2^53 to
 * {@linkcode UNREPRESENTABLE_ADDRESS}, an address no region contains; below
 * 2^53 every sum and difference used in the bounds checks is exact.
 *
 * @module
 */

import { type PluginHandle, PluginRegistry } from "../runtime/plugins.ts";

/** One contiguous range of guest-physical memory backed by one buffer. */
export interface MemoryRegion {
  /** Guest-physical address of the first byte. */
  readonly gpa: number;
  /** Length in bytes. */
  readonly size: number;
  /** Byte view of the region (index 0 is `gpa`). */
  readonly bytes: Uint8Array;
  /** 16-bit view of the region; index `i` covers bytes `2i, 2i+1`. */
  readonly u16: Uint16Array;
  /** 32-bit view of the region; index `i` covers bytes `4i … 4i+3`. */
  readonly u32: Uint32Array;
}

/**
 * What every thread needs to rebuild its own view of a guest memory: the
 * module of its kind (which registered an opener in
 * {@linkcode guestMemoryKinds}) and the kind's own fields (a buffer, mapped
 * addresses).
 */
export interface GuestMemoryHandle extends PluginHandle {
  /** The kind of memory, for messages. */
  readonly kind: string;
}

/** How each kind of guest memory is opened from its handle, by module. */
export const guestMemoryKinds: PluginRegistry<(handle: GuestMemoryHandle) => GuestMemory> =
  new PluginRegistry("guest memory kind");

/** Rebuilds guest memory from its handle on this thread (its module loaded here). */
export function openGuestMemory(handle: GuestMemoryHandle): GuestMemory {
  return guestMemoryKinds.get(handle)(handle);
}

/** Guest memory as the device sees it: a set of non-overlapping regions. */
export interface GuestMemory {
  /** The regions, sorted by guest-physical address. */
  readonly regions: readonly MemoryRegion[];
  /**
   * The region that holds all of `[gpa, gpa + length)`, or `undefined` when
   * any byte of it lies outside guest memory or the range spans two regions.
   * A range that ends exactly at the end of a region is inside it.
   */
  regionFor(gpa: number, length: number): MemoryRegion | undefined;
  /** A structured-cloneable handle another thread turns back into a view. */
  handle(): GuestMemoryHandle;
}

/** Returned by {@linkcode joinU64} for values of 2^53 and above. */
export const UNREPRESENTABLE_ADDRESS = Number.MAX_SAFE_INTEGER;

const TWO_POW_32 = 0x1_0000_0000;
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

/** Combines the two little-endian halves of a guest u64 into a number. */
export function joinU64(low: number, high: number): number {
  if (high >>> 0 > MAX_SAFE_HIGH_WORD) return UNREPRESENTABLE_ADDRESS;
  return (high >>> 0) * TWO_POW_32 + (low >>> 0);
}

/**
 * Whether `[gpa, gpa + length)` lies inside `region`, written so that no
 * intermediate value can overflow or lose precision.
 */
export function regionContains(region: MemoryRegion, gpa: number, length: number): boolean {
  return gpa >= region.gpa && length <= region.size && gpa - region.gpa <= region.size - length;
}

/** Builds a {@linkcode MemoryRegion} over `buffer[byteOffset, byteOffset + size)`. */
export function makeRegion(
  gpa: number,
  buffer: ArrayBufferLike,
  byteOffset: number,
  size: number,
): MemoryRegion {
  if (byteOffset % 4 !== 0) throw new RangeError("a memory region must start 4-byte aligned");
  return {
    gpa,
    size,
    bytes: new Uint8Array(buffer, byteOffset, size),
    u16: new Uint16Array(buffer, byteOffset, Math.floor(size / 2)),
    u32: new Uint32Array(buffer, byteOffset, Math.floor(size / 4)),
  };
}

/** Finds the region for a range in a sorted list of regions. */
export function findRegion(
  regions: readonly MemoryRegion[],
  gpa: number,
  length: number,
): MemoryRegion | undefined {
  for (let i = 0; i < regions.length; i++) {
    const region = regions[i];
    if (regionContains(region, gpa, length)) return region;
  }
  return undefined;
}
