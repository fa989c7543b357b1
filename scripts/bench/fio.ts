/**
 * fio as the C reference: the same cases on the same file with the psync
 * engine (pread/pwrite, like the raw baseline), `numjobs` = threads, and the
 * page cache kept (`--invalidate=0`). Write-through writes use O_DSYNC
 * (`--sync=dsync`) where the device and the baseline call fdatasync after
 * the write. Used only when `fio` is installed.
 *
 * @module
 */

import { type BenchCase, isRandom, isWrite } from "./cases.ts";
import { type Measurement, measurementOf } from "./measurement.ts";
import { markUsage, usageSince } from "./proc_stats.ts";

/** `fio --version` (`fio-3.33`), or null when fio cannot be run. */
export async function fioVersion(): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command("fio", {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout).trim() : null;
  } catch {
    return null;
  }
}

/** fio's `filename` escapes colons (they separate file names). */
function fioFileName(path: string): string {
  return path.replaceAll(":", "\\:");
}

/** The fio command line for `benchCase` on `jobs` jobs (exported for tests). */
export function fioArguments(
  path: string,
  size: number,
  benchCase: BenchCase,
  jobs: number,
  seconds: number,
): string[] {
  const args = [
    "--name=bench",
    `--filename=${fioFileName(path)}`,
    "--ioengine=psync",
    "--invalidate=0",
    "--allow_file_create=0",
    "--fallocate=none",
    `--rw=${benchCase.rw}`,
    `--bs=${benchCase.bs}`,
    `--numjobs=${jobs}`,
    "--time_based",
    `--runtime=${Math.max(1, Math.round(seconds * 1000))}ms`,
    "--group_reporting",
    "--lat_percentiles=1",
    "--percentile_list=50:99",
    "--output-format=json",
  ];
  if (isRandom(benchCase)) {
    args.push(`--size=${size}`);
  } else {
    // Sequential: each job streams through its own slice, as one stream split among threads.
    const slice = Math.floor(size / jobs / benchCase.bs) * benchCase.bs;
    args.push(`--size=${slice}`, `--offset_increment=${slice}`);
  }
  // Write-through: O_DSYNC writes, so the latency fio reports includes the sync
  // (with fdatasync=1 fio would time the write and the sync separately).
  if (isWrite(benchCase) && !benchCase.writeback) args.push("--sync=dsync");
  return args;
}

interface FioDirection {
  readonly io_bytes: number;
  readonly total_ios: number;
  readonly runtime: number;
  readonly lat_ns: { readonly percentile?: Record<string, number> };
}

interface FioJob {
  readonly error: number;
  readonly job_runtime: number;
  readonly usr_cpu: number;
  readonly sys_cpu: number;
  readonly read: FioDirection;
  readonly write: FioDirection;
}

/**
 * Runs fio for `benchCase` with `jobs` jobs for `seconds` and measures it.
 * CPU time is fio's own (user + system of its jobs over their run time).
 */
export async function runFio(
  path: string,
  size: number,
  benchCase: BenchCase,
  jobs: number,
  seconds: number,
  cores: number,
): Promise<Measurement> {
  const mark = markUsage();
  const output = await new Deno.Command("fio", {
    args: fioArguments(path, size, benchCase, jobs, seconds),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const usage = usageSince(mark);
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const error = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1);
    throw new Error(`fio failed (exit ${output.code}): ${error}`);
  }
  // fio may print notes before the JSON document.
  const job = (JSON.parse(text.slice(text.indexOf("{"))) as { jobs: FioJob[] }).jobs[0];
  const direction = isWrite(benchCase) ? job.write : job.read;
  const percentiles = direction.lat_ns.percentile ?? {};
  return measurementOf({
    ios: direction.total_ios,
    bytes: direction.io_bytes,
    errors: job.error === 0 ? 0 : 1,
    seconds: direction.runtime / 1000,
    p50Ns: percentiles["50.000000"] ?? 0,
    p99Ns: percentiles["99.000000"] ?? 0,
    cpuSeconds: ((job.usr_cpu + job.sys_cpu) / 100) * (job.job_runtime / 1000),
    machineBusySeconds: usage.machineBusySeconds,
    ownMachineSeconds: usage.cpuSeconds + usage.childCpuSeconds,
    windowSeconds: usage.wallSeconds,
    cores,
  });
}
