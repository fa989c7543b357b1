/**
 * Latency counts that several threads fill and one merges: the buckets of
 * the load generator's histogram (`src/guest/jobs/latency.ts`, within 1.6 %
 * of the true value) in a plain Float64Array, so a baseline worker can post
 * its counts and the runner can add them up before taking percentiles.
 *
 * @module
 */

import { bucketOf, bucketValue } from "../../src/guest/jobs/latency.ts";

/** Buckets of the histogram: values from 2^53 ns on share the last ones. */
export const LATENCY_BUCKETS = bucketOf(2 ** 62) + 1;

/** A mergeable latency histogram (nanoseconds). */
export class LatencyCounts {
  /** Requests per bucket. */
  readonly counts: Float64Array;
  #total = 0;

  /** @param counts existing counts to wrap (e.g. posted by a worker) */
  constructor(counts?: Float64Array) {
    if (counts !== undefined && counts.length !== LATENCY_BUCKETS) {
      throw new RangeError(`latency counts need ${LATENCY_BUCKETS} buckets, got ${counts.length}`);
    }
    this.counts = counts ?? new Float64Array(LATENCY_BUCKETS);
    if (counts !== undefined) { for (const n of counts) this.#total += n; }
  }

  /** Number of latencies recorded. */
  get total(): number {
    return this.#total;
  }

  /** Adds one latency in nanoseconds (negatives count as 0). */
  record(nanoseconds: number): void {
    this.counts[bucketOf(nanoseconds > 0 ? Math.round(nanoseconds) : 0)]++;
    this.#total++;
  }

  /** Adds every latency of `other`. */
  add(other: LatencyCounts): void {
    for (let i = 0; i < LATENCY_BUCKETS; i++) this.counts[i] += other.counts[i];
    this.#total += other.#total;
  }

  /** The latency at percentile `p` (0–100], in nanoseconds; 0 when nothing was recorded. */
  percentile(p: number): number {
    if (this.#total === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#total));
    let seen = 0;
    for (let i = 0; i < LATENCY_BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return bucketValue(i);
    }
    return bucketValue(LATENCY_BUCKETS - 1);
  }
}
