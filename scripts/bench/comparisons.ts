/**
 * The ratios the table leads with: each device variant's median IOPS
 * against the best raw baseline, the raw baseline with the same number of
 * threads at work, and fio's best; and its added median latency.
 *
 * @module
 */

import type { BenchCase } from "./cases.ts";
import type { DeviceComparison, Ratio, SubjectResult } from "./results.ts";

/** The subject with the highest median IOPS, or null when there is none. */
export function best(subjects: readonly SubjectResult[]): SubjectResult | null {
  let top: SubjectResult | null = null;
  for (const s of subjects) {
    if (top === null || s.summary.iops.median > top.summary.iops.median) top = s;
  }
  return top;
}

function ratio(device: SubjectResult, other: SubjectResult | null | undefined): Ratio | null {
  if (!other) return null;
  const theirs = other.summary.iops.median;
  return {
    against: other.id,
    iops: theirs > 0 ? device.summary.iops.median / theirs : 0,
    addedP50Us: device.summary.p50Us.median - other.summary.p50Us.median,
  };
}

/**
 * Thread count of the raw baseline that matches a device with `workers`
 * workers: no more threads than requests in flight.
 */
export function matchingThreads(workers: number, benchCase: BenchCase): number {
  return Math.min(workers, benchCase.iodepth);
}

/** Compares every device subject of a case with the baselines and fio. */
export function compareDevices(
  benchCase: BenchCase,
  subjects: readonly SubjectResult[],
): DeviceComparison[] {
  const raw = subjects.filter((s) => s.kind === "raw");
  const fio = subjects.filter((s) => s.kind === "fio");
  return subjects.filter((s) => s.kind === "device").map((device) => ({
    device: device.id,
    bestRaw: ratio(device, best(raw)),
    sameRaw: ratio(
      device,
      raw.find((s) => s.threads === matchingThreads(device.threads, benchCase)),
    ),
    bestFio: ratio(device, best(fio)),
  }));
}
