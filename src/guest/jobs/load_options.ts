/**
 * Options of the fio-like load, as the command line spells them
 * (`--rw=randwrite --bs=4k --iodepth=32 --size=64M --runtime=10
 * --verify=crc32c`). {@linkcode LOAD_OPTION_DEFINITIONS} plugs into
 * `node:util` `parseArgs`; {@linkcode parseLoadOptions} turns its `values`
 * into checked {@linkcode LoadOptions}, or throws one {@linkcode VirtioBlkError}
 * naming the bad option. Checks that need the disk (block size, capacity)
 * happen in `planLoad`.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { parseDuration, parseSize } from "./units.ts";

/** Access patterns, as fio's `rw`. */
export const READ_WRITE_MODES = ["read", "write", "randread", "randwrite", "rw", "randrw"] as const;

/** One of {@linkcode READ_WRITE_MODES}. */
export type ReadWrite = typeof READ_WRITE_MODES[number];

/** A byte count, or a percentage of the disk's capacity (`--size=50%`). */
export type Amount = { readonly bytes: number } | { readonly percent: number };

/** Data verification methods. */
export type VerifyMethod = "crc32c" | "none";

/** A load, checked for everything that does not depend on the disk. */
export interface LoadOptions {
  /** Access pattern (fio `rw`). */
  readonly rw: ReadWrite;
  /** Percentage of reads in `rw`/`randrw` (fio `rwmixread`). */
  readonly rwmixread: number;
  /** Bytes per request, a multiple of 512 (fio `bs`). */
  readonly bs: number;
  /** Requests kept in flight (fio `iodepth`). */
  readonly iodepth: number;
  /** Bytes of the region to cover from `offset`; null: to the end of the disk. */
  readonly size: Amount | null;
  /** Start of the region. */
  readonly offset: Amount;
  /** Stop after this long (milliseconds), or null. */
  readonly runtimeMs: number | null;
  /** Keep going over the region until `runtime` passes (fio `time_based`). */
  readonly timeBased: boolean;
  /**
   * Run the load this long (milliseconds) before the measured run, counting
   * nothing but failures (fio `ramp_time`): the figures are then of a warm
   * system (caches, and the JIT of every thread on the path). 0: no ramp.
   */
  readonly rampMs: number;
  /** Seed of the random order, the read/write mix and the data pattern. */
  readonly seed: number;
  /** Write self-checking blocks and check every block read (fio `verify`). */
  readonly verify: VerifyMethod;
  /** Flush the disk's write cache when the writes are done (fio `end_fsync`). */
  readonly endFsync: boolean;
  /** Count failed requests and go on, instead of stopping at the first. */
  readonly continueOnError: boolean;
  /** Poll for completions before sleeping on the interrupt (fio `hipri`: polled I/O). */
  readonly hipri: boolean;
}

/** The options a load has when nothing is given (fio's defaults where fio has one). */
export const DEFAULT_LOAD_OPTIONS: LoadOptions = {
  rw: "read",
  rwmixread: 50,
  bs: 4096,
  iodepth: 1,
  size: null,
  offset: { bytes: 0 },
  runtimeMs: null,
  timeBased: false,
  rampMs: 0,
  seed: 1,
  verify: "none",
  endFsync: false,
  continueOnError: false,
  hipri: false,
};

/** Option definitions for `node:util` `parseArgs` (`options: { ...LOAD_OPTION_DEFINITIONS }`). */
export const LOAD_OPTION_DEFINITIONS = {
  rw: { type: "string" },
  rwmixread: { type: "string" },
  bs: { type: "string" },
  iodepth: { type: "string" },
  size: { type: "string" },
  offset: { type: "string" },
  runtime: { type: "string" },
  time_based: { type: "boolean" },
  ramp_time: { type: "string" },
  seed: { type: "string" },
  verify: { type: "string" },
  end_fsync: { type: "boolean" },
  continue_on_error: { type: "boolean" },
  hipri: { type: "boolean" },
} as const;

