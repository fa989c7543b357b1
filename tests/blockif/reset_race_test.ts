/**
 * A worker that found the queue broken reports "needs reset" while the
 * guest may be resetting the device on its vCPU. The report must land
 * before the reset (which clears it), never after: a stale DEVICE_NEEDS_RESET
 * on the reset device makes it refuse the guest's new ring.
 *
 * The blockif server runs on this thread, driven as a worker would be; the
 * guest's reset is modelled in the interrupt sink at the moment the worker
 * reports: it runs then, unless the worker holds a queue lock the reset
 * needs, in which case it runs as soon as the worker is done.
 */

import assert from "node:assert/strict";
import type { EngineContext, RequestEngine } from "../../src/blk/engine.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestPool } from "../../src/blockif/request_pool.ts";
import { BlockifServer } from "../../src/blockif/server.ts";
import { RequestType } from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { QueueWord } from "../../src/virtio/queue_state.ts";
import { DeviceStatus } from "../../src/virtio/spec.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import type { InterruptSink } from "../../src/virtio/transport_state.ts";
import { RawGuest } from "../helpers/raw_guest.ts";

/** Serves kicks in-process; `worker` is a blockif server the test drives as a worker thread. */
class Rig implements RequestEngine {
  readonly worker: BlockifServer;
  readonly #inline: InlineEngine;
  /** The guest's reset, run at the worker's report (set once the guest exists). */
  resetByGuest: () => void = () => {};
  /** The reset waited for the worker to release a queue lock. */
  deferredReset = false;

  constructor(context: EngineContext) {
    this.#inline = new InlineEngine(context);
    const words = context.queues[0].words;
    const sink = context.interrupts;
    const racing: InterruptSink = {
      usedBuffers: (index) => sink.usedBuffers(index),
      needsReset: (index) => {
        const locked = Atomics.load(words, QueueWord.AVAIL_LOCK) !== 0 ||
          Atomics.load(words, QueueWord.USED_LOCK) !== 0;
        if (locked) this.deferredReset = true;
        else this.resetByGuest();
        sink.needsReset(index);
      },
    };
    this.worker = new BlockifServer({
      memory: context.memory,
      queues: context.queues.map((state) => new SplitQueue(context.memory, state)),
      pool: new RequestPool({ elements: 4, segMax: context.limits.segMax }),
      state: context.state,
      interrupts: racing,
      readOnly: context.readOnly,
      limits: context.limits,
      serial: context.serial,
      dispatch: "worker",
      maxChain: context.maxChain,
      pollMaxNs: 0,
    });
  }
  ready() {
    return Promise.resolve();
  }
  notify(index: number) {
    this.#inline.notify(index);
  }
  doorbell(index: number) {
    return this.#inline.doorbell(index);
  }
  quiesce() {}
  close() {
    return this.#inline.close();
  }
}

Deno.test("a worker's 'needs reset' never lands on the device after the guest reset it", async () => {
  let rig!: Rig;
  const guest = RawGuest.create({ device: { engine: (context) => (rig = new Rig(context)) } });
  try {
    rig.resetByGuest = () => guest.write(LegacyRegister.STATUS, 1, 0);
    guest.availIdx = 2 * guest.size; // more than a ring ahead: the queue breaks (§2.7.13.3)
    rig.worker.drain(0); // the worker woken by the kick
    if (rig.deferredReset) rig.resetByGuest();
    assert.equal(guest.status, 0, "the reset device shows no DEVICE_NEEDS_RESET");
    guest.init(); // asserts the device takes the new ring
    assert.equal(guest.status & DeviceStatus.DEVICE_NEEDS_RESET, 0);
    const flush = guest.request({ type: RequestType.FLUSH });
    guest.submit(flush.head);
    assert.deepEqual(guest.usedSince(0), [{ id: flush.head, len: 1 }], "the device serves again");
  } finally {
    await guest.disk.close();
  }
});
