/**
 * A load spread over vCPUs, each on its own request queue (`mq=N --cpus N`),
 * like fio's `numjobs` with `offset_increment`: the region is cut into
 * contiguous shares of whole blocks and the queue depth is split among them,
 * so each vCPU keeps its share of the depth in flight on its own queue, and
 * verification stays exact (no two shares write the same block). The
 * shares' results are summed into one: counts and bytes added, the
 * runtime the longest, latencies from the merged histograms.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { LatencyHistogram } from "./latency.ts";
import {
  type DirectionResult,
  type LoadResult,
  MAX_RECORDS,
  type StopReason,
  type VerifyResult,
} from "./load.ts";
import type { LoadOptions } from "./load_options.ts";
import { type LoadDisk, planLoad } from "./load_plan.ts";

/** Splits `count` into `parts` whole numbers as even as can be, larger ones first. */
function evenSplit(count: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(count / parts) + (i < count % parts ? 1 : 0),
  );
}

/**
 * The options of each share of a load of `options` on `disk` spread over at
 * most `shares` vCPUs: as many shares as there are vCPUs, blocks and
 * requests in flight to go round (so none is empty). Throws, as
 * `planLoad` does, for options the disk cannot take.
 */
export function splitLoad(options: LoadOptions, disk: LoadDisk, shares: number): LoadOptions[] {
  const plan = planLoad(options, disk);
  const count = Math.max(1, Math.min(shares, plan.blocks, options.iodepth));
  const blocks = evenSplit(plan.blocks, count);
  const depths = evenSplit(options.iodepth, count);
  let offset = plan.offset;
  return blocks.map((n, i) => {
    const share: LoadOptions = {
      ...options,
      offset: { bytes: offset },
      size: { bytes: n * options.bs },
      iodepth: depths[i],
    };
    offset += n * options.bs;
    return share;
  });
}

const STOP_SEVERITY: readonly StopReason[] = ["done", "runtime", "aborted", "error"];

function mergeDirections(directions: readonly DirectionResult[]): DirectionResult {
  const states = directions.map((d) => d.histogram);
  if (states.some((state) => state === undefined)) {
    throw new VirtioBlkError("IO_ERROR", "a share of the load reported no latency histogram");
  }
  const histogram = LatencyHistogram.merged(states.map((state) => state!));
  const sum = (pick: (d: DirectionResult) => number) =>
    directions.reduce((total, d) => total + pick(d), 0);
  const ios = sum((d) => d.ios);
  const bytes = sum((d) => d.bytes);
  const runtimeMs = Math.max(0, ...directions.map((d) => d.runtimeMs));
  const seconds = runtimeMs / 1000;
  return {
    ios,
    bytes,
    errors: sum((d) => d.errors),
    runtimeMs,
    iops: seconds > 0 ? ios / seconds : 0,
    bandwidth: seconds > 0 ? bytes / seconds : 0,
    latency: histogram.summary(),
    histogram: histogram.state(),
  };
}

function mergeVerify(verifies: readonly (VerifyResult | null)[]): VerifyResult | null {
  const present = verifies.filter((v): v is VerifyResult => v !== null);
  if (present.length === 0) return null;
  const phases = present.flatMap((v) => v.phase === null ? [] : [v.phase]);
  return {
    method: present[0].method,
    checked: present.reduce((n, v) => n + v.checked, 0),
    mismatches: present.reduce((n, v) => n + v.mismatches, 0),
    unverifiedReads: present.reduce((n, v) => n + v.unverifiedReads, 0),
    failures: present.flatMap((v) => v.failures).slice(0, MAX_RECORDS),
    phase: phases.length === 0 ? null : mergeDirections(phases),
  };
}

/**
 * One result for a load of `options` on `disk` run as `shares` (one per
 * vCPU, in vCPU order, share i on queue i): summed, with a note saying how
 * it was spread.
 */
export function mergeLoadResults(
  options: LoadOptions,
  disk: LoadDisk,
  shares: readonly LoadResult[],
): LoadResult {
  if (shares.length === 0) throw new RangeError("no shares to merge");
  const plan = planLoad(options, disk);
  const notes = [...new Set(shares.flatMap((share) => share.notes))];
  const requests = (share: LoadResult) =>
    share.read.ios + share.read.errors + share.write.ios + share.write.errors;
  notes.push(
    `spread over ${shares.length} vCPUs, each on its own queue: iodepth ` +
      `${shares.map((share) => share.plan.depth).join("+")}, requests ` +
      `${shares.map(requests).join("+")}`,
  );
  return {
    plan: { ...plan, depth: shares.reduce((n, share) => n + share.plan.depth, 0) },
    stoppedBy: shares.map((share) => share.stoppedBy).reduce((worst, reason) =>
      STOP_SEVERITY.indexOf(reason) > STOP_SEVERITY.indexOf(worst) ? reason : worst
    ),
    read: mergeDirections(shares.map((share) => share.read)),
    write: mergeDirections(shares.map((share) => share.write)),
    verify: mergeVerify(shares.map((share) => share.verify)),
    errorCount: shares.reduce((n, share) => n + share.errorCount, 0),
    errors: shares.flatMap((share) => share.errors).slice(0, MAX_RECORDS),
    flushed: shares.some((share) => share.flushed),
    notes,
  };
}
