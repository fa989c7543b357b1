/**
 * The worker of `status_races_test.ts`: a data-plane thread that, once per
 * round the test announces, waits a round-dependent moment and then marks
 * the device as needing a reset, as a blockif worker that found its queue
 * broken does, while the test's thread keeps writing STATUS.
 */

import { parentChannel } from "../../src/runtime/thread.ts";
import { TransportState } from "../../src/virtio/transport_state.ts";

/** Words of the control buffer shared with the test. */
export const RaceControl = {
  /** The round the test started (status reset, the writer running). */
  STARTED: 0,
  /** The round whose needsReset() this worker made. */
  MARKED: 1,
  /** 1: leave. */
  STOP: 2,
  COUNT: 3,
} as const;

/** The delay before needsReset() cycles through this many lengths, 1 µs apart. */
const DELAY_STEPS = 97;

// Imported by the test for RaceControl, on a thread that has no parent.
const parent = await parentChannel().catch(() => undefined);
if (parent !== undefined) {
  parent.onMessage((message) => {
    const { transport, control } = message as {
      transport: SharedArrayBuffer;
      control: SharedArrayBuffer;
    };
    const words = new Int32Array(control);
    const sink = new TransportState(transport);
    parent.postMessage("started");
    while (Atomics.load(words, RaceControl.STOP) === 0) {
      const round = Atomics.load(words, RaceControl.STARTED);
      if (round === Atomics.load(words, RaceControl.MARKED)) continue;
      // Land at a different moment of the writer's loop each round.
      const until = performance.now() + (round % DELAY_STEPS) / 1000;
      while (performance.now() < until);
      sink.needsReset(0);
      Atomics.store(words, RaceControl.MARKED, round);
    }
  });
}
