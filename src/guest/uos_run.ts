/**
 * Running the built-in guest on a machine: a vCPU thread started from the
 * entry point next to this module (`uos_worker`; in the browser build, the
 * bundle's worker entry of that name) boots the guest and runs one job,
 * whose output and progress come back to the caller. The command line and
 * the web page both run their jobs through this.
 *
 * @module
 */

import type { VirtualMachine } from "../dm/vm.ts";
import { siblingModule } from "../runtime/thread.ts";
import type { LoadProgress } from "./jobs/load.ts";
import type { UosJob, UosResult } from "./uos.ts";

/** Where a job's output goes. */
export interface UosOutput {
  /** The job's result text (the CLI's stdout). */
  readonly stdout?: (text: string) => void;
  /** Progress lines and their control characters (the CLI's stderr). */
  readonly stderr?: (text: string) => void;
  /** A load's progress snapshots, when the job asks for `progressEvents`. */
  readonly progress?: (progress: LoadProgress) => void;
}

/**
 * Boots the built-in guest on `vm` in a vCPU thread and runs `job`.
 * Resolves with its result; rejects if the guest fails (a `VirtioBlkError`
 * `INVALID_CONFIG` when the job asked for something the disks cannot do).
 *
 * @example
 * ```ts
 * const vm = await VirtualMachine.create({ disks: [{ slot: 3, func: 0, device: { backend } }] });
 * await runUos(vm, { kind: "lsblk", json: false }, { stdout: (text) => console.log(text) });
 * await vm.close();
 * ```
 */
export async function runUos(
  vm: VirtualMachine,
  job: UosJob,
  output: UosOutput = {},
): Promise<UosResult> {
  return await vm.runVcpu(
    siblingModule(import.meta.url, "uos_worker"),
    job,
    (stream, text) => (stream === "stdout" ? output.stdout?.(text) : output.stderr?.(text)),
    (data) => output.progress?.(data as LoadProgress),
  ) as UosResult;
}
