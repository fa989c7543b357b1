/**
 * Resident memory of a process running the device model, measured in a
 * process of its own (so nothing the benchmark did before counts): VmRSS
 * before any device exists, with N virtio-blk devices built and idle, and
 * after a short 4 KiB random-read load on each; and the CPU time the idle
 * devices use once the load is over (polling must stop when idle).
 * {@linkcode probeMemory} runs it; run directly it prints one JSON line:
 *
 *     deno run -A --v8-flags=--expose-gc scripts/bench/memory_probe.ts <file> <disks> <seconds> [iothreads]
 *
 * With `iothreads`, every device attaches to that many shared I/O threads
 * (`--iothreads`) instead of starting 8 of its own.
 *
 * @module
 */

import { diskConfig, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import { diskName } from "../../src/guest/boot.ts";
import { DEFAULT_QUEUE_SIZE } from "../../src/blk/device.ts";
import { BlockifThreads } from "../../src/blockif/threads.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { processCpuSeconds, residentBytes } from "./proc_stats.ts";
import type { MemoryProbe } from "./results.ts";

const UOS_WORKER = new URL("../../src/guest/uos_worker.ts", import.meta.url);

/** How long the idle CPU time is measured, after a pause that lets any polling end. */
const IDLE_PAUSE_MS = 200;
const IDLE_MEASURE_MS = 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** RSS after a full garbage collection when the runtime exposes one. */
function settledRss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return residentBytes();
}

/** Runs the probe in this process. */
async function probeHere(
  path: string,
  disks: number,
  seconds: number,
  iothreads?: number,
): Promise<MemoryProbe> {
  const bareBytes = settledRss();
  // Read-only: one file backs every disk, and a load only reads.
  const threads = iothreads === undefined
    ? undefined
    : new BlockifThreads({ workers: iothreads, segMax: DEFAULT_QUEUE_SIZE - 2 });
  const configs = await Promise.all(Array.from({ length: disks }, async (_, i) => {
    const config = await diskConfig(parseSlotSpec(`${9 + i},virtio-blk,${path},ro`));
    return threads === undefined
      ? config
      : { ...config, device: { ...config.device, engine: workerEngine({ threads }) } };
  }));
  const vm = await VirtualMachine.create({ disks: configs });
  try {
    const idleBytes = settledRss();
    const options = parseLoadOptions({
      rw: "randread",
      bs: "4k",
      iodepth: "32",
      runtime: `${Math.round(seconds * 1000)}ms`,
      time_based: true,
    });
    for (let i = 0; i < disks; i++) {
      await vm.runVcpu(UOS_WORKER, {
        kind: "load",
        disk: diskName(i),
        options,
        json: false,
        progress: false,
      });
    }
    const loadedBytes = settledRss();
    await sleep(IDLE_PAUSE_MS);
    const before = processCpuSeconds();
    await sleep(IDLE_MEASURE_MS);
    const idleCpuPercent = ((processCpuSeconds() - before) / (IDLE_MEASURE_MS / 1000)) * 100;
    return { disks, iothreads, bareBytes, idleBytes, loadedBytes, idleCpuPercent };
  } finally {
    await vm.close();
    await threads?.close();
  }
}

/** Runs the probe in a new process and returns what it measured. */
export async function probeMemory(
  path: string,
  disks: number,
  seconds: number,
  iothreads?: number,
): Promise<MemoryProbe> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      path,
      String(disks),
      String(seconds),
      ...(iothreads === undefined ? [] : [String(iothreads)]),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) {
    const error = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
    throw new Error(`memory probe (${disks} disks) failed: ${error}`);
  }
  return JSON.parse(text.split("\n").at(-1)!) as MemoryProbe;
}

if (import.meta.main) {
  const [path, disks, seconds, iothreads] = Deno.args;
  console.log(
    JSON.stringify(
      await probeHere(
        path,
        Number(disks),
        Number(seconds),
        iothreads === undefined ? undefined : Number(iothreads),
      ),
    ),
  );
}
