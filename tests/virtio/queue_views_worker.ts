/**
 * The worker of `queue_views_test.ts`: spins on its own view of the queue
 * (as a polling blockif worker does, without a lock) and, after each
 * activation the test announces, checks that its view can drain the queue.
 */

import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import type { SharedMemoryHandle } from "../../src/memory/shared_memory.ts";
import { parentChannel } from "../../src/runtime/thread.ts";
import { QueueStateBuffer } from "../../src/virtio/queue_state.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";

/** Words of the control buffer shared with the test. */
export const ViewsControl = {
  /** The cycle whose activation the test completed. */
  ACTIVATED: 0,
  /** The cycle the worker checked. */
  CHECKED: 1,
  /** Activations after which the worker's view could not drain a ready queue. */
  BLIND: 2,
  /** 1: leave. */
  STOP: 3,
  COUNT: 4,
} as const;

// Imported by the test for ViewsControl, on a thread that has no parent.
const parent = await parentChannel().catch(() => undefined);
if (parent !== undefined) {
  parent.onMessage((message) => {
    const { memory, state, control } = message as {
      memory: SharedMemoryHandle;
      state: SharedArrayBuffer;
      control: SharedArrayBuffer;
    };
    const words = new Int32Array(control);
    const queue = new SplitQueue(
      SharedGuestMemory.fromHandle(memory),
      new QueueStateBuffer(64, state),
    );
    parent.postMessage("started");
    while (Atomics.load(words, ViewsControl.STOP) === 0) {
      void queue.hasAvailable; // looking for work, at any moment of a reset or activation
      const cycle = Atomics.load(words, ViewsControl.ACTIVATED);
      if (cycle === Atomics.load(words, ViewsControl.CHECKED)) continue;
      if (queue.beginDrain(false)) queue.endDrain();
      else Atomics.add(words, ViewsControl.BLIND, 1);
      Atomics.store(words, ViewsControl.CHECKED, cycle);
    }
  });
}
