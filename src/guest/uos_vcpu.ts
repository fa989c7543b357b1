/**
 * What the built-in guest's vCPU thread runs (`uos_worker.ts` is its entry
 * point; a bundle's worker entry calls {@linkcode runUosVcpu} itself):
 * boots on the machine the device model built, runs the job it was given
 * and reports back. Output goes to the device model as messages; port I/O
 * goes through the mailbox.
 *
 * @module
 */

import type { VcpuInit, VcpuMessage } from "../dm/vm.ts";
import { VirtioBlkError } from "../errors.ts";
import { parentChannel } from "../runtime/thread.ts";
import { bootGuest, prepareVcpu } from "./boot.ts";
import { runJob, type UosJob } from "./uos.ts";

/** Waits for this vCPU thread's set-up and job, runs the job and posts its result. */
export async function runUosVcpu(): Promise<void> {
  const parent = await parentChannel();
  parent.onMessage(async (message) => {
    const { init, job } = message as { init: VcpuInit; job: UosJob };
    const post = (reply: VcpuMessage) => parent.postMessage(reply);
    try {
      await prepareVcpu(init);
      const guest = bootGuest(init, { indirect: true });
      const result = runJob(guest, job, {
        print: (text) => post({ type: "stdout", text }),
        progress: (text) => post({ type: "stderr", text: `\r${text}\x1b[K` }),
        endProgress: () => post({ type: "stderr", text: "\n" }),
        status: (progress) => post({ type: "event", data: progress }),
      });
      post({ type: "done", result });
    } catch (error) {
      const usage = error instanceof VirtioBlkError && error.code === "INVALID_CONFIG";
      post({
        type: "error",
        message: error instanceof Error ? error.message : String(error),
        usage,
      });
    }
  });
}
