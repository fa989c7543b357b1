/**
 * How a load's result reads: a block like fio's normal output
 * (`write: IOPS=45.2k, BW=176MiB/s (185MB/s)(64.0MiB/362msec)`, latency
 * min/max/avg/stdev and p50/p90/p99/p99.9 per direction, verification and
 * errors), a JSON form laid out like fio's `--output-format=json` (tools
 * that read fio's JSON read it), and a one-line progress text.
 *
 * @module
 */

import type { DirectionResult, LoadProgress, LoadResult } from "./load.ts";
import type { LatencySummary } from "./latency.ts";
import { formatBinary, formatCount, formatDecimal } from "./units.ts";

/** Mismatches and errors listed in the human report (the JSON form has up to 32). */
const SHOWN_FAILURES = 8;

const STATUS_NAMES: Record<number, string> = { 1: "IOERR", 2: "UNSUPP" };

/** Picks the unit the bulk of the values read best in (by p99, so one outlier does not decide). */
function latencyUnit(summary: LatencySummary): { name: string; ns: number } {
  const p99 = summary.percentilesNs["99"] ?? summary.maxNs;
  if (p99 < 10_000) return { name: "nsec", ns: 1 };
  if (p99 < 10_000_000) return { name: "usec", ns: 1000 };
  return { name: "msec", ns: 1_000_000 };
}

function round(value: number, decimals: number): string {
  return value.toFixed(decimals);
}

function directionLines(label: string, d: DirectionResult): string[] {
  const lines = [
    `  ${label}: IOPS=${formatCount(d.iops)}, BW=${formatBinary(d.bandwidth)}/s ` +
    `(${formatDecimal(d.bandwidth)}/s)(${formatBinary(d.bytes)}/${Math.round(d.runtimeMs)}msec)` +
    (d.errors > 0 ? `, errors=${d.errors}` : ""),
  ];
  const lat = d.latency;
  if (lat.count > 0) {
    const unit = latencyUnit(lat);
    const v = (ns: number) => ns / unit.ns;
    lines.push(
      `    lat (${unit.name}): min=${round(v(lat.minNs), 0)}, max=${round(v(lat.maxNs), 0)}, ` +
        `avg=${round(v(lat.meanNs), 2)}, stdev=${round(v(lat.stdevNs), 2)}`,
    );
    const cells = Object.entries(lat.percentilesNs).map(([p, ns]) =>
      `${Number(p).toFixed(2)}th=[${round(v(ns), 0).padStart(5)}]`
    );
    lines.push(`    lat percentiles (${unit.name}): ${cells.join(", ")}`);
  }
  return lines;
}

function hex(address: number): string {
  return "0x" + address.toString(16);
}

/**
 * The human result block.
 *
 * @param result what {@linkcode runLoad} returned
 * @param name the disk's name, for the first line (`vda`)
 */
export function formatLoadReport(result: LoadResult, name = "load"): string {
  const { plan } = result;
  const o = plan.options;
  const depth = plan.depth === o.iodepth
    ? `${o.iodepth}`
    : `${o.iodepth} (${plan.depth} in flight)`;
  const mix = o.rw === "rw" || o.rw === "randrw" ? `, rwmixread=${o.rwmixread}` : "";
  const runtime = (o.runtimeMs === null ? "" : `, runtime=${o.runtimeMs / 1000}s` +
    (o.timeBased ? " (time based)" : "")) +
    (o.rampMs > 0 ? `, ramp_time=${o.rampMs / 1000}s` : "");
  const lines = [
    `${name}: rw=${o.rw}${mix}, bs=${formatBinary(o.bs)}, iodepth=${depth}, ` +
    `region=${
      formatBinary(plan.size)
    }@${plan.offset}${runtime}, seed=${o.seed}, verify=${o.verify}`,
  ];
  if (result.read.ios + result.read.errors > 0) lines.push(...directionLines("read", result.read));
  if (result.write.ios + result.write.errors > 0) {
    lines.push(...directionLines("write", result.write));
  }
  if (result.flushed) lines.push("  flush: done (end_fsync)");
  const verify = result.verify;
  if (verify !== null) {
    if (verify.phase !== null) lines.push(...directionLines("verify read", verify.phase));
    const unverified = verify.unverifiedReads > 0
      ? `, ${verify.unverifiedReads} reads of blocks not yet written (not checked)`
      : "";
    lines.push(
      `  verify: ${verify.checked} blocks checked, ${verify.mismatches} mismatches${unverified}`,
    );
    for (const f of verify.failures.slice(0, SHOWN_FAILURES)) {
      let detail = f.reason;
      if (f.foundAddress !== f.address) detail += `; header says address ${hex(f.foundAddress)}`;
      if (f.expectedGeneration !== 0 && f.foundGeneration !== f.expectedGeneration) {
        detail += `; generation ${f.foundGeneration}, expected ${f.expectedGeneration}`;
      }
      lines.push(`    mismatch at ${hex(f.address)} (byte ${f.address}, ${f.phase}): ${detail}`);
    }
    const shown = Math.min(verify.failures.length, SHOWN_FAILURES);
    if (verify.mismatches > shown) {
      lines.push(`    … and ${verify.mismatches - shown} more`);
    }
  }
  if (result.errorCount > 0) {
    const requests = result.errorCount === 1 ? "request" : "requests";
    lines.push(`  errors: ${result.errorCount} failed ${requests}`);
    for (const e of result.errors.slice(0, SHOWN_FAILURES)) {
      const status = `${e.status} (${STATUS_NAMES[e.status] ?? "unknown"})`;
      lines.push(`    ${e.direction} at ${hex(e.address)}: status ${status}`);
    }
  }
  if (result.stoppedBy === "error") {
    lines.push("  stopped at the first failed request (--continue_on_error goes on)");
  } else if (result.stoppedBy === "aborted") {
    lines.push("  stopped: interrupted; the figures are up to then");
  }
  for (const note of result.notes) lines.push(`  note: ${note}`);
  return lines.join("\n");
}

