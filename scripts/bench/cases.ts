/**
 * The benchmark's cases (issue 6): the I/O pattern each one runs through the
 * device, the raw baseline and fio alike.
 *
 * @module
 */

import { VirtioBlkError } from "../../src/errors.ts";

/** Access patterns the cases use (fio's `rw` names). */
export type CaseAccess = "randread" | "randwrite" | "read" | "write";

/** One I/O pattern. */
export interface BenchCase {
  /** What `--case` selects (`randread-qd32`). */
  readonly name: string;
  /** A phrase for tables and charts. */
  readonly title: string;
  readonly rw: CaseAccess;
  /** Bytes per request. */
  readonly bs: number;
  /** Requests in flight: the device's iodepth, the baseline's thread count at most. */
  readonly iodepth: number;
  /**
   * Write-back cache: writes complete without a flush. Write-through
   * (false): every write is followed by fdatasync before it completes, in
   * the device (`writethru`), the baseline and fio (`fdatasync=1`).
   */
  readonly writeback: boolean;
}

const KIB = 1024;
const MIB = 1024 * KIB;

/** Every case, in the order they run (reads first, so writes dirty nothing a read measures). */
export const CASES: readonly BenchCase[] = [
  {
    name: "randread-qd1",
    title: "4 KiB random read, QD1",
    rw: "randread",
    bs: 4 * KIB,
    iodepth: 1,
    writeback: true,
  },
  {
    name: "randread-qd32",
    title: "4 KiB random read, QD32",
    rw: "randread",
    bs: 4 * KIB,
    iodepth: 32,
    writeback: true,
  },
  {
    name: "read-1m-qd8",
    title: "1 MiB sequential read, QD8",
    rw: "read",
    bs: MIB,
    iodepth: 8,
    writeback: true,
  },
  {
    name: "randwrite-qd32-wb",
    title: "4 KiB random write, QD32, write-back",
    rw: "randwrite",
    bs: 4 * KIB,
    iodepth: 32,
    writeback: true,
  },
  {
    name: "randwrite-qd1-wt",
    title: "4 KiB random write, QD1, write-through",
    rw: "randwrite",
    bs: 4 * KIB,
    iodepth: 1,
    writeback: false,
  },
  {
    name: "write-1m-qd8",
    title: "1 MiB sequential write, QD8",
    rw: "write",
    bs: MIB,
    iodepth: 8,
    writeback: true,
  },
];

/** Whether the case writes. */
export function isWrite(benchCase: BenchCase): boolean {
  return benchCase.rw === "write" || benchCase.rw === "randwrite";
}

/** Whether the case visits blocks in random order. */
export function isRandom(benchCase: BenchCase): boolean {
  return benchCase.rw === "randread" || benchCase.rw === "randwrite";
}

/**
 * The cases named in `names` (in the benchmark's order), or all of them when
 * `names` is empty. Throws a `VirtioBlkError` naming an unknown case.
 */
export function selectCases(names: readonly string[]): BenchCase[] {
  for (const name of names) {
    if (!CASES.some((c) => c.name === name)) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `--case ${name}: no such case (${CASES.map((c) => c.name).join(", ")})`,
      );
    }
  }
  return CASES.filter((c) => names.length === 0 || names.includes(c.name));
}

/**
 * The 4 KiB random-read case at queue depth `iodepth`, for the IOPS against
 * queue depth sweep.
 */
export function randomReadAt(iodepth: number): BenchCase {
  return {
    name: `randread-qd${iodepth}`,
    title: `4 KiB random read, QD${iodepth}`,
    rw: "randread",
    bs: 4 * KIB,
    iodepth,
    writeback: true,
  };
}
