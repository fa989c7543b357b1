/**
 * Which bytes of a read the server's structured reply has described so
 * far: content chunks (data or hole) may come in any order but MUST NOT
 * overlap, and a reply that claims success MUST have covered every byte
 * (proto.md, "NBD_CMD_READ", structured replies). Without this check a
 * server could end a reply early and leave stale memory passed off as
 * data.
 *
 * Kept as sorted, disjoint, merged ranges: chunks in order (what servers
 * send) stay one range and cost O(1); chunks out of order cost a binary
 * search. The number of separate ranges is bounded, so a server cannot
 * make a reply's bookkeeping grow without limit.
 *
 * @module
 */

/** What adding a range did. */
export const CoverageResult = {
  ADDED: 0,
  /** The range overlaps one described before. */
  OVERLAP: 1,
  /** Too many separate ranges (more than {@linkcode MAX_FRAGMENTS}). */
  FRAGMENTED: 2,
} as const;

/** One of {@linkcode CoverageResult}'s values. */
export type CoverageResultCode = typeof CoverageResult[keyof typeof CoverageResult];

/** The most separate ranges one reply may leave before it is refused. */
export const MAX_FRAGMENTS = 1024;

/** Ranges of a request described so far. */
export class Coverage {
  /** Bytes covered. */
  covered = 0;
  #starts: number[] = [];
  #ends: number[] = [];

  /** Forgets every range. */
  reset(): void {
    this.covered = 0;
    this.#starts.length = 0;
    this.#ends.length = 0;
  }

  /** Adds [start, end) (end > start). */
  add(start: number, end: number): CoverageResultCode {
    const starts = this.#starts;
    const ends = this.#ends;
    const last = starts.length - 1;
    if (last < 0 || start >= ends[last]) {
      // In order (or the first chunk).
      if (last >= 0 && start === ends[last]) ends[last] = end;
      else if (last + 1 === MAX_FRAGMENTS) return CoverageResult.FRAGMENTED;
      else {
        starts.push(start);
        ends.push(end);
      }
      this.covered += end - start;
      return CoverageResult.ADDED;
    }
    // The first range that ends after `start`.
    let low = 0;
    let high = last;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (ends[middle] > start) high = middle;
      else low = middle + 1;
    }
    if (starts[low] < end) return CoverageResult.OVERLAP;
    // Between range low - 1 (ends at or before start) and range low (starts at or after end).
    const joinsBefore = low > 0 && ends[low - 1] === start;
    const joinsAfter = starts[low] === end;
    if (joinsBefore && joinsAfter) {
      ends[low - 1] = ends[low];
      starts.splice(low, 1);
      ends.splice(low, 1);
    } else if (joinsBefore) ends[low - 1] = end;
    else if (joinsAfter) starts[low] = start;
    else if (starts.length === MAX_FRAGMENTS) return CoverageResult.FRAGMENTED;
    else {
      starts.splice(low, 0, start);
      ends.splice(low, 0, end);
    }
    this.covered += end - start;
    return CoverageResult.ADDED;
  }
}
