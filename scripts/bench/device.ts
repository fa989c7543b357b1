/**
 * The device under test: a `VirtualMachine` with one virtio-blk disk on the
 * benchmark file, configured from an ACRN-style slot spec, and the built-in
 * guest's fio-like `load` job in the vCPU Worker. The full path is measured:
 * guest driver → avail ring → notify → pool → workers → file → used ring →
 * interrupt. The machine is built once per case and reused every round.
 *
 * Process CPU time is taken between the load's first and last progress
 * report (posted when its run phase starts and ends), so the vCPU thread's
 * start-up and the guest's boot are not charged to the requests.
 *
 * @module
 */

import { diskConfig, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { DEFAULT_WORKERS } from "../../src/blockif/worker_engine.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import type { UosJob, UosResult } from "../../src/guest/uos.ts";
import { type BenchCase, isWrite } from "./cases.ts";
import { type Measurement, measurementOf } from "./measurement.ts";
import { markUsage, usageBetween, type UsageMark } from "./proc_stats.ts";
import { NbdServer } from "../../tests/nbd/nbd_server.ts";

const UOS_WORKER = new URL("../../src/guest/uos_worker.ts", import.meta.url);

/** The slot the benchmark's disk sits in (as in the README's examples). */
const SLOT = 9;

/** Device settings under test: extra `-s` options (`workers=2,dispatch=device`). */
export interface DeviceVariant {
  /** The options as given ("" for the defaults). */
  readonly options: string;
  /** `device` or `device workers=2,…`. */
  readonly label: string;
  /** Worker threads these options give (ACRN's 8 unless `workers=` says otherwise). */
  readonly workers: number;
  /** The guest polls for completions (`hipri`, fio's polled I/O) instead of sleeping on interrupts. */
  readonly hipri: boolean;
  /**
   * The disk is the same file served by qemu-nbd over a Unix socket (`nbd`):
   * NBD over loopback, next to the file itself in the same run.
   */
  readonly nbd: boolean;
}

/** A variant option that goes to the guest's load rather than to the device. */
const GUEST_POLLING = "hipri";

/** A variant option that puts the disk on qemu-nbd instead of the file. */
const OVER_NBD = "nbd";

/** Options a case decides, which a variant may not set. */
const CASE_OPTIONS = ["writeback", "writethru", "ro"];

/**
 * Checks a variant's options with the slot-spec parser and returns the
 * variant. Throws a `VirtioBlkError` for an option the parser refuses or
 * one the case decides (the cache mode, `ro`).
 *
 * @example
 * ```ts
 * deviceVariant("workers=2,dispatch=device").workers; // 2
 * ```
 */
export function deviceVariant(options: string): DeviceVariant {
  const trimmed = options.trim();
  const all = trimmed === "" ? [] : trimmed.split(",");
  const deviceOptions = all.filter((option) => option !== GUEST_POLLING && option !== OVER_NBD)
    .join(",");
  for (const option of all) {
    if (CASE_OPTIONS.includes(option.split("=")[0])) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `--device ${options}: ${option} is set by each case, not by a device variant`,
      );
    }
  }
  const spec = parseSlotSpec(
    `${SLOT},virtio-blk,bench.img${deviceOptions === "" ? "" : "," + deviceOptions}`,
  );
  return {
    options: deviceOptions,
    label: trimmed === "" ? "device" : `device ${trimmed}`,
    workers: spec.workers ?? DEFAULT_WORKERS,
    hipri: all.includes(GUEST_POLLING),
    nbd: all.includes(OVER_NBD),
  };
}

/** A machine with the benchmark disk, for the cases of one cache mode. */
export class DeviceRig {
  readonly variant: DeviceVariant;
  readonly writeback: boolean;
  readonly #vm: VirtualMachine;
  readonly #cores: number;
  readonly #server: NbdServer | undefined;

  private constructor(
    vm: VirtualMachine,
    variant: DeviceVariant,
    writeback: boolean,
    cores: number,
    server: NbdServer | undefined,
  ) {
    this.#vm = vm;
    this.#server = server;
    this.variant = variant;
    this.writeback = writeback;
    this.#cores = cores;
  }

  /** Builds the machine: disk `path` in slot 9 with the cache mode and the variant's options. */
  static async create(
    path: string,
    variant: DeviceVariant,
    writeback: boolean,
    cores: number,
  ): Promise<DeviceRig> {
    const options = [writeback ? "writeback" : "writethru", variant.options].filter((o) =>
      o !== ""
    );
    // qemu-nbd as QEMU would serve the file: its default cache (write-back,
    // flushed on FLUSH and FUA), 8 clients for multi-conn.
    const server = variant.nbd ? await NbdServer.qemuNbd(() => path, { shared: 8 }) : undefined;
    try {
      const disk = await diskConfig(
        parseSlotSpec(`${SLOT},virtio-blk,${server?.uri ?? path},${options.join(",")}`),
      );
      const vm = await VirtualMachine.create({ disks: [disk] });
      return new DeviceRig(vm, variant, writeback, cores, server);
    } catch (error) {
      await server?.[Symbol.asyncDispose]();
      throw error;
    }
  }

  /**
   * Runs `benchCase` through the guest for `seconds` and measures it, after
   * `ramp` seconds of the same load that are not measured (fio's
   * `ramp_time`: the guest reports no progress during it, so its CPU time
   * is not charged either).
   */
  async measure(benchCase: BenchCase, seconds: number, ramp = 0): Promise<Measurement> {
    if (benchCase.writeback !== this.writeback) {
      throw new Error(
        `${benchCase.name} needs a ${benchCase.writeback ? "write-back" : "write-through"} rig`,
      );
    }
    const options = parseLoadOptions({
      rw: benchCase.rw,
      bs: String(benchCase.bs),
      iodepth: String(benchCase.iodepth),
      runtime: `${Math.max(1, Math.round(seconds * 1000))}ms`,
      time_based: true,
      ...(ramp > 0 ? { ramp_time: `${Math.round(ramp * 1000)}ms` } : {}),
      hipri: this.variant.hipri,
    });
    const job: UosJob = { kind: "load", disk: "vda", options, json: false, progress: true };
    let first: UsageMark | undefined;
    let last: UsageMark | undefined;
    const result = await this.#vm.runVcpu(UOS_WORKER, job, (stream) => {
      if (stream !== "stderr") return;
      last = markUsage();
      first ??= last;
    }) as UosResult;
    const load = result.load;
    if (load === undefined || first === undefined || last === undefined) {
      throw new Error("the guest's load job returned no result");
    }
    const direction = isWrite(benchCase) ? load.write : load.read;
    const usage = usageBetween(first, last);
    return measurementOf({
      ios: direction.ios,
      bytes: direction.bytes,
      errors: load.errorCount,
      seconds: direction.runtimeMs / 1000,
      p50Ns: direction.latency.percentilesNs["50"],
      p99Ns: direction.latency.percentilesNs["99"],
      cpuSeconds: usage.cpuSeconds,
      machineBusySeconds: usage.machineBusySeconds,
      windowSeconds: usage.wallSeconds,
      cores: this.#cores,
    });
  }

  /** Stops the machine's workers (and its NBD server). */
  async close(): Promise<void> {
    await this.#vm.close();
    await this.#server?.[Symbol.asyncDispose]();
  }
}
