/**
 * The device status word is shared: the guest's STATUS writes (on the
 * device model's thread, through the legacy register block) and a
 * data-plane thread's "needs reset" (an `Atomics.or` from a blockif
 * worker that found a queue broken) change it concurrently. However they
 * interleave, DEVICE_NEEDS_RESET once set stays set until a reset (virtio
 * 1.2 §2.1.2): a STATUS write that wiped it would leave the guest with a
 * config interrupt for a bit STATUS does not show, and (a broken queue
 * reports nothing again) its requests hanging.
 */

import assert from "node:assert/strict";
import { siblingModule, startThread } from "../../src/runtime/thread.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { DeviceStatus } from "../../src/virtio/spec.ts";
import { ISR_CONFIG, TransportWord } from "../../src/virtio/transport_state.ts";
import { beforeAtomicOps } from "../helpers/atomic_hooks.ts";
import { RawGuest } from "../helpers/raw_guest.ts";
import { RaceControl } from "./needs_reset_worker.ts";

const RUNNING = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK;
/** What the driver writes while the worker marks the device: its bits, changed. */
const WRITTEN = RUNNING | DeviceStatus.FEATURES_OK;

/**
 * Runs `action` and calls `interleave` just before `action`'s `k`-th atomic
 * operation (1-based) on word `index` of `words`: another thread's action
 * landing at that point. Returns how many such operations `action` made;
 * when fewer than `k`, `interleave` ran after `action` ended.
 */
function interleavedBeforeOp(
  words: Int32Array,
  index: number,
  k: number,
  interleave: () => void,
  action: () => void,
): number {
  let seen = 0;
  beforeAtomicOps(words, (at) => {
    if (at === index && ++seen === k) interleave();
  }, action);
  if (seen < k) interleave();
  return seen;
}

Deno.test("a worker's needsReset() at any point of a STATUS write survives it, and its interrupt stands", async () => {
  for (let k = 1;; k++) {
    const g = RawGuest.create({ init: false });
    try {
      g.write(LegacyRegister.STATUS, 1, RUNNING);
      const transport = g.disk.transport;
      const ops = interleavedBeforeOp(
        transport.words,
        TransportWord.STATUS,
        k,
        () => transport.needsReset(0),
        () => g.write(LegacyRegister.STATUS, 1, WRITTEN),
      );
      const where = k <= ops ? `before operation ${k} of ${ops}` : "after it";
      assert.equal(
        g.status,
        WRITTEN | DeviceStatus.DEVICE_NEEDS_RESET,
        `needsReset() ${where} on STATUS: the driver's bits and DEVICE_NEEDS_RESET`,
      );
      assert.equal(g.takeIsr(), ISR_CONFIG, `needsReset() ${where}: one config interrupt`);
      if (k > ops) return; // every point of the write was tried
    } finally {
      await g.close();
    }
  }
});

Deno.test("threads: a worker's needsReset() racing a stream of STATUS writes is never lost", async () => {
  const g = RawGuest.create({ init: false });
  const control = new Int32Array(new SharedArrayBuffer(4 * RaceControl.COUNT));
  const thread = await startThread(siblingModule(import.meta.url, "needs_reset_worker"), "marker");
  try {
    const started = new Promise((resolve) => thread.onMessage(resolve));
    thread.postMessage({ transport: g.disk.transport.buffer, control: control.buffer });
    await started;
    const rounds = 3000;
    const deadline = performance.now() + 60_000;
    let lost = 0;
    for (let round = 1; round <= rounds; round++) {
      g.write(LegacyRegister.STATUS, 1, 0);
      g.write(LegacyRegister.STATUS, 1, RUNNING);
      g.takeIsr();
      Atomics.store(control, RaceControl.STARTED, round);
      // The driver keeps writing STATUS until the worker has marked the device.
      do {
        g.write(LegacyRegister.STATUS, 1, WRITTEN);
        assert.ok(performance.now() < deadline, "the worker answers");
      } while (Atomics.load(control, RaceControl.MARKED) !== round);
      g.write(LegacyRegister.STATUS, 1, WRITTEN);
      if ((g.status & DeviceStatus.DEVICE_NEEDS_RESET) === 0) lost++;
      assert.equal(g.takeIsr(), ISR_CONFIG, "the config interrupt was raised");
    }
    assert.equal(lost, 0, `DEVICE_NEEDS_RESET lost in ${lost} of ${rounds} rounds`);
  } finally {
    Atomics.store(control, RaceControl.STOP, 1);
    await thread.terminate();
    await g.close();
  }
});
