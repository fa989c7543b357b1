/**
 * A latency histogram with logarithmic buckets, like fio's: values below
 * 128 ns are counted exactly; above, each power of two is split into 64
 * equal buckets, so a percentile is within 1/64 (1.6 %) of the true value.
 * Recording is a few arithmetic operations on a preallocated array: nothing
 * is allocated per request.
 *
 * @module
 */

/** log2 of the sub-buckets per power of two. */
const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
/** Values below this are their own bucket. */
const EXACT = 2 * SUB;
/** Highest power of two covered: 2^53 ns is more than 100 days. */
const MAX_EXPONENT = 53;
const BUCKETS = EXACT + (MAX_EXPONENT - SUB_BITS) * SUB;

/** The percentiles every report shows (fio's clat percentiles subset). */
export const REPORTED_PERCENTILES = [50, 90, 99, 99.9] as const;

/** Summary of a histogram, in nanoseconds. */
export interface LatencySummary {
  /** Samples. */
  readonly count: number;
  /** Shortest. */
  readonly minNs: number;
  /** Longest. */
  readonly maxNs: number;
  /** Mean. */
  readonly meanNs: number;
  /** Standard deviation. */
  readonly stdevNs: number;
  /** Keyed by percentile as text: "50", "90", "99", "99.9". */
  readonly percentilesNs: Readonly<Record<string, number>>;
}

function exponentOf(value: number): number {
  if (value < 2 ** 32) return 31 - Math.clz32(value);
  let e = Math.floor(Math.log2(value));
  if (2 ** e > value) e--;
  if (2 ** (e + 1) <= value) e++;
  return e;
}

/** Bucket index of a value in nanoseconds (non-negative integer). */
export function bucketOf(value: number): number {
  if (value < EXACT) return value;
  const e = Math.min(exponentOf(value), MAX_EXPONENT);
  const shift = e - SUB_BITS;
  const mantissa = Math.min(Math.floor(value / 2 ** shift), 2 * SUB - 1);
  return EXACT + (e - SUB_BITS - 1) * SUB + (mantissa - SUB);
}

/** The middle of a bucket's range (the bucket's value for exact buckets). */
export function bucketValue(index: number): number {
  if (index < EXACT) return index;
  const group = Math.floor((index - EXACT) / SUB);
  const shift = group + 1;
  const mantissa = SUB + ((index - EXACT) % SUB);
  return mantissa * 2 ** shift + (2 ** shift - 1) / 2;
}

/**
 * A histogram's whole state (structured-cloneable), to merge the histograms
 * of loads that ran on different threads ({@linkcode LatencyHistogram.merged}).
 */
export interface LatencyHistogramState {
  /** Count per bucket. */
  readonly counts: Float64Array;
  /** Values recorded. */
  readonly count: number;
  /** The smallest (Infinity when none was). */
  readonly min: number;
  /** The largest (0 when none was). */
  readonly max: number;
  /** Their sum. */
  readonly sum: number;
  /** The sum of their squares. */
  readonly sumSquares: number;
}

/** Counts of latencies in log-spaced buckets, with exact count, min, max, mean and deviation. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #min = Infinity;
  #max = 0;
  #sum = 0;
  #sumSquares = 0;

  /** Adds one latency (nanoseconds; negatives count as 0, fractions are rounded). */
  record(nanoseconds: number): void {
    const value = nanoseconds > 0 ? Math.round(nanoseconds) : 0;
    this.#counts[bucketOf(value)]++;
    this.#count++;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    this.#sum += value;
    this.#sumSquares += value * value;
  }

  /** Number of values recorded. */
  get count(): number {
    return this.#count;
  }

  /** Sum of the values recorded (nanoseconds, rounded as recorded). */
  get total(): number {
    return this.#sum;
  }

  /** A copy of the whole state. */
  state(): LatencyHistogramState {
    return {
      counts: this.#counts.slice(),
      count: this.#count,
      min: this.#min,
      max: this.#max,
      sum: this.#sum,
      sumSquares: this.#sumSquares,
    };
  }

  /** The histogram of every value the histograms behind `states` recorded. */
  static merged(states: readonly LatencyHistogramState[]): LatencyHistogram {
    const histogram = new LatencyHistogram();
    for (const state of states) {
      if (state.counts.length !== BUCKETS) throw new RangeError("not a latency histogram's state");
      for (let i = 0; i < BUCKETS; i++) histogram.#counts[i] += state.counts[i];
      histogram.#count += state.count;
      histogram.#min = Math.min(histogram.#min, state.min);
      histogram.#max = Math.max(histogram.#max, state.max);
      histogram.#sum += state.sum;
      histogram.#sumSquares += state.sumSquares;
    }
    return histogram;
  }

  /**
   * The value at percentile `p` (0–100]: the middle of the bucket holding
   * the ⌈p/100 · count⌉-th smallest value, clamped to the observed min and
   * max. 0 when nothing was recorded.
   */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(Math.max(bucketValue(i), this.#min), this.#max);
    }
    return this.#max;
  }

  /** Count, extremes, mean, standard deviation and the reported percentiles. */
  summary(): LatencySummary {
    const n = this.#count;
    const mean = n === 0 ? 0 : this.#sum / n;
    const variance = n < 2 ? 0 : Math.max(0, (this.#sumSquares - n * mean * mean) / (n - 1));
    const percentilesNs: Record<string, number> = {};
    for (const p of REPORTED_PERCENTILES) percentilesNs[String(p)] = this.percentile(p);
    return {
      count: n,
      minNs: n === 0 ? 0 : this.#min,
      maxNs: this.#max,
      meanNs: mean,
      stdevNs: Math.sqrt(variance),
      percentilesNs,
    };
  }
}
