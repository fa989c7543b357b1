/**
 * One measurement of one subject (the device, a raw baseline, fio) running
 * one case, and the statistics over a case's rounds: median, extremes and
 * quartiles of each figure.
 *
 * @module
 */

/** What one measurement found. */
export interface Measurement {
  /** Requests completed. */
  readonly ios: number;
  readonly bytes: number;
  /** Requests that failed (should be 0). */
  readonly errors: number;
  /** Wall time of the measurement window. */
  readonly seconds: number;
  readonly iops: number;
  /** Bytes per second. */
  readonly bytesPerSecond: number;
  /** Latency percentiles in microseconds (submission to completion as the requester sees it). */
  readonly p50Us: number;
  readonly p99Us: number;
  /** CPU seconds used by what was measured (this process, or fio's own accounting). */
  readonly cpuSeconds: number;
  /** CPU seconds per million requests. */
  readonly cpuSecondsPerMillion: number;
  /** Share of all cores' time that other processes used meanwhile (noise), in percent. */
  readonly othersBusyPercent: number;
}

/** Raw figures of a measurement, before the derived ones are computed. */
export interface MeasurementParts {
  readonly ios: number;
  readonly bytes: number;
  readonly errors: number;
  readonly seconds: number;
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly cpuSeconds: number;
  /** The machine's busy CPU seconds over the window (all processes). */
  readonly machineBusySeconds: number;
  /**
   * CPU seconds the benchmark itself (this process and its children) used
   * over that window; default `cpuSeconds`. The rest of the machine's busy
   * time was other processes'.
   */
  readonly ownMachineSeconds?: number;
  /** Wall time the machine figures cover; default `seconds`. */
  readonly windowSeconds?: number;
  /** Cores of the machine. */
  readonly cores: number;
}

/** Computes rates, CPU per request and the others' share of the machine. */
export function measurementOf(parts: MeasurementParts): Measurement {
  const { ios, bytes, seconds, cpuSeconds } = parts;
  const window = parts.windowSeconds ?? seconds;
  const others = Math.max(0, parts.machineBusySeconds - (parts.ownMachineSeconds ?? cpuSeconds));
  return {
    ios,
    bytes,
    errors: parts.errors,
    seconds,
    iops: seconds > 0 ? ios / seconds : 0,
    bytesPerSecond: seconds > 0 ? bytes / seconds : 0,
    p50Us: parts.p50Ns / 1000,
    p99Us: parts.p99Ns / 1000,
    cpuSeconds,
    cpuSecondsPerMillion: ios > 0 ? (cpuSeconds / ios) * 1e6 : 0,
    othersBusyPercent: window > 0 ? Math.min(100, (others / (parts.cores * window)) * 100) : 0,
  };
}

/** The figures the results table shows, in its column order. */
export const METRICS = [
  "iops",
  "bytesPerSecond",
  "p50Us",
  "p99Us",
  "cpuSecondsPerMillion",
] as const;

/** One of {@linkcode METRICS}, or the noise figure. */
export type Metric = typeof METRICS[number] | "othersBusyPercent";

/** Median and spread of one figure over the rounds. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** First and third quartile (linear interpolation). */
  readonly q1: number;
  readonly q3: number;
  readonly n: number;
}

/** The value at quantile `q` (0–1) of sorted `values`, interpolating linearly. */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
}

/**
 * Median, extremes and quartiles of `values`.
 *
 * @example
 * ```ts
 * spread([3, 1, 2, 10]); // { median: 2.5, min: 1, max: 10, q1: 1.75, q3: 4.75, n: 4 }
 * ```
 */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError("no values to summarise");
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    min: sorted[0],
    max: sorted[sorted.length - 1],
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    n: sorted.length,
  };
}

/** Statistics of every figure over a subject's rounds. */
export type Summary = Readonly<Record<Metric, Spread>>;

/** Summarises the rounds of one subject in one case. */
export function summarize(rounds: readonly Measurement[]): Summary {
  const of = (metric: Metric) => spread(rounds.map((m) => m[metric]));
  return {
    iops: of("iops"),
    bytesPerSecond: of("bytesPerSecond"),
    p50Us: of("p50Us"),
    p99Us: of("p99Us"),
    cpuSecondsPerMillion: of("cpuSecondsPerMillion"),
    othersBusyPercent: of("othersBusyPercent"),
  };
}
