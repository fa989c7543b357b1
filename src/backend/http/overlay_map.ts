/**
 * Which sectors of a lazy image the guest has written: the copy-on-write
 * overlay's map, one bit per 512-byte sector in a SharedArrayBuffer that
 * every thread serving the image shares, plus one "dirty" bit per page of
 * the map (for an overlay that keeps its map in a file: the pages to write
 * at the next flush) and the lock of those flushes. This module owns the
 * region's layout. Browser-safe.
 *
 * A thread writes the sectors' data to the overlay first and sets their
 * bits after (`Atomics.or`): a thread that sees a bit set sees the data.
 * The request pool never runs a read and a write of the same sectors at
 * once, so a read does not race the write that sets its bits.
 *
 * @module
 */

import { lock, unlock } from "../../sync/mutex.ts";

/** Bytes a map bit stands for: the virtio sector (§5.2.6: requests are whole sectors). */
export const OVERLAY_SECTOR = 512;

/** Bytes of a map page: what is written back at once when the map lives in a file. */
export const MAP_PAGE_BYTES = 4096;

/** Header words: the lock of flushes. */
const LOCK = 0;
const HEADER_WORDS = 2;

/** A thread's view of an overlay map. */
export class OverlayMap {
  /** Sectors the map covers. */
  readonly sectors: number;
  /** The map's bits as bytes, in the file layout (bit i of byte j: sector 8j + i). */
  readonly bytes: Uint8Array;
  readonly #header: Int32Array;
  readonly #bits: Int32Array;
  readonly #dirty: Int32Array;

  /** Views the map in `buffer` (from {@linkcode OverlayMap.create}) of `sectors` sectors. */
  constructor(buffer: SharedArrayBuffer, sectors: number) {
    const pages = mapPages(sectors);
    this.sectors = sectors;
    this.#header = new Int32Array(buffer, 0, HEADER_WORDS);
    this.#bits = new Int32Array(buffer, HEADER_WORDS * 4, (pages * MAP_PAGE_BYTES) / 4);
    this.bytes = new Uint8Array(buffer, HEADER_WORDS * 4, pages * MAP_PAGE_BYTES);
    this.#dirty = new Int32Array(
      buffer,
      (HEADER_WORDS * 4) + pages * MAP_PAGE_BYTES,
      Math.ceil(pages / 32),
    );
  }

  /** A new map of `sectors` sectors, none written. */
  static create(sectors: number): SharedArrayBuffer {
    const pages = mapPages(sectors);
    return new SharedArrayBuffer(
      HEADER_WORDS * 4 + pages * MAP_PAGE_BYTES + Math.ceil(pages / 32) * 4,
    );
  }

  /** Whether sector `sector` was written. */
  has(sector: number): boolean {
    return (Atomics.load(this.#bits, sector >>> 5) & (1 << (sector & 31))) !== 0;
  }

  /**
   * How many sectors from `sector` on (at most `max`) are written, or not,
   * alike with `sector`: the length of the run a read takes from one place.
   */
  run(sector: number, max: number): number {
    const written = this.has(sector);
    let count = 1;
    while (count < max && this.has(sector + count) === written) count++;
    return count;
  }

  /** Marks `count` sectors from `sector` written (their data is in the overlay already). */
  mark(sector: number, count: number): void {
    for (let s = sector, end = sector + count; s < end;) {
      const word = s >>> 5;
      const first = s & 31;
      const last = Math.min(32, first + (end - s));
      const mask = last - first === 32 ? -1 : ((1 << (last - first)) - 1) << first;
      Atomics.or(this.#bits, word, mask);
      const page = Math.floor((word * 4) / MAP_PAGE_BYTES);
      Atomics.or(this.#dirty, page >>> 5, 1 << (page & 31));
      s += last - first;
    }
  }

  /**
   * Under the flush lock (flushes do I/O under it; they are rare and only
   * other flushes wait): takes a copy of the map pages marked dirty since
   * the last call, makes the overlay's data stable (`syncData`), then hands
   * each copy to `writePage`. A page claims only sectors whose data was
   * written before the copy, so before `syncData`: after a crash the map
   * never points at data that was not made stable. A page marked meanwhile
   * is written at the next call; one whose write fails stays dirty. Returns
   * whether any page was written.
   */
  flushDirty(syncData: () => void, writePage: (page: number, bytes: Uint8Array) => void): boolean {
    lock(this.#header, LOCK);
    const pages: number[] = [];
    let written = 0;
    try {
      for (let word = 0; word < this.#dirty.length; word++) {
        for (let bits = Atomics.exchange(this.#dirty, word, 0); bits !== 0;) {
          const bit = 31 - Math.clz32(bits);
          pages.push(word * 32 + bit);
          bits &= ~(1 << bit);
        }
      }
      const copies = pages.map((page) =>
        this.bytes.slice(page * MAP_PAGE_BYTES, (page + 1) * MAP_PAGE_BYTES)
      );
      syncData();
      for (; written < pages.length; written++) writePage(pages[written], copies[written]);
      return written > 0;
    } finally {
      for (const page of pages.slice(written)) {
        Atomics.or(this.#dirty, page >>> 5, 1 << (page & 31));
      }
      unlock(this.#header, LOCK);
    }
  }
}

/** Map pages for `sectors` sectors. */
export function mapPages(sectors: number): number {
  return Math.max(1, Math.ceil(sectors / 8 / MAP_PAGE_BYTES));
}
