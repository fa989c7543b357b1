/**
 * What the benchmark reads about the process and the machine from `/proc`
 * (Linux): the process's CPU time (every thread, Workers included), its
 * resident memory, and the CPU time the whole machine spent busy, so that a
 * measurement can say how much of the machine other processes took while it
 * ran (these 2-core machines are shared).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";

/** Clock ticks per second of `/proc/stat` and `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU seconds used by this process so far, user and system, all threads. */
export function processCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/**
 * CPU seconds of this process's children that have ended and been waited
 * for (cutime + cstime of /proc/self/stat): what a finished `fio` used.
 */
export function childrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // Fields after "(comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / USER_HZ;
}

/** The `VmRSS` of `/proc/<pid>/status` in bytes (default: this process). */
export function residentBytes(pid: number | "self" = "self"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(match[1]) * 1024;
}

/**
 * CPU seconds all CPUs of the machine spent busy since boot (user, nice,
 * system, irq, softirq and steal of the `cpu` line of `/proc/stat`).
 * Differences over a measurement, less the benchmark's own CPU time, are
 * what other processes used.
 */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal [guest guest_nice, counted in user]
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return (user + nice + system + irq + softirq + (steal ?? 0)) / USER_HZ;
}

/** Counters taken at the start of a measurement, to compute its costs at the end. */
export interface UsageMark {
  /** `performance.now()` milliseconds. */
  readonly wallMs: number;
  readonly cpuSeconds: number;
  readonly childCpuSeconds: number;
  readonly machineBusySeconds: number;
}

/** Reads the counters {@linkcode usageSince} compares. */
export function markUsage(): UsageMark {
  return {
    wallMs: performance.now(),
    cpuSeconds: processCpuSeconds(),
    childCpuSeconds: childrenCpuSeconds(),
    machineBusySeconds: machineBusySeconds(),
  };
}

/** What a stretch of time cost. */
export interface Usage {
  readonly wallSeconds: number;
  /** This process's CPU seconds. */
  readonly cpuSeconds: number;
  /** CPU seconds of children that ended meanwhile (fio). */
  readonly childCpuSeconds: number;
  /** The whole machine's busy CPU seconds. */
  readonly machineBusySeconds: number;
}

/** Wall time, process CPU time and machine busy time from `start` to `end`. */
export function usageBetween(start: UsageMark, end: UsageMark): Usage {
  return {
    wallSeconds: (end.wallMs - start.wallMs) / 1000,
    cpuSeconds: end.cpuSeconds - start.cpuSeconds,
    childCpuSeconds: end.childCpuSeconds - start.childCpuSeconds,
    machineBusySeconds: end.machineBusySeconds - start.machineBusySeconds,
  };
}

/** {@linkcode usageBetween} `mark` and now. */
export function usageSince(mark: UsageMark): Usage {
  return usageBetween(mark, markUsage());
}
