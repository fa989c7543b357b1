/**
 * The built-in guest's (ACRN's "UOS") jobs. `uos_worker.ts` boots the guest
 * in its vCPU Worker (PCI scan, one driver per virtio-blk function, disks
 * named vda, vdb, … in slot order) and runs one of these.
 *
 * With several vCPUs and a disk with several queues (`mq=N --cpus N`), a
 * load is spread: the boot vCPU starts the others, each on a `load-share`
 * job on its own queue (`load_shares.ts`), runs the first share itself, and
 * reports the shares summed.
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
import type { GuestVcpu } from "./boot.ts";
import { loadDiskOf } from "./jobs/load.ts";
import { mergeLoadResults, splitLoad } from "./jobs/load_shares.ts";
import { PortRegisters } from "./port_registers.ts";
import { type QueueBinding, VirtioBlkDriver } from "./virtio_blk_driver.ts";

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

/**
 * A share of a load, run by a vCPU the boot vCPU started, on one queue of a
 * disk (what the boot vCPU hands another vCPU; not a job a caller asks for).
 */
export interface LoadShareJob {
  readonly kind: "load-share";
  /** The disk's I/O BAR0 base port. */
  readonly ioBase: number;
  /** The disk's name, for messages. */
  readonly disk: string;
  /** The queue this vCPU drives (set up by the boot vCPU's driver). */
  readonly binding: QueueBinding;
  readonly options: LoadOptions;
  /** The load's {@linkcode StopFlag} buffer. */
  readonly stop?: SharedArrayBuffer;
}

/** Starts another vCPU of the machine on a job and resolves with its result. */
export type VcpuStarter = (vcpu: number, job: LoadShareJob) => Promise<UosResult>;

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
 * Runs a {@linkcode LoadShareJob} on a started vCPU: a driver for its queue,
 * and the load on it, blocking.
 */
export function runLoadShare(vcpu: GuestVcpu, job: LoadShareJob): UosResult {
  const driver = VirtioBlkDriver.attach({
    memory: vcpu.memory,
    registers: new PortRegisters(vcpu.io, job.ioBase),
    interrupt: vcpu.interrupt,
    allocator: vcpu.allocator,
  }, job.binding);
  const load = runLoad(
    { driver, memory: vcpu.memory, allocator: vcpu.allocator },
    job.options,
    { signal: job.stop === undefined ? undefined : new StopFlag(job.stop) },
  );
  return { exitCode: 0, load };
}

/**
 * Runs `job` on the booted guest. Exit code 0 when it went as expected;
 * 1 when a load saw failed requests or verification mismatches. A load on
 * a disk with several queues is spread over the vCPUs `startVcpu` starts.
 */
export async function runJob(
  guest: GuestMachine,
  job: UosJob,
  output: JobOutput,
  startVcpu?: VcpuStarter,
): Promise<UosResult> {
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
      const target = { driver: disk.driver, memory: guest.memory, allocator: guest.allocator };
      const hooks = {
        onProgress: job.progress || job.progressEvents
          ? (p: LoadProgress) => {
            if (job.progress) output.progress(formatProgress(p));
            if (job.progressEvents) output.status?.(p);
          }
          : undefined,
        signal: job.stop === undefined ? undefined : new StopFlag(job.stop),
        progressIntervalMs: job.progressIntervalMs,
      };
      const vcpus = startVcpu === undefined ? 1 : Math.min(guest.vcpus, disk.driver.info.queues);
      let result: LoadResult;
      if (vcpus <= 1) {
        result = runLoad(target, job.options, hooks);
      } else {
        // Each vCPU its own queue and share; the boot vCPU takes share 0 (on queue 0).
        const diskFacts = loadDiskOf(disk.driver);
        const shares = splitLoad(job.options, diskFacts, vcpus);
        const others = shares.slice(1).map((options, i) =>
          startVcpu!(i + 1, {
            kind: "load-share",
            ioBase: disk.pci.ioBase!,
            disk: disk.name,
            binding: disk.driver.binding(i + 1),
            options,
            stop: job.stop,
          })
        );
        const own = runLoad(target, shares[0], hooks);
        const rest = await Promise.all(others);
        result = mergeLoadResults(job.options, diskFacts, [own, ...rest.map((r) => r.load!)]);
      }
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
