/**
 * Several views of one queue, as every thread that serves it has its own
 * {@linkcode SplitQueue} over the shared state: a view that looks at the
 * queue at any moment of another thread's activate() (a polling worker does,
 * without a lock) still serves the queue once the activation is complete.
 */

import assert from "node:assert/strict";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { siblingModule, startThread } from "../../src/runtime/thread.ts";
import { QueueStateBuffer, QueueWord } from "../../src/virtio/queue_state.ts";
import { legacyRingAddresses } from "../../src/virtio/ring_layout.ts";
import { DescriptorFlag } from "../../src/virtio/spec.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { GuestRing } from "../helpers/raw_guest.ts";
import { ViewsControl } from "./queue_views_worker.ts";

const RING = 0x1000;
const DATA = 0x8000;
const SIZE = 8;

function rig() {
  const memory = SharedGuestMemory.allocate(1 << 16);
  const state = new QueueStateBuffer(64);
  const config = { size: SIZE, features: 0, ...legacyRingAddresses(RING, SIZE) };
  const ring = GuestRing.legacy(memory, RING, SIZE);
  ring.setDesc(0, { addr: DATA, len: 1, flags: DescriptorFlag.WRITE });
  return { memory, state, config, ring, controller: new SplitQueue(memory, state) };
}

/**
 * Runs `action` with `look` called at the moment `action` stores `value`
 * into word `index` of `words`, just before the store: what another thread
 * would see there.
 */
function lookingBeforeStore(
  words: Int32Array,
  index: number,
  value: number,
  look: () => void,
  action: () => void,
): void {
  const store = Atomics.store;
  let looked = false;
  Atomics.store = ((array: Int32Array, at: number, stored: number) => {
    if (array === words && at === index && stored === value && !looked) {
      looked = true;
      look();
    }
    return store(array, at, stored);
  }) as typeof Atomics.store;
  try {
    action();
  } finally {
    Atomics.store = store;
  }
  assert.ok(looked, "the action made the store");
}

Deno.test("a view that looked at the queue while activate() ran serves it once active", () => {
  const { memory, state, config, ring, controller } = rig();
  const worker = new SplitQueue(memory, state);
  assert.equal(controller.activate(config), true);
  controller.disable(); // a reset: the guest sets the ring up again
  lookingBeforeStore(state.words, QueueWord.READY, 1, () => {
    // A polling worker looks for work in the middle of the activation.
    assert.equal(worker.hasAvailable, false);
  }, () => assert.equal(controller.activate(config), true));
  ring.offer(0);
  assert.equal(worker.hasAvailable, true, "the worker sees the chain");
  assert.equal(worker.beginDrain(false), true, "the worker can drain");
  worker.endDrain();
});

Deno.test("threads: a worker polling the queue is never left blind by a reset and re-activation", async () => {
  const { memory, state, config, controller } = rig();
  const control = new Int32Array(new SharedArrayBuffer(4 * ViewsControl.COUNT));
  const thread = await startThread(siblingModule(import.meta.url, "queue_views_worker"), "views");
  try {
    const started = new Promise((resolve) => thread.onMessage(resolve));
    thread.postMessage({ memory: memory.handle(), state: state.buffer, control: control.buffer });
    await started;
    const cycles = 20_000;
    const deadline = performance.now() + 60_000;
    for (let cycle = 1; cycle <= cycles; cycle++) {
      controller.disable();
      assert.equal(controller.activate(config), true);
      // The worker tries to drain; wait for its answer.
      Atomics.store(control, ViewsControl.ACTIVATED, cycle);
      while (Atomics.load(control, ViewsControl.CHECKED) !== cycle) {
        assert.ok(performance.now() < deadline, "the worker answers");
      }
    }
    const blind = Atomics.load(control, ViewsControl.BLIND);
    assert.equal(blind, 0, `after ${blind} of ${cycles} activations the worker could not drain`);
  } finally {
    Atomics.store(control, ViewsControl.STOP, 1);
    await thread.terminate();
  }
});