/** Name of a load option on the command line. */
export type LoadOptionName = keyof typeof LOAD_OPTION_DEFINITIONS;

/** Help lines for `--help`: option, value, meaning (with the default). */
export const LOAD_OPTION_HELP: readonly {
  readonly name: LoadOptionName;
  readonly value: string;
  readonly description: string;
}[] = [
  { name: "rw", value: "MODE", description: `${READ_WRITE_MODES.join("|")} (default read)` },
  { name: "rwmixread", value: "PCT", description: "percent reads in rw/randrw (default 50)" },
  { name: "bs", value: "SIZE", description: "bytes per request, multiple of 512 (default 4k)" },
  { name: "iodepth", value: "N", description: "requests in flight (default 1)" },
  { name: "size", value: "SIZE|PCT%", description: "region to cover (default: to end of disk)" },
  { name: "offset", value: "SIZE|PCT%", description: "start of the region (default 0)" },
  { name: "runtime", value: "TIME", description: "stop after TIME (10, 10s, 500ms, 2m)" },
  { name: "time_based", value: "", description: "repeat the region until --runtime passes" },
  { name: "ramp_time", value: "TIME", description: "run TIME unmeasured first (needs time_based)" },
  { name: "seed", value: "N", description: "seed of order, mix and data (default 1)" },
  { name: "verify", value: "crc32c|none", description: "self-checking blocks (default none)" },
  { name: "end_fsync", value: "", description: "flush the write cache after the writes" },
  { name: "continue_on_error", value: "", description: "count failed requests and go on" },
  { name: "hipri", value: "", description: "poll for completions before sleeping (polled I/O)" },
];

/** Largest `bs`: 256 MiB (a request's data must fit one descriptor and guest memory). */
export const MAX_BLOCK_SIZE = 256 << 20;

/** Largest `iodepth`: the largest split-ring queue (virtio 1.2 §2.7). */
export const MAX_IODEPTH = 32768;

function invalid(option: string, value: string, why: string): never {
  throw new VirtioBlkError("INVALID_CONFIG", `--${option}=${value}: ${why}`);
}

function text(values: Readonly<Record<string, unknown>>, name: LoadOptionName): string | undefined {
  let value = values[name];
  if (Array.isArray(value)) value = value.at(-1);
  if (value === undefined) return undefined;
  if (typeof value !== "string") {
    throw new VirtioBlkError("INVALID_CONFIG", `--${name} needs a value`);
  }
  return value;
}

function flag(values: Readonly<Record<string, unknown>>, name: LoadOptionName): boolean {
  let value = values[name];
  if (Array.isArray(value)) value = value.at(-1);
  if (value === undefined || value === false) return false;
  if (value === true) return true;
  throw new VirtioBlkError("INVALID_CONFIG", `--${name} takes no value`);
}

