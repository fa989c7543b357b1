/**
 * The caller's memory of one operation: the pieces a read's data goes to
 * or a write's data comes from, in order (a virtio-blk request's data
 * descriptors, say). The caller's vector record is reused once `submit`
 * returns, so the pieces are copied out of it here; the memory itself is
 * not copied: reply data lands in it, and write payloads are sent from it.
 *
 * Positions are byte offsets within the operation (0 to its length).
 *
 * @module
 */

/**
 * Pieces of memory, the shape of the I/O seam's `IoVector` (which can be
 * passed as it is): `count` triples of a region's bytes, an offset in them
 * and a length.
 */
export interface ByteVector {
  /** Pieces in use. */
  readonly count: number;
  /** Each piece's memory (its `bytes`). */
  readonly regions: ArrayLike<{ readonly bytes: Uint8Array }>;
  /** Each piece's offset in its bytes. */
  readonly offsets: ArrayLike<number>;
  /** Each piece's length. */
  readonly lengths: ArrayLike<number>;
}

/** An operation's pieces of memory. */
export class ScatterList {
  /** Pieces in use. */
  count = 0;
  /** Bytes of all pieces. */
  total = 0;
  #bytes: Uint8Array[] = [];
  #offsets = new Float64Array(4);
  /** Position (within the operation) where each piece ends. */
  #ends = new Float64Array(4);
  /** The piece the last lookup found (reads and writes move forward). */
  #cursor = 0;

  /** Takes the pieces of `vector` (the caller may reuse it afterwards). */
  setVector(vector: ByteVector): void {
    this.#reserve(vector.count);
    let total = 0;
    for (let i = 0; i < vector.count; i++) {
      this.#bytes[i] = vector.regions[i].bytes;
      this.#offsets[i] = vector.offsets[i];
      total += vector.lengths[i];
      this.#ends[i] = total;
    }
    this.count = vector.count;
    this.total = total;
    this.#cursor = 0;
  }

  /** One piece: `length` bytes of `bytes` from `offset`. */
  setSingle(bytes: Uint8Array, offset: number, length: number): void {
    this.#reserve(1);
    this.#bytes[0] = bytes;
    this.#offsets[0] = offset;
    this.#ends[0] = length;
    this.count = 1;
    this.total = length;
    this.#cursor = 0;
  }

  /** Whether every piece lies inside its bytes (the caller's vector is not trusted blindly). */
  inBounds(): boolean {
    for (let i = 0; i < this.count; i++) {
      const length = this.#ends[i] - (i === 0 ? 0 : this.#ends[i - 1]);
      const offset = this.#offsets[i];
      if (!(offset >= 0 && length >= 0 && offset + length <= this.#bytes[i].length)) return false;
    }
    return true;
  }

  /** Drops the references to the caller's memory. */
  clear(): void {
    this.#bytes.fill(undefined as unknown as Uint8Array, 0, this.count);
    this.count = 0;
    this.total = 0;
  }

  /** Copies `count` bytes of `source` from `from` into the operation's memory at `at`. */
  copyIn(at: number, source: Uint8Array, from: number, count: number): void {
    while (count > 0) {
      const i = this.#find(at);
      const within = at - this.#start(i);
      const n = Math.min(count, this.#ends[i] - at);
      const target = this.#offsets[i] + within;
      this.#bytes[i].set(source.subarray(from, from + n), target);
      at += n;
      from += n;
      count -= n;
    }
  }

  /** Zeroes `count` bytes of the operation's memory at `at` (a hole). */
  zero(at: number, count: number): void {
    while (count > 0) {
      const i = this.#find(at);
      const n = Math.min(count, this.#ends[i] - at);
      const target = this.#offsets[i] + at - this.#start(i);
      this.#bytes[i].fill(0, target, target + n);
      at += n;
      count -= n;
    }
  }

  /** The longest run of memory from `at` within one piece, at most `max` bytes. */
  view(at: number, max: number): Uint8Array {
    const i = this.#find(at);
    const target = this.#offsets[i] + at - this.#start(i);
    return this.#bytes[i].subarray(target, target + Math.min(max, this.#ends[i] - at));
  }

  /** Calls `emit` with views of the memory from `at` for `count` bytes, piece by piece. */
  pieces(at: number, count: number, emit: (bytes: Uint8Array) => void): void {
    while (count > 0) {
      const piece = this.view(at, count);
      if (piece.length === 0) return; // past the end: the caller checked the total
      emit(piece);
      at += piece.length;
      count -= piece.length;
    }
  }

  #start(i: number): number {
    return i === 0 ? 0 : this.#ends[i - 1];
  }

  /** The piece holding position `at` (0 ≤ at < total). */
  #find(at: number): number {
    const ends = this.#ends;
    let i = this.#cursor;
    if (i < this.count && at < ends[i] && at >= this.#start(i)) return i;
    if (i + 1 < this.count && at >= ends[i] && at < ends[i + 1]) return (this.#cursor = i + 1);
    let low = 0;
    let high = this.count - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (ends[middle] > at) high = middle;
      else low = middle + 1;
    }
    i = low;
    // Skip empty pieces that end where `at` is.
    while (i < this.count - 1 && ends[i] <= at) i++;
    return (this.#cursor = i);
  }

  #reserve(count: number): void {
    if (this.#offsets.length >= count) return;
    const capacity = Math.max(count, 2 * this.#offsets.length);
    const offsets = new Float64Array(capacity);
    offsets.set(this.#offsets);
    this.#offsets = offsets;
    const ends = new Float64Array(capacity);
    ends.set(this.#ends);
    this.#ends = ends;
  }
}
