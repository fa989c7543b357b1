/**
 * Runs the benchmark: for each case, the device (each variant), the raw
 * baseline (each thread count) and fio (when installed) take turns, round
 * after round, on the same warmed file, each measurement preceded by an
 * fdatasync of the file so no one pays for another's dirty pages. The order
 * of the subjects rotates from round to round. Then, when asked, the IOPS
 * against queue depth sweep for the chart and the memory probe.
 *
 * @module
 */

import { loadavg } from "node:os";
import { VirtioBlkError } from "../../src/errors.ts";
import { BaselinePool } from "./baseline.ts";
import { prepareBenchFile, settleFile } from "./bench_file.ts";
import { type BenchCase, randomReadAt, selectCases } from "./cases.ts";
import { compareDevices, matchingThreads } from "./comparisons.ts";
import { DeviceRig, type DeviceVariant, deviceVariant } from "./device.ts";
import { fioVersion, runFio } from "./fio.ts";
import { describeMachine, describeSource } from "./machine.ts";
import { type Measurement, summarize } from "./measurement.ts";
import { probeMemory } from "./memory_probe.ts";
import type {
  BenchResults,
  CaseResult,
  MemoryProbe,
  SubjectKind,
  SubjectResult,
  SweepResult,
} from "./results.ts";

/** What to run. */
export interface BenchOptions {
  /** The benchmark file (created when missing). */
  readonly file: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Length of one measurement. */
  readonly seconds: number;
  /**
   * Seconds the device's guest runs each measurement's load before measuring
   * it (fio's `ramp_time`; 0: none). The device's VM is new for each case
   * and its guest's vCPU thread new for each measurement, so without a ramp
   * every figure would include their JIT's warm-up; the raw baseline's
   * threads live for the whole run, and fio has no JIT.
   */
  readonly ramp: number;
  /** Measurements of each subject per case. */
  readonly rounds: number;
  /** Case names to run; empty: all. */
  readonly cases: readonly string[];
  /** Device variants: extra `-s` options each ("" = defaults). */
  readonly variants: readonly string[];
  /** Raw baseline (and fio) thread counts for cases with more than one request in flight. */
  readonly threads: readonly number[];
  readonly baseline: boolean;
  /** Run fio when it is installed. */
  readonly fio: boolean;
  /** Measure resident memory with 1 and 4 devices. */
  readonly memory: boolean;
  /** Length of the memory probe's load on each disk. */
  readonly memorySeconds: number;
  /** Queue depths of the IOPS against queue depth sweep, or null for none. */
  readonly sweepDepths: readonly number[] | null;
}

/** The defaults: a full run takes a few minutes on a 2-core machine. */
export const DEFAULT_BENCH_OPTIONS: BenchOptions = {
  file: new URL("../../tmp/bench/disk-1g.img", import.meta.url).pathname,
  size: 1 << 30,
  seconds: 1,
  ramp: 2,
  rounds: 3,
  cases: [],
  variants: [""],
  threads: [1, 2, 8],
  baseline: true,
  fio: true,
  memory: true,
  memorySeconds: 0.5,
  sweepDepths: null,
};

/** Shared I/O threads of the memory probe's second set (`--iothreads 2`). */
const SHARED_IOTHREADS = 2;

/** Device counts the memory probe measures. */
export const MEMORY_PROBE_DISKS = [1, 4];

/** A subject ready to measure. */
interface Subject {
  readonly id: string;
  readonly kind: SubjectKind;
  readonly label: string;
  readonly threads: number;
  readonly options?: string;
  measure(seconds: number): Promise<Measurement>;
}

/** Progress lines (stderr in the CLI). */
export type Log = (line: string) => void;

