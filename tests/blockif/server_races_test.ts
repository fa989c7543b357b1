/**
 * Races between a blockif worker and the threads that reset the device or
 * close the engine, each forced in one thread: the blockif server runs on
 * the test's thread, driven as a worker would be, and the other thread's
 * action is made to happen at the exact moment the race is about.
 *
 * - A worker that found the queue broken reports "needs reset" while the
 *   guest may be resetting the device on its vCPU. The report must land
 *   before the reset (which clears it), never after: a stale
 *   DEVICE_NEEDS_RESET on the reset device makes it refuse the guest's new
 *   ring. The reset is modelled in the interrupt sink at the moment of the
 *   report: it runs then, unless the worker holds a queue lock the reset
 *   needs, in which case it runs as soon as the worker is done.
 * - A worker that looks for work while the engine closes must leave its
 *   loop, not go to sleep (close() would wait for it until its grace
 *   period ends and then terminate it).
 */

import assert from "node:assert/strict";
import type { EngineContext } from "../../src/blk/engine.ts";
import { PoolWord } from "../../src/blockif/pool_layout.ts";
import { RequestType } from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { QueueWord } from "../../src/virtio/queue_state.ts";
import { DeviceStatus } from "../../src/virtio/spec.ts";
import { RawGuest } from "../helpers/raw_guest.ts";
import { InThreadWorker } from "./in_thread_worker.ts";

/** The guest's side of the race: its reset, run at the worker's report. */
interface GuestReset {
  /** The guest's reset (set once the guest exists). */
  run: () => void;
  /** The reset waited for the worker to release a queue lock. */
  deferred: boolean;
}

/** An in-thread worker whose "needs reset" report is where the guest's reset lands. */
class Rig extends InThreadWorker {
  readonly reset: GuestReset;

  constructor(context: EngineContext) {
    const words = context.queues[0].words;
    const sink = context.interrupts;
    const reset: GuestReset = { run: () => {}, deferred: false };
    super(context, {
      interrupts: {
        usedBuffers: (index) => sink.usedBuffers(index),
        needsReset: (index) => {
          const locked = Atomics.load(words, QueueWord.AVAIL_LOCK) !== 0 ||
            Atomics.load(words, QueueWord.USED_LOCK) !== 0;
          if (locked) reset.deferred = true;
          else reset.run();
          sink.needsReset(index);
        },
      },
    });
    this.reset = reset;
  }
}

Deno.test("a worker's 'needs reset' never lands on the device after the guest reset it", async () => {
  let rig!: Rig;
  const guest = RawGuest.create({ device: { engine: (context) => (rig = new Rig(context)) } });
  try {
    rig.reset.run = () => guest.write(LegacyRegister.STATUS, 1, 0);
    guest.availIdx = 2 * guest.size; // more than a ring ahead: the queue breaks (§2.7.13.3)
    rig.worker.drain(0); // the worker woken by the kick
    if (rig.reset.deferred) rig.reset.run();
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

Deno.test("a worker that looks for work while the engine closes leaves its loop instead of sleeping", async () => {
  let rig!: Rig;
  const guest = RawGuest.create({ device: { engine: (context) => (rig = new Rig(context)) } });
  const words = rig.pool.words;
  const { load, wait } = Atomics;
  let closed = false;
  const wakeWaits: string[] = [];
  // WorkerEngine.close() on the engine's thread, right after the worker read CLOSING.
  Atomics.load = ((array: Int32Array, index: number) => {
    const value = load(array, index);
    if (array === words && index === PoolWord.CLOSING && !closed) {
      closed = true;
      Atomics.store(words, PoolWord.CLOSING, 1);
      Atomics.add(words, PoolWord.WAKE, 1);
      Atomics.notify(words, PoolWord.WAKE);
    }
    return value;
  }) as typeof Atomics.load;
  // A sleep on WAKE after the close would last for ever: bound it, and note how it ended.
  Atomics.wait = ((array: Int32Array, index: number, value: number, timeout?: number) => {
    if (array !== words || index !== PoolWord.WAKE) return wait(array, index, value, timeout);
    const result = wait(array, index, value, 1_000);
    wakeWaits.push(result);
    return result;
  }) as typeof Atomics.wait;
  try {
    rig.worker.loop();
  } finally {
    Atomics.load = load;
    Atomics.wait = wait;
    await guest.disk.close();
  }
  assert.ok(closed, "the engine closed while the worker looked for work");
  assert.ok(!wakeWaits.includes("timed-out"), `the worker slept through the close: ${wakeWaits}`);
});
