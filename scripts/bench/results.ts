/**
 * The shape of a benchmark run's results: what `--json` writes and what the
 * table, the markdown page and the chart are made from. Every measurement of
 * every round is kept, with the medians and spreads derived from them.
 *
 * @module
 */

import type { BenchFile } from "./bench_file.ts";
import type { BenchCase } from "./cases.ts";
import type { MachineDescription, SourceDescription } from "./machine.ts";
import type { Measurement, Summary } from "./measurement.ts";

/** Who was measured. */
export type SubjectKind = "device" | "raw" | "fio";

/** One subject's rounds in one case. */
export interface SubjectResult {
  /** Stable key: `device`, `device workers=2`, `raw-8t`, `fio-2j`. */
  readonly id: string;
  readonly kind: SubjectKind;
  /** As the table shows it. */
  readonly label: string;
  /** Threads doing I/O: the device's workers, the baseline's threads, fio's jobs. */
  readonly threads: number;
  /** The device variant's `-s` options (device only). */
  readonly options?: string;
  readonly rounds: readonly Measurement[];
  readonly summary: Summary;
}

/** A device's median IOPS against one other subject's. */
export interface Ratio {
  /** The other subject's id. */
  readonly against: string;
  /** Device median IOPS / the other's median IOPS. */
  readonly iops: number;
  /** Device median p50 latency minus the other's, in µs. */
  readonly addedP50Us: number;
}

/** How one device variant compares in one case. */
export interface DeviceComparison {
  readonly device: string;
  /** Against the raw baseline with the highest median IOPS. */
  readonly bestRaw: Ratio | null;
  /** Against the raw baseline with as many threads as requests can run at once on the device. */
  readonly sameRaw: Ratio | null;
  /** Against fio's best. */
  readonly bestFio: Ratio | null;
}

/** Everything measured for one case. */
export interface CaseResult {
  readonly case: BenchCase;
  readonly subjects: readonly SubjectResult[];
  readonly comparisons: readonly DeviceComparison[];
}

/** IOPS against queue depth for 4 KiB random reads (the chart). */
export interface SweepResult {
  readonly depths: readonly number[];
  readonly series: readonly {
    readonly id: string;
    readonly kind: SubjectKind;
    readonly label: string;
    readonly points: readonly {
      readonly iodepth: number;
      readonly threads: number;
      readonly rounds: readonly Measurement[];
      readonly summary: Summary;
    }[];
  }[];
}

/** Resident memory and idle CPU of a process with some devices (memory_probe.ts). */
export interface MemoryProbe {
  readonly disks: number;
  /** Shared I/O threads every device attached to (`--iothreads`), or absent: 8 threads each. */
  readonly iothreads?: number;
  /** Before any device was built. */
  readonly bareBytes: number;
  /** With the devices built and their workers idle. */
  readonly idleBytes: number;
  /** After a short load on each disk. */
  readonly loadedBytes: number;
  /** CPU time the process used while the devices sat idle after the load, in % of one core. */
  readonly idleCpuPercent: number;
}

/** A whole run. */
export interface BenchResults {
  readonly schema: 1;
  readonly machine: MachineDescription;
  /** The code measured (null outside a git checkout). */
  readonly source: SourceDescription | null;
  /** Load average when the run ended. */
  readonly loadAverageAfter: readonly number[];
  readonly settings: {
    readonly rounds: number;
    readonly seconds: number;
    /** The device's ramp before each measurement, in seconds (absent in results of before it existed: none). */
    readonly ramp?: number;
    readonly variants: readonly string[];
    readonly threads: readonly number[];
  };
  readonly file: BenchFile;
  readonly cases: readonly CaseResult[];
  readonly sweep: SweepResult | null;
  readonly memory: readonly MemoryProbe[] | null;
  /** Wall time of the run. */
  readonly durationSeconds: number;
}
