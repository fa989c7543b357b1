/**
 * The order in which a load visits the blocks of its region: sequential, or
 * a seeded random permutation that visits every block exactly once per pass
 * (what fio's random map gives), computed on the fly with no per-block
 * memory. Also the seeded generator that draws the read/write mix.
 *
 * @module
 */

/** A small seeded PRNG (mulberry32): deterministic for a seed, fast, no allocation. */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniformly distributed integer in [0, n) for n <= 2^32. */
  below(n: number): number {
    return Math.floor((this.nextU32() / 2 ** 32) * n);
  }
}

/** Most blocks a region may have (the permutation works on up to 32 bits). */
export const MAX_BLOCKS = 2 ** 32;

const ROUNDS = 3;
const MULTIPLIERS = [0x2c1b3c6d, 0x297a2d39, 0x7feb352d] as const;

/**
 * Visits `blocks` block indexes per pass, in order or as a seeded
 * permutation. The permutation is a bijection on the next power of two
 * (XOR with a key, multiply by an odd constant, xorshift — each invertible
 * modulo 2^bits), walked with a counter; values >= `blocks` are skipped
 * ("cycle walking"), which costs under two steps per block on average.
 */
export class BlockOrder {
  readonly #blocks: number;
  readonly #random: boolean;
  readonly #mask: number;
  readonly #shift: number;
  readonly #keys = new Uint32Array(ROUNDS);
  readonly #keySource: Random;
  #counter = 0;
  #pass = 0;

  /**
   * @param blocks how many blocks (1 … 2^32)
   * @param random permutation (true) or sequential order
   * @param seed seeds the permutations (one per pass)
   */
  constructor(blocks: number, random: boolean, seed: number) {
    if (!(Number.isSafeInteger(blocks) && blocks >= 1 && blocks <= MAX_BLOCKS)) {
      throw new RangeError(`block count ${blocks} outside 1…2^32`);
    }
    this.#blocks = blocks;
    this.#random = random;
    const bits = Math.max(1, Math.ceil(Math.log2(blocks)));
    this.#mask = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
    this.#shift = Math.max(1, bits >>> 1);
    this.#keySource = new Random(seed ^ 0x5bd1e995);
    this.#newKeys();
  }

  /** Passes completed so far. */
  get pass(): number {
    return this.#pass;
  }

  /** The next block index of this pass, or -1 when the pass has visited every block. */
  next(): number {
    if (!this.#random) return this.#counter < this.#blocks ? this.#counter++ : -1;
    while (this.#counter <= this.#mask) {
      const value = this.#permute(this.#counter++);
      if (value < this.#blocks) return value;
    }
    return -1;
  }

  /** Starts another pass over every block (a fresh permutation in random order). */
  nextPass(): void {
    this.#counter = 0;
    this.#pass++;
    this.#newKeys();
  }

  #newKeys(): void {
    for (let i = 0; i < ROUNDS; i++) this.#keys[i] = this.#keySource.nextU32() & this.#mask;
  }

  #permute(index: number): number {
    const mask = this.#mask;
    let x = index;
    for (let round = 0; round < ROUNDS; round++) {
      x = ((x ^ this.#keys[round]) >>> 0) & mask;
      x = (Math.imul(x, MULTIPLIERS[round]) >>> 0) & mask;
      x = (x ^ (x >>> this.#shift)) >>> 0;
    }
    return x >>> 0;
  }
}