function integer(option: LoadOptionName, value: string, min: number, max: number): number {
  const n = /^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(value) ? Number(value) : NaN;
  // One message for words, signs (-1) and numbers out of range alike: what is wanted.
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    invalid(option, value, `must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function amount(option: LoadOptionName, value: string, allowZero: boolean): Amount {
  const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
  if (percent !== null) {
    const p = Number(percent[1]);
    if (p > 100 || (!allowZero && p === 0)) {
      invalid(
        option,
        value,
        allowZero
          ? "a percentage must be from 0 to 100"
          : "a percentage must be above 0, at most 100",
      );
    }
    return { percent: p };
  }
  const bytes = parseSize(value);
  if (bytes === undefined) invalid(option, value, "expected a size such as 4096, 64k, 1M or 50%");
  if (!allowZero && bytes === 0) invalid(option, value, "must be more than 0");
  return { bytes };
}

/**
 * Checks the `values` of `parseArgs` (other keys are ignored) and returns
 * complete {@linkcode LoadOptions}, defaults filled in. Throws a
 * {@linkcode VirtioBlkError} ("INVALID_CONFIG") naming the first bad option.
 *
 * @example
 * ```ts
 * const { values } = parseArgs({ args, options: { ...LOAD_OPTION_DEFINITIONS } });
 * const options = parseLoadOptions(values); // { rw: "randwrite", bs: 4096, … }
 * ```
 */
export function parseLoadOptions(values: Readonly<Record<string, unknown>>): LoadOptions {
  const d = DEFAULT_LOAD_OPTIONS;
  const rwText = text(values, "rw");
  let rw: ReadWrite = d.rw;
  if (rwText !== undefined) {
    const mode = rwText === "readwrite" ? "rw" : rwText;
    if (!(READ_WRITE_MODES as readonly string[]).includes(mode)) {
      invalid("rw", rwText, `expected one of ${READ_WRITE_MODES.join(", ")}`);
    }
    rw = mode as ReadWrite;
  }
  const mix = text(values, "rwmixread");
  const rwmixread = mix === undefined ? d.rwmixread : integer("rwmixread", mix, 0, 100);

  const bsText = text(values, "bs");
  let bs = d.bs;
  if (bsText !== undefined) {
    const parsed = parseSize(bsText);
    if (parsed === undefined) invalid("bs", bsText, "expected a size such as 512, 4k or 1M");
    if (parsed === 0 || parsed % 512 !== 0) invalid("bs", bsText, "must be a multiple of 512");
    if (parsed > MAX_BLOCK_SIZE) invalid("bs", bsText, `must be at most ${MAX_BLOCK_SIZE >> 20}M`);
    bs = parsed;
  }
  const depth = text(values, "iodepth");
  const iodepth = depth === undefined ? d.iodepth : integer("iodepth", depth, 1, MAX_IODEPTH);

  const sizeText = text(values, "size");
  const size = sizeText === undefined ? d.size : amount("size", sizeText, false);
  const offsetText = text(values, "offset");
  const offset = offsetText === undefined ? d.offset : amount("offset", offsetText, true);
  if ("bytes" in offset && offset.bytes % 512 !== 0) {
    invalid("offset", offsetText!, "must be a multiple of 512");
  }

  const runtimeText = text(values, "runtime");
  let runtimeMs = d.runtimeMs;
  if (runtimeText !== undefined) {
    const ms = parseDuration(runtimeText);
    if (ms === undefined) {
      invalid("runtime", runtimeText, "expected a time such as 10, 10s, 500ms or 2m");
    }
    if (!(ms > 0)) invalid("runtime", runtimeText, "must be more than 0");
    runtimeMs = ms;
  }
  const timeBased = flag(values, "time_based");
  if (timeBased && runtimeMs === null) {
    throw new VirtioBlkError("INVALID_CONFIG", "--time_based needs --runtime");
  }
  const rampText = text(values, "ramp_time");
  let rampMs = d.rampMs;
  if (rampText !== undefined) {
    const ms = parseDuration(rampText);
    if (ms === undefined) invalid("ramp_time", rampText, "expected a time such as 2, 2s or 500ms");
    rampMs = ms;
  }
  if (rampMs > 0 && !timeBased) {
    // Without time_based the run covers the region once: a ramp would use part of it up.
    throw new VirtioBlkError("INVALID_CONFIG", "--ramp_time needs --time_based");
  }
  const seedText = text(values, "seed");
  const seed = seedText === undefined ? d.seed : integer("seed", seedText, 0, 0xffffffff);

  const verifyText = text(values, "verify");
  let verify: VerifyMethod = d.verify;
  if (verifyText !== undefined) {
    const method = verifyText.toLowerCase();
    if (method === "crc32c" || method === "crc32c-intel") verify = "crc32c";
    else if (method === "none" || method === "0") verify = "none";
    else invalid("verify", verifyText, "only crc32c (or none) is supported");
  }
  return {
    rw,
    rwmixread,
    bs,
    iodepth,
    size,
    offset,
    runtimeMs,
    timeBased,
    rampMs,
    seed,
    verify,
    endFsync: flag(values, "end_fsync"),
    hipri: flag(values, "hipri"),
    continueOnError: flag(values, "continue_on_error"),
  };
}