/** What the JSON form says in fio's `fio version` field: who wrote it, in whose layout. */
export const FIO_VERSION_FIELD = "virtio-blk-dm (fio-3.33 JSON layout)";

/** errno of fio's job `error` when the load stopped at a failed request. */
const EIO = 5;
/** Linux completes a request the device answered UNSUPP with EOPNOTSUPP. */
const EOPNOTSUPP = 95;
/** The status byte of a request the device does not support. */
const STATUS_UNSUPP = 2;

/** fio's latency block: min and max in whole nanoseconds, mean and deviation, count. */
function latencyJson(lat: LatencySummary): Record<string, number> {
  return {
    min: lat.minNs,
    max: lat.maxNs,
    mean: lat.meanNs,
    stddev: lat.stdevNs,
    N: lat.count,
  };
}

/**
 * The latency block with fio's percentile table (`"50.000000": ns`, whole
 * nanoseconds), which fio leaves out when nothing was measured.
 */
function withPercentiles(lat: LatencySummary): Record<string, unknown> {
  if (lat.count === 0) return latencyJson(lat);
  const percentile: Record<string, number> = {};
  for (const [p, ns] of Object.entries(lat.percentilesNs)) {
    percentile[Number(p).toFixed(6)] = Math.round(ns);
  }
  return { ...latencyJson(lat), percentile };
}

/**
 * One direction as fio's JSON has it. Our latency runs from submission to
 * completion, fio's `lat`; its submission part is not timed on its own, so
 * `slat_ns` is all zeros and `clat_ns` equals `lat_ns`, as fio reports for
 * its synchronous engines; the percentiles are under both (fio's
 * `clat_percentiles` and `lat_percentiles`). `errors` is ours.
 */
function directionJson(d: DirectionResult): Record<string, unknown> {
  const lat = d.latency;
  const bwBytes = Math.round(d.bandwidth);
  return {
    io_bytes: d.bytes,
    io_kbytes: Math.floor(d.bytes / 1024),
    bw_bytes: bwBytes,
    bw: Math.floor(bwBytes / 1024),
    iops: d.iops,
    runtime: Math.round(d.runtimeMs),
    total_ios: d.ios,
    short_ios: 0,
    drop_ios: 0,
    slat_ns: { min: 0, max: 0, mean: 0, stddev: 0, N: 0 },
    clat_ns: withPercentiles(lat),
    lat_ns: withPercentiles(lat),
    errors: d.errors,
  };
}

/** A direction with nothing done (fio's `trim` for a load that trims nothing). */
const NOTHING: DirectionResult = {
  ios: 0,
  bytes: 0,
  errors: 0,
  runtimeMs: 0,
  iops: 0,
  bandwidth: 0,
  latency: { count: 0, minNs: 0, maxNs: 0, meanNs: 0, stdevNs: 0, percentilesNs: {} },
};

