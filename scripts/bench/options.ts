/**
 * The benchmark's command line (`deno task bench [options]`), parsed into
 * {@linkcode BenchOptions} and what to do with the results. Every bad value
 * is one `VirtioBlkError` naming the option.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { VirtioBlkError } from "../../src/errors.ts";
import { parseDuration, parseSize } from "../../src/guest/jobs/units.ts";
import { CASES } from "./cases.ts";
import { type BenchOptions, DEFAULT_BENCH_OPTIONS } from "./runner.ts";

/** Queue depths of the chart's sweep. */
export const DEFAULT_SWEEP_DEPTHS = [1, 2, 4, 8, 16, 32];

/** Where `--chart` and `--markdown` write by default. */
export const DEFAULT_OUT_DIR = new URL("../../docs/bench/", import.meta.url).pathname;

/** A parsed command line. */
export interface BenchCommand {
  readonly help: boolean;
  readonly options: BenchOptions;
  /** Render these saved results instead of measuring. */
  readonly fromJson?: string;
  /** Write every figure here. */
  readonly json?: string;
  /** Write the chart (`randread_iops_vs_qd.svg`) into `outDir`. */
  readonly chart: boolean;
  /** Write `results.md` into `outDir`. */
  readonly markdown: boolean;
  readonly outDir: string;
}

const OPTIONS = {
  case: { type: "string", multiple: true },
  rounds: { type: "string" },
  seconds: { type: "string" },
  ramp: { type: "string" },
  file: { type: "string" },
  size: { type: "string" },
  device: { type: "string", multiple: true },
  threads: { type: "string" },
  "no-baseline": { type: "boolean" },
  "no-fio": { type: "boolean" },
  memory: { type: "boolean" },
  "no-memory": { type: "boolean" },
  "memory-seconds": { type: "string" },
  chart: { type: "boolean" },
  "sweep-depths": { type: "string" },
  markdown: { type: "boolean" },
  "out-dir": { type: "string" },
  json: { type: "string" },
  "from-json": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The `--help` text. */
export function usage(): string {
  const d = DEFAULT_BENCH_OPTIONS;
  return `Usage: deno task bench [options]

Runs each case through the device (a VM with one virtio-blk disk and the
built-in guest's load job), the raw baseline (node:fs positional I/O from
Workers) and fio when installed, taking turns for several rounds on one
warmed file, and prints one table of medians and [min–max] spreads.

  --case NAME          run only this case (repeatable): ${CASES.map((c) => c.name).join(", ")}
  --rounds N           measurements per subject and case (default ${d.rounds})
  --seconds T          length of one measurement: 1.5, 500ms (default ${d.seconds})
  --ramp T             the device's guest runs each measurement's load this long first,
                       unmeasured (fio's ramp_time), so figures are of warm threads and
                       not of the JIT's warm-up; 0 for none (default ${d.ramp})
  --device OPTS        a device variant: extra -s options such as workers=2,dispatch=device,
                       hipri for a guest that polls for completions (fio's polled I/O), and
                       nbd for the same file served by qemu-nbd over a Unix socket
                       (repeatable: each variant is measured and compared; --device= is the
                       defaults, which is also what runs when no --device is given)
  --threads LIST       raw baseline and fio thread counts (default ${d.threads.join(",")})
  --no-baseline        skip the raw baseline
  --no-fio             skip fio
  --memory, --no-memory
                       resident memory and idle CPU with 1 and 4 devices (default: on,
                       off with --case)
  --memory-seconds T   the memory probe's load per disk (default ${d.memorySeconds})
  --chart              also sweep 4 KiB random reads over queue depths and write
                       <out-dir>/randread_iops_vs_qd.svg
  --sweep-depths LIST  the sweep's queue depths (default ${DEFAULT_SWEEP_DEPTHS.join(",")})
  --markdown           write <out-dir>/results.md (table, machine, date) for the README
  --out-dir DIR        where --chart and --markdown write (default docs/bench)
  --json PATH          write every figure (all rounds, machine description) as JSON
  --from-json PATH     render saved results (table, --markdown, --chart) without measuring
  --file PATH          the benchmark file, created when missing (default tmp/bench/disk-1g.img)
  --size SIZE          its size (default 1G); an existing file must have exactly this size

Examples:
  deno task bench --case randread-qd32 --rounds 3
  deno task bench --case randread-qd1 --device= --device workers=2 --no-fio   (defaults vs 2 workers)
  deno task bench --case randread-qd32 --device= --device nbd --no-fio        (file vs NBD)
  deno task bench --chart --markdown --json tmp/bench/results.json
`;
}

function invalid(option: string, value: string, why: string): never {
  throw new VirtioBlkError("INVALID_CONFIG", `--${option} ${value}: ${why}`);
}

function wholeNumber(option: string, text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) invalid(option, text, "expected a whole number from 1");
  return n;
}

function numberList(option: string, text: string): number[] {
  const list = text.split(",").map((part) => wholeNumber(option, part));
  return [...new Set(list)].sort((a, b) => a - b);
}

/** A duration in seconds; 0 only where `zero` allows it (`--ramp 0`: none). */
function seconds(option: string, text: string, zero = false): number {
  const ms = parseDuration(text);
  if (ms === undefined || !(ms > 0 || (zero && ms === 0))) {
    invalid(option, text, `expected a time such as ${zero ? "0, " : ""}1, 1.5 or 500ms`);
  }
  return ms / 1000;
}

/**
 * Parses the benchmark's arguments (without the program name).
 *
 * @example
 * ```ts
 * parseBenchArgs(["--case", "randread-qd32", "--rounds", "3"]).options.rounds; // 3
 * ```
 */
export function parseBenchArgs(args: readonly string[]): BenchCommand {
  let values;
  try {
    values = parseArgs({ args: [...args], options: OPTIONS, strict: true }).values;
  } catch (error) {
    throw new VirtioBlkError("INVALID_CONFIG", (error as Error).message);
  }
  const d = DEFAULT_BENCH_OPTIONS;
  const cases = values.case ?? [];
  let size = d.size;
  if (values.size !== undefined) {
    const parsed = parseSize(values.size);
    if (parsed === undefined) invalid("size", values.size, "expected a size such as 64M or 1G");
    size = parsed;
  }
  const chart = values.chart ?? false;
  const options: BenchOptions = {
    file: values.file ?? d.file,
    size,
    seconds: values.seconds === undefined ? d.seconds : seconds("seconds", values.seconds),
    ramp: values.ramp === undefined ? d.ramp : seconds("ramp", values.ramp, true),
    rounds: values.rounds === undefined ? d.rounds : wholeNumber("rounds", values.rounds),
    cases,
    variants: values.device ?? d.variants,
    threads: values.threads === undefined ? d.threads : numberList("threads", values.threads),
    baseline: !values["no-baseline"],
    fio: !values["no-fio"],
    memory: values["no-memory"] ? false : values.memory ?? cases.length === 0,
    memorySeconds: values["memory-seconds"] === undefined
      ? d.memorySeconds
      : seconds("memory-seconds", values["memory-seconds"]),
    sweepDepths: !chart
      ? null
      : values["sweep-depths"] === undefined
      ? DEFAULT_SWEEP_DEPTHS
      : numberList("sweep-depths", values["sweep-depths"]),
  };
  return {
    help: values.help ?? false,
    options,
    fromJson: values["from-json"],
    json: values.json,
    chart,
    markdown: values.markdown ?? false,
    outDir: values["out-dir"] ?? DEFAULT_OUT_DIR,
  };
}
