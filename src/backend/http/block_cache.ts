/**
 * The lazy image's block cache, shared by every thread that serves the
 * image: a SharedArrayBuffer of fixed-size blocks of the image, each in
 * the slot its block number maps to (direct-mapped: block mod slots). This
 * module owns the region's layout.
 *
 * Threads fill and read slots without a lock. Each slot has a sequence
 * word (a seqlock): a thread that stores a block makes it odd first (by a
 * compare-exchange, so two threads never store into one slot at once; the
 * loser just does not cache its block), writes the tag and the bytes, then
 * makes it even again. A reader copies the bytes out between two looks at
 * the sequence word and the tag; if either changed, the copy is not used
 * and the caller fetches the bytes itself. So a read never returns a
 * mixture of two blocks. The image is read-only, so a cached block never
 * goes stale. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";

/** What threads share: the region and its shape. */
export interface BlockCacheHandle {
  /** The slots' words and blocks. */
  readonly buffer: SharedArrayBuffer;
  /** Bytes per block (a power of two, at least 512). */
  readonly blockBytes: number;
  /** Slots. */
  readonly slots: number;
}

/** Int32 words per slot: the tag (block number + 1; 0 empty) and the sequence word. */
const SLOT_WORDS = 2;
const TAG = 0;
const SEQUENCE = 1;

/** A thread's view of the shared block cache. */
export class BlockCache {
  /** Bytes per block. */
  readonly blockBytes: number;
  readonly #slots: number;
  readonly #words: Int32Array;
  readonly #data: Uint8Array;

  /** Views the cache `handle` describes. */
  constructor(handle: BlockCacheHandle) {
    this.blockBytes = handle.blockBytes;
    this.#slots = handle.slots;
    this.#words = new Int32Array(handle.buffer, 0, handle.slots * SLOT_WORDS);
    this.#data = new Uint8Array(handle.buffer, dataOffset(handle.slots));
  }

  /**
   * A new empty cache of about `bytes` bytes in blocks of `blockBytes`.
   *
   * @throws {VirtioBlkError} `INVALID_CONFIG` for a block size that is not a
   *   power of two from 512 to 16 MiB, or a size under one block
   */
  static create(bytes: number, blockBytes: number): BlockCacheHandle {
    if (
      !Number.isSafeInteger(blockBytes) || blockBytes < 512 || blockBytes > 16 << 20 ||
      (blockBytes & (blockBytes - 1)) !== 0
    ) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `cache block size ${blockBytes} must be a power of two from 512 bytes to 16 MiB`,
      );
    }
    const slots = Math.floor(bytes / blockBytes);
    if (!Number.isSafeInteger(slots) || slots < 1 || slots > 2 ** 24) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `cache size ${bytes} must hold 1 to 2^24 blocks of ${blockBytes} bytes`,
      );
    }
    const buffer = new SharedArrayBuffer(dataOffset(slots) + slots * blockBytes);
    return { buffer, blockBytes, slots };
  }

  /** Whether block `block` is cached now (a hint: it may be replaced at any moment). */
  has(block: number): boolean {
    const base = (block % this.#slots) * SLOT_WORDS;
    return Atomics.load(this.#words, base + TAG) === block + 1 &&
      (Atomics.load(this.#words, base + SEQUENCE) & 1) === 0;
  }

  /**
   * Copies `length` bytes from offset `from` of block `block` into
   * `into[at, …)` if the block is cached; false (and `into` unspecified in
   * that range) when it is not, or was replaced during the copy.
   */
  copyOut(block: number, from: number, length: number, into: Uint8Array, at: number): boolean {
    const slot = block % this.#slots;
    const base = slot * SLOT_WORDS;
    const words = this.#words;
    const before = Atomics.load(words, base + SEQUENCE);
    if ((before & 1) !== 0 || Atomics.load(words, base + TAG) !== block + 1) return false;
    const start = slot * this.blockBytes + from;
    into.set(this.#data.subarray(start, start + length), at);
    return Atomics.load(words, base + SEQUENCE) === before &&
      Atomics.load(words, base + TAG) === block + 1;
  }

  /**
   * Caches block `block` from `bytes[at, at + length)` (length: the block's
   * bytes, less than a block only at the image's end), unless another
   * thread is storing into its slot right now.
   */
  store(block: number, bytes: Uint8Array, at: number, length: number): void {
    const slot = block % this.#slots;
    const base = slot * SLOT_WORDS;
    const words = this.#words;
    const sequence = Atomics.load(words, base + SEQUENCE);
    if ((sequence & 1) !== 0) return;
    if (Atomics.compareExchange(words, base + SEQUENCE, sequence, sequence + 1) !== sequence) {
      return;
    }
    Atomics.store(words, base + TAG, 0);
    this.#data.set(bytes.subarray(at, at + length), slot * this.blockBytes);
    Atomics.store(words, base + TAG, block + 1);
    // Wraps within the positive even numbers: bit 0 stays the "storing" flag.
    Atomics.store(words, base + SEQUENCE, (sequence + 2) & 0x3fffffff);
  }
}

/** Where the blocks start: after the slot words, 8-aligned. */
function dataOffset(slots: number): number {
  return Math.ceil((slots * SLOT_WORDS * 4) / 8) * 8;
}