/** Runs everything `options` asks for and returns every figure. */
export async function runBenchmark(
  options: BenchOptions,
  log: Log = () => {},
): Promise<BenchResults> {
  const started = performance.now();
  // Check what the user gave before touching any file.
  const cases = selectCases(options.cases);
  const variants = options.variants.map(deviceVariant);
  checkCounts(options);

  const fio = options.fio ? await fioVersion() : null;
  const machine = describeMachine(fio);
  const source = await describeSource();
  const file = prepareBenchFile(options.file, options.size, log);
  log(
    `${file.path}: ${
      file.size >> 20
    } MiB on ${file.fileSystem.type} (${file.fileSystem.device}), ` +
      `read in ${file.warmSeconds.toFixed(1)} s to warm the page cache`,
  );
  const context: RunContext = {
    options,
    path: file.path,
    size: file.size,
    cores: machine.cores,
    fio: fio !== null,
    pool: options.baseline ? new BaselinePool(file.path, file.size, machine.cores) : null,
    log,
  };
  try {
    const caseResults: CaseResult[] = [];
    for (const [i, benchCase] of cases.entries()) {
      const where = `${benchCase.name} (${i + 1}/${cases.length})`;
      caseResults.push(await runCase(context, benchCase, variants, where));
    }
    const sweep = options.sweepDepths === null
      ? null
      : await runSweep(context, variants, options.sweepDepths);
    let memory: MemoryProbe[] | null = null;
    if (options.memory) {
      memory = [];
      // Each device with its 8 threads, then every device on 2 shared I/O threads.
      for (const iothreads of [undefined, SHARED_IOTHREADS]) {
        for (const disks of MEMORY_PROBE_DISKS) {
          const how = iothreads === undefined ? "" : `, ${iothreads} shared I/O threads`;
          log(`memory: ${disks} device${disks === 1 ? "" : "s"}${how}…`);
          memory.push(await probeMemory(file.path, disks, options.memorySeconds, iothreads));
        }
      }
    }
    return {
      schema: 1,
      machine,
      source,
      loadAverageAfter: loadavg().map((x) => Math.round(x * 100) / 100),
      settings: {
        rounds: options.rounds,
        seconds: options.seconds,
        ramp: options.ramp,
        // As given (device options and hipri), so the page says what ran.
        variants: options.variants.map((v) => v.trim()),
        threads: options.threads,
      },
      file,
      cases: caseResults,
      sweep,
      memory,
      durationSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await context.pool?.close();
  }
}

interface RunContext {
  readonly options: BenchOptions;
  readonly path: string;
  readonly size: number;
  readonly cores: number;
  readonly fio: boolean;
  readonly pool: BaselinePool | null;
  readonly log: Log;
}

function checkCounts(options: BenchOptions): void {
  const positive = (name: string, value: number, integer: boolean) => {
    if (!(value > 0) || (integer && !Number.isInteger(value))) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `${name} must be a positive ${integer ? "whole " : ""}number, not ${value}`,
      );
    }
  };
  positive("rounds", options.rounds, true);
  positive("seconds", options.seconds, false);
  if (!(options.ramp >= 0)) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `ramp must be 0 or more seconds, not ${options.ramp}`,
    );
  }
  positive("memory seconds", options.memorySeconds, false);
  for (const t of options.threads) positive("a thread count", t, true);
  for (const d of options.sweepDepths ?? []) positive("a sweep queue depth", d, true);
  if (options.variants.length === 0) {
    throw new VirtioBlkError("INVALID_CONFIG", "at least one device variant is needed");
  }
}

/**
 * Thread counts of the baseline and fio for a case: the configured ones and
 * each variant's matching count, never more than the requests in flight.
 */
export function threadCounts(
  benchCase: BenchCase,
  configured: readonly number[],
  variants: readonly DeviceVariant[],
): number[] {
  const all = new Set([
    ...configured,
    ...variants.map((v) => matchingThreads(v.workers, benchCase)),
  ]);
  return [...all].filter((t) => t <= benchCase.iodepth).sort((a, b) => a - b);
}

function baselineSubjects(context: RunContext, benchCase: BenchCase, threads: number[]): Subject[] {
  const { pool, path, size, cores } = context;
  const count = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const kinds: {
    kind: SubjectKind;
    id: (t: number) => string;
    label: (t: number) => string;
    measure: (t: number, seconds: number) => Promise<Measurement>;
  }[] = [];
  if (pool !== null) {
    kinds.push({
      kind: "raw",
      id: (t) => `raw-${t}t`,
      label: (t) => `raw ${count(t, "thread")}`,
      measure: (t, seconds) => pool.measure(benchCase, t, seconds),
    });
  }
  if (context.fio) {
    kinds.push({
      kind: "fio",
      id: (t) => `fio-${t}j`,
      label: (t) => `fio ${count(t, "job")}`,
      measure: (t, seconds) => runFio(path, size, benchCase, t, seconds, cores),
    });
  }
  return kinds.flatMap((k) =>
    threads.map((t) => ({
      id: k.id(t),
      kind: k.kind,
      label: k.label(t),
      threads: t,
      measure: (seconds: number) => k.measure(t, seconds),
    }))
  );
}