/** The load's options as fio's `job options` has them: fio's names, text values, flags as "". */
function jobOptions(result: LoadResult, name: string): Record<string, string> {
  const { plan } = result;
  const o = plan.options;
  const options: Record<string, string> = {
    name,
    rw: o.rw,
    ...(o.rw === "rw" || o.rw === "randrw" ? { rwmixread: String(o.rwmixread) } : {}),
    bs: String(o.bs),
    iodepth: String(o.iodepth),
    offset: String(plan.offset),
    size: String(plan.size),
    randseed: String(o.seed),
  };
  if (o.runtimeMs !== null) options.runtime = `${o.runtimeMs}ms`;
  if (o.timeBased) options.time_based = "";
  if (o.rampMs > 0) options.ramp_time = `${o.rampMs}ms`;
  if (o.verify !== "none") options.verify = o.verify;
  if (o.endFsync) options.end_fsync = "1";
  if (o.continueOnError) options.continue_on_error = "all";
  if (o.hipri) options.hipri = "";
  return options;
}

/** fio's `time`: the local time as C's ctime() writes it, without the newline. */
function ctime(date: Date): string {
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][date.getDay()];
  const month =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
      date.getMonth()
    ];
  const two = (n: number) => String(n).padStart(2, "0");
  return `${day} ${month} ${String(date.getDate()).padStart(2)} ${two(date.getHours())}:` +
    `${two(date.getMinutes())}:${two(date.getSeconds())} ${date.getFullYear()}`;
}

/**
 * The JSON form, laid out like fio's `--output-format=json`: `fio version`,
 * the time, and `jobs` with one job named after the disk, whose `read`,
 * `write` and `trim` have fio's fields (`io_bytes`, `bw`, `iops`,
 * `clat_ns.percentile`, …). What fio has no field for is under names of
 * our own: each direction's `errors`, and in the job `region`, `depth`,
 * `stopped_by`, `verify` (with its own read phase), `errors` (count and the
 * first failures), `flushed` and `notes`.
 *
 * @param result what {@linkcode runLoad} returned
 * @param name the disk's name (the job's name)
 * @param now when the load ended (fio's `timestamp` and `time`)
 */
export function loadResultJson(
  result: LoadResult,
  name = "load",
  now: Date = new Date(),
): { "fio version": string; jobs: Record<string, unknown>[] } & Record<string, unknown> {
  const { plan } = result;
  const verify = result.verify;
  const firstError = result.errors[0];
  const error = result.stoppedBy !== "error"
    ? 0
    : firstError?.status === STATUS_UNSUPP
    ? EOPNOTSUPP
    : EIO;
  return {
    "fio version": FIO_VERSION_FIELD,
    timestamp: Math.floor(now.getTime() / 1000),
    timestamp_ms: now.getTime(),
    time: ctime(now),
    jobs: [{
      jobname: name,
      groupid: 0,
      error,
      "job options": jobOptions(result, name),
      read: directionJson(result.read),
      write: directionJson(result.write),
      trim: directionJson(NOTHING),
      job_runtime: Math.round(Math.max(result.read.runtimeMs, result.write.runtimeMs)),
      region: { offset: plan.offset, size: plan.size, blocks: plan.blocks },
      depth: plan.depth,
      stopped_by: result.stoppedBy,
      verify: verify === null ? null : {
        method: verify.method,
        checked: verify.checked,
        mismatches: verify.mismatches,
        unverified_reads: verify.unverifiedReads,
        failures: verify.failures.map((f) => ({
          phase: f.phase,
          address: f.address,
          reason: f.reason,
          found_address: f.foundAddress,
          found_generation: f.foundGeneration,
          expected_generation: f.expectedGeneration,
        })),
        read: verify.phase === null ? null : directionJson(verify.phase),
      },
      errors: { count: result.errorCount, first: result.errors },
      flushed: result.flushed,
      notes: result.notes,
    }],
  };
}

/** One progress line for a terminal: `[run 45%] read 12.3k IOPS 48.0MiB/s, write 0 IOPS, 1.2s`. */
export function formatProgress(p: LoadProgress): string {
  const seconds = p.elapsedMs / 1000;
  const rate = (ios: number, bytes: number) =>
    seconds > 0
      ? `${formatCount(ios / seconds)} IOPS ${formatBinary(bytes / seconds)}/s`
      : "0 IOPS";
  const problems = (p.errors > 0 ? `, ${p.errors} errors` : "") +
    (p.mismatches > 0 ? `, ${p.mismatches} mismatches` : "");
  return `[${p.phase} ${Math.floor(p.fraction * 100)}%] read ${rate(p.read.ios, p.read.bytes)}, ` +
    `write ${rate(p.write.ios, p.write.bytes)}, ${seconds.toFixed(1)}s${problems}`;
}
