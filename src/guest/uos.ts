/**
 * The built-in guest's (ACRN's "UOS") jobs. `uos_worker.ts` boots the guest
 * in its vCPU Worker (PCI scan, one driver per virtio-blk function, disks
 * named vda, vdb, … in slot order) and runs one of these.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import type { GuestMachine } from "./boot.ts";
import { type LoadProgress, type LoadResult, runLoad } from "./jobs/load.ts";
import type { LoadOptions } from "./jobs/load_options.ts";
import { formatLoadReport, formatProgress, loadResultJson } from "./jobs/report.ts";
import { collectLsblk, formatLsblkTable, lsblkJson } from "./jobs/lsblk.ts";
import { describeCapacityChange, watchDisks } from "./jobs/watch.ts";
import { StopFlag } from "../sync/stop_flag.ts";

/** What the guest is asked to do. */
export type UosJob =
  | { readonly kind: "lsblk"; readonly json: boolean }
  | {
    /** `lsblk`, then every configuration change (resize, medium change) until stopped. */
    readonly kind: "watch";
    readonly json: boolean;
    /** A {@linkcode StopFlag}'s buffer: once set, the watch ends. */
    readonly stop: SharedArrayBuffer;
  }
  | {
    readonly kind: "load";
    /** The disk to load (vda, vdb, …). */
    readonly disk: string;
    readonly options: LoadOptions;
    readonly json: boolean;
    /** Report progress lines (the CLI asks when stderr is a terminal). */
    readonly progress: boolean;
    /** Hand each progress snapshot over as data too (a page draws its chart from them). */
    readonly progressEvents?: boolean;
    /** How often progress is reported, in milliseconds (default 1000). */
    readonly progressIntervalMs?: number;
    /** A {@linkcode StopFlag}'s buffer: once set, the load stops and reports what it did. */
    readonly stop?: SharedArrayBuffer;
  };

/** What a job reports: 0 when it went as expected. */
export interface UosResult {
  /** The guest program's exit status (0: the job went as expected). */
  readonly exitCode: number;
  /** A load job's figures, for callers that use them rather than the printed report. */
  readonly load?: LoadResult;
}

/** Where a job's output goes. */
export interface JobOutput {
  /** The job's result (stdout). */
  print(text: string): void;
  /** Progress (stderr), a line that replaces the previous one. */
  progress(text: string): void;
  /** The progress is over: its last line stays, and what comes next starts below it. */
  endProgress?(): void;
  /** A progress snapshot as data, when the job asks for progress events. */
  status?(progress: LoadProgress): void;
}

/**
 * Runs `job` on the booted guest. Exit code 0 when it went as expected;
 * 1 when a load saw failed requests or verification mismatches.
 */
export function runJob(guest: GuestMachine, job: UosJob, output: JobOutput): UosResult {
  const print = (text: string) => output.print(text);
  const lsblk = () => {
    const rows = collectLsblk(guest.disks.map((disk) => ({
      name: disk.name,
      slot: disk.pci.func === 0 ? disk.pci.slot : `${disk.pci.slot}:${disk.pci.func}`,
      driver: disk.driver,
    })));
    print(job.json ? JSON.stringify(lsblkJson(rows), null, 2) : formatLsblkTable(rows));
  };
  switch (job.kind) {
    case "lsblk":
      lsblk();
      return { exitCode: 0 };
    case "watch":
      watchDisks(guest, new StopFlag(job.stop), (change) => {
        print(
          job.json
            ? JSON.stringify({ event: "capacity-change", ...change })
            : describeCapacityChange(change),
        );
        lsblk();
      }, lsblk);
      return { exitCode: 0 };
    case "load": {
      const disk = guest.disks.find((d) => d.name === job.disk);
      if (disk === undefined) {
        const names = guest.disks.map((d) => d.name).join(", ") || "none";
        throw new VirtioBlkError(
          "INVALID_CONFIG",
          `--disk ${job.disk}: the guest has no such disk (${names})`,
        );
      }
      const result = runLoad(
        { driver: disk.driver, memory: guest.memory, allocator: guest.allocator },
        job.options,
        {
          onProgress: job.progress || job.progressEvents
            ? (p) => {
              if (job.progress) output.progress(formatProgress(p));
              if (job.progressEvents) output.status?.(p);
            }
            : undefined,
          signal: job.stop === undefined ? undefined : new StopFlag(job.stop),
          progressIntervalMs: job.progressIntervalMs,
        },
      );
      if (job.progress) output.endProgress?.();
      print(
        job.json
          ? JSON.stringify(loadResultJson(result, disk.name), null, 2)
          : formatLoadReport(result, disk.name),
      );
      const failed = result.errorCount > 0 || (result.verify?.mismatches ?? 0) > 0;
      return { exitCode: failed ? 1 : 0, load: result };
    }
  }
}
