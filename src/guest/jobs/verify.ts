/**
 * The load generator's self-checking block format (its `verify=crc32c`).
 * Every block it writes starts with a 32-byte header and carries a payload
 * derived from the run's seed, the block's address and its write generation:
 *
 * | off | field |
 * |---|---|
 * | 0 | u32 magic "VBLK" |
 * | 4 | u32 CRC-32C of bytes [8, block size) |
 * | 8 | u64 byte address of the block on the disk |
 * | 16 | u32 seed of the run that wrote it |
 * | 20 | u32 write generation (1, 2, … per block; never 0) |
 * | 24 | u32 block size |
 * | 28 | u32 reserved, 0 |
 * | 32 | payload: 32-bit words `pattern[i] ^ key(address, generation)` |
 *
 * A read checks, in order, the magic, the block size (a run with another
 * `bs`), the checksum (corruption), the address (a misdirected write), the
 * seed (another run's data) and, when the run knows which write it last completed there, the
 * generation (a lost or stale write). The same functions let the host side
 * rebuild the exact bytes a run wrote, to check a disk image afterwards.
 *
 * @module
 */

import { crc32c } from "../probe/crc32.ts";

/** Byte offsets of the verification header. */
export const VerifyHeader = {
  MAGIC: 0,
  CRC: 4,
  ADDRESS: 8,
  SEED: 16,
  GENERATION: 20,
  BLOCK_SIZE: 24,
  RESERVED: 28,
  /** Size of the header; the payload follows. */
  SIZE: 32,
} as const;

/** "VBLK" read as a little-endian u32. */
export const VERIFY_MAGIC = 0x4b4c4256;

/** The checksum covers everything after the CRC field. */
const CRC_START = VerifyHeader.ADDRESS;

/** Outcome of checking one block. */
export const VerifyStatus = {
  OK: 0,
  BAD_MAGIC: 1,
  BAD_CRC: 2,
  BAD_ADDRESS: 3,
  BAD_BLOCK_SIZE: 4,
  BAD_SEED: 5,
  STALE_GENERATION: 6,
} as const;

/** One of {@linkcode VerifyStatus}'s values. */
export type VerifyStatusCode = typeof VerifyStatus[keyof typeof VerifyStatus];

const STATUS_TEXT: Record<VerifyStatusCode, string> = {
  0: "ok",
  1: "bad magic (not a block this load wrote)",
  2: "checksum mismatch (data corrupted)",
  3: "address mismatch (misdirected write)",
  4: "block size mismatch (written with another bs)",
  5: "seed mismatch (written by another run)",
  6: "generation mismatch (stale or lost write)",
};

/** Words of a block's payload for a seed; built once per run. */
export function payloadPattern(seed: number, blockSize: number): Uint32Array {
  const words = new Uint32Array(blockSize / 4);
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return words;
}

/** Mixes a block's address and generation into the word XORed over its payload. */
export function payloadKey(address: number, generation: number): number {
  let h = Math.imul((address / 512) >>> 0, 0x9e3779b1) ^ Math.imul(generation, 0x85ebca6b) ^
    Math.floor(address / 2 ** 41);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/**
 * Writes the block for `(address, seed, generation)` into `bytes` at `at`
 * (`pattern` from {@linkcode payloadPattern}). `at` must be a multiple of 4.
 * Allocates nothing.
 */
export function fillBlock(
  bytes: Uint8Array,
  words: Uint32Array,
  view: DataView,
  at: number,
  pattern: Uint32Array,
  address: number,
  seed: number,
  generation: number,
): void {
  const blockSize = pattern.length * 4;
  const key = payloadKey(address, generation);
  const base = at >>> 2;
  for (let i = VerifyHeader.SIZE / 4; i < pattern.length; i++) words[base + i] = pattern[i] ^ key;
  view.setUint32(at + VerifyHeader.MAGIC, VERIFY_MAGIC, true);
  view.setUint32(at + VerifyHeader.ADDRESS, address % 2 ** 32, true);
  view.setUint32(at + VerifyHeader.ADDRESS + 4, Math.floor(address / 2 ** 32), true);
  view.setUint32(at + VerifyHeader.SEED, seed, true);
  view.setUint32(at + VerifyHeader.GENERATION, generation, true);
  view.setUint32(at + VerifyHeader.BLOCK_SIZE, blockSize, true);
  view.setUint32(at + VerifyHeader.RESERVED, 0, true);
  view.setUint32(at + VerifyHeader.CRC, crc32c(bytes, at + CRC_START, at + blockSize), true);
}

/**
 * Checks the block at `bytes[at, at + blockSize)` that should hold
 * `address`, written with `seed`; `generation` 0 accepts any generation.
 * Allocates nothing.
 */
export function checkBlock(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  blockSize: number,
  address: number,
  seed: number,
  generation: number,
): VerifyStatusCode {
  if (view.getUint32(at + VerifyHeader.MAGIC, true) !== VERIFY_MAGIC) return VerifyStatus.BAD_MAGIC;
  // Before the checksum, which covers one block of the size the writer used.
  if (view.getUint32(at + VerifyHeader.BLOCK_SIZE, true) !== blockSize) {
    return VerifyStatus.BAD_BLOCK_SIZE;
  }
  const crc = crc32c(bytes, at + CRC_START, at + blockSize);
  if (view.getUint32(at + VerifyHeader.CRC, true) !== crc) return VerifyStatus.BAD_CRC;
  if (headerAddress(view, at) !== address) return VerifyStatus.BAD_ADDRESS;
  if (view.getUint32(at + VerifyHeader.SEED, true) !== seed >>> 0) return VerifyStatus.BAD_SEED;
  if (generation !== 0 && view.getUint32(at + VerifyHeader.GENERATION, true) !== generation) {
    return VerifyStatus.STALE_GENERATION;
  }
  return VerifyStatus.OK;
}

/** The address a block's header claims. */
export function headerAddress(view: DataView, at: number): number {
  return view.getUint32(at + VerifyHeader.ADDRESS + 4, true) * 2 ** 32 +
    view.getUint32(at + VerifyHeader.ADDRESS, true);
}

/** The generation a block's header claims. */
export function headerGeneration(view: DataView, at: number): number {
  return view.getUint32(at + VerifyHeader.GENERATION, true);
}

/** Words of {@linkcode VerifyStatus} for a report. */
export function verifyStatusText(status: VerifyStatusCode): string {
  return STATUS_TEXT[status];
}

/**
 * The exact bytes a load with `seed` wrote at `address` with `generation`:
 * for checking a disk image from the host side after a run.
 *
 * @example
 * ```ts
 * const image = await Deno.readFile("test.img");
 * const expected = expectedBlock(4096, 1, 1, 4096);
 * image.subarray(4096, 8192); // equals expected after a one-pass verified write
 * ```
 */
export function expectedBlock(
  address: number,
  seed: number,
  generation: number,
  blockSize: number,
): Uint8Array {
  const buffer = new ArrayBuffer(blockSize);
  const bytes = new Uint8Array(buffer);
  fillBlock(
    bytes,
    new Uint32Array(buffer),
    new DataView(buffer),
    0,
    payloadPattern(seed, blockSize),
    address,
    seed >>> 0,
    generation,
  );
  return bytes;
}