function deviceSubject(context: RunContext, rig: DeviceRig, benchCase: BenchCase): Subject {
  return {
    id: rig.variant.label,
    kind: "device",
    label: rig.variant.label,
    threads: rig.variant.workers,
    options: rig.variant.options,
    measure: (seconds) => rig.measure(benchCase, seconds, context.options.ramp),
  };
}

/** Measures every subject `rounds` times, rotating who goes first. */
async function measureRounds(
  context: RunContext,
  subjects: readonly Subject[],
  where: string,
): Promise<SubjectResult[]> {
  const { rounds, seconds } = context.options;
  const measured = subjects.map(() => [] as Measurement[]);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const i = (round + k) % subjects.length;
      settleFile(context.path);
      const m = await subjects[i].measure(seconds);
      measured[i].push(m);
      context.log(
        `[${where}, round ${round + 1}/${rounds}] ${subjects[i].label}: ` +
          `${Math.round(m.iops)} IOPS, p50 ${m.p50Us.toFixed(1)} µs, ` +
          `${m.cpuSecondsPerMillion.toFixed(2)} CPU s/M req (others used ${
            m.othersBusyPercent.toFixed(0)
          } % of the machine)` +
          (m.errors > 0 ? `, ${m.errors} ERRORS` : ""),
      );
    }
  }
  return subjects.map((s, i) => ({
    id: s.id,
    kind: s.kind,
    label: s.label,
    threads: s.threads,
    ...(s.options === undefined ? {} : { options: s.options }),
    rounds: measured[i],
    summary: summarize(measured[i]),
  }));
}

async function openRigs(
  context: RunContext,
  variants: readonly DeviceVariant[],
  writeback: boolean,
): Promise<DeviceRig[]> {
  const rigs: DeviceRig[] = [];
  try {
    for (const v of variants) {
      rigs.push(await DeviceRig.create(context.path, v, writeback, context.cores));
    }
  } catch (error) {
    await Promise.all(rigs.map((r) => r.close()));
    throw error;
  }
  return rigs;
}

async function runCase(
  context: RunContext,
  benchCase: BenchCase,
  variants: readonly DeviceVariant[],
  where: string,
): Promise<CaseResult> {
  const rigs = await openRigs(context, variants, benchCase.writeback);
  try {
    const threads = threadCounts(benchCase, context.options.threads, variants);
    const subjects = [
      ...rigs.map((rig) => deviceSubject(context, rig, benchCase)),
      ...baselineSubjects(context, benchCase, threads),
    ];
    const results = await measureRounds(context, subjects, where);
    return { case: benchCase, subjects: results, comparisons: compareDevices(benchCase, results) };
  } finally {
    await Promise.all(rigs.map((r) => r.close()));
  }
}

/** 4 KiB random reads at each depth: the device variants, raw and fio with threads = depth. */
async function runSweep(
  context: RunContext,
  variants: readonly DeviceVariant[],
  depths: readonly number[],
): Promise<SweepResult> {
  const rigs = await openRigs(context, variants, true);
  const series = new Map<string, SweepResult["series"][number]>();
  try {
    for (const [i, depth] of depths.entries()) {
      const benchCase = randomReadAt(depth);
      const subjects = [
        ...rigs.map((rig) => deviceSubject(context, rig, benchCase)),
        ...baselineSubjects(context, benchCase, [depth]),
      ];
      const where = `sweep QD${depth} (${i + 1}/${depths.length})`;
      for (const result of await measureRounds(context, subjects, where)) {
        // Baselines are one series per kind whatever their thread count.
        const key = result.kind === "device" ? result.id : result.kind;
        const entry = series.get(key) ?? {
          id: key,
          kind: result.kind,
          label: result.kind === "device"
            ? result.label
            : result.kind === "raw"
            ? "raw (threads = QD)"
            : "fio (jobs = QD)",
          points: [],
        };
        series.set(key, {
          ...entry,
          points: [...entry.points, {
            iodepth: depth,
            threads: result.threads,
            rounds: result.rounds,
            summary: result.summary,
          }],
        });
      }
    }
  } finally {
    await Promise.all(rigs.map((r) => r.close()));
  }
  return { depths, series: [...series.values()] };
}
