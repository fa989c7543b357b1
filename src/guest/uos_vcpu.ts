/**
 * What the built-in guest's vCPU threads run (`uos_worker.ts` is their entry
 * point; a bundle's worker entry calls {@linkcode runUosVcpu} itself). The
 * boot vCPU (0) boots on the machine the device model built, runs the job it
 * was given and reports back; it starts other vCPUs through the device
 * model (`start-vcpu`), and hears of their results (`vcpu-done`). A started
 * vCPU runs its job (a share of a load on its own queue) on its own view of
 * the machine, without booting. Output goes to the device model as
 * messages; port I/O goes through the mailbox.
 *
 * @module
 */

import type { VcpuDone, VcpuInit, VcpuMessage } from "../dm/vm.ts";
import { VirtioBlkError } from "../errors.ts";
import { parentChannel } from "../runtime/thread.ts";
import { bootGuest, prepareVcpu, startVcpu } from "./boot.ts";
import { type LoadShareJob, runJob, runLoadShare, type UosJob, type UosResult } from "./uos.ts";

/** Waits for this vCPU thread's set-up and job, runs the job and posts its result. */
export async function runUosVcpu(): Promise<void> {
  const parent = await parentChannel();
  /** vCPUs this one started, by number: their results resolve these. */
  const started = new Map<number, (result: UosResult) => void>();
  parent.onMessage(async (message) => {
    if ((message as VcpuDone).type === "vcpu-done") {
      const done = message as VcpuDone;
      started.get(done.vcpu)?.(done.result as UosResult);
      started.delete(done.vcpu);
      return;
    }
    const { init, job } = message as { init: VcpuInit; job: UosJob | LoadShareJob };
    const post = (reply: VcpuMessage) => parent.postMessage(reply);
    try {
      await prepareVcpu(init);
      let result: UosResult;
      if (job.kind === "load-share") {
        result = runLoadShare(startVcpu(init), job);
      } else {
        const guest = bootGuest(init, { indirect: true });
        result = await runJob(guest, job, {
          print: (text) => post({ type: "stdout", text }),
          progress: (text) => post({ type: "stderr", text: `\r${text}\x1b[K` }),
          endProgress: () => post({ type: "stderr", text: "\n" }),
          status: (progress) => post({ type: "event", data: progress }),
        }, (vcpu, apJob) =>
          new Promise((resolve) => {
            started.set(vcpu, resolve);
            post({ type: "start-vcpu", vcpu, job: apJob });
          }));
      }
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
