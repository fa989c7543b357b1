/**
 * The driver's waits and the device's "needs reset": a DEVICE_NEEDS_RESET
 * configuration interrupt counts whenever it came, also when it came before
 * the driver started waiting (an in-process device serves a kick, and may
 * break the queue, before kick() returns) — and an async wait is answered
 * by an interrupt raised on its own thread.
 */

import assert from "node:assert/strict";
import { RequestType } from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { AvailRing, LEGACY_PFN_SHIFT, legacyRingAddresses } from "../../src/virtio/ring_layout.ts";
import { AVAIL_F_NO_INTERRUPT, DeviceStatus } from "../../src/virtio/spec.ts";
import { InterruptLine } from "../../src/guest/io.ts";
import { ISR_QUEUE, TransportState } from "../../src/virtio/transport_state.ts";
import { type Harness, harness } from "../helpers/harness.ts";

/** Submits a request, then moves avail.idx more than a ring ahead (virtio 1.2 §2.7.13.3) and kicks. */
function breakQueueOnKick(h: Harness): void {
  h.driver.submit(RequestType.FLUSH, 0);
  const ring = h.disk.pci.ioRead(LegacyRegister.QUEUE_PFN, 4) * 2 ** LEGACY_PFN_SHIFT;
  const idx = legacyRingAddresses(ring, h.driver.queueSize).avail + AvailRing.IDX;
  const region = h.memory.regionFor(idx, 2)!;
  const at = (idx - region.gpa) >>> 1;
  Atomics.store(region.u16, at, (Atomics.load(region.u16, at) + 2 * h.driver.queueSize) & 0xffff);
  h.driver.kick();
  assert.ok(h.driver.deviceStatus & DeviceStatus.DEVICE_NEEDS_RESET, "the device broke the queue");
}

// A wait with no time left (a timeout of 0) reports only what it finds
// before it would sleep: it can see the interrupt only by looking at once.

Deno.test("driver: waitSync returns at once for a needs-reset interrupt raised before it was called", async () => {
  const h = harness();
  try {
    breakQueueOnKick(h);
    assert.equal(h.driver.waitSync(0), true, "the wait sees the device needs a reset, unslept");
    assert.equal(h.driver.needsReset, true);
  } finally {
    await h.close();
  }
});

Deno.test("driver: wait resolves at once for a needs-reset interrupt raised before it was called", async () => {
  const h = harness();
  try {
    breakQueueOnKick(h);
    assert.equal(await h.driver.wait(0), true, "the wait sees the device needs a reset, unslept");
    assert.equal(h.driver.needsReset, true);
  } finally {
    await h.close();
  }
});

Deno.test("driver: a request whose kick breaks the queue fails as 'needs reset', not as a timeout", async () => {
  const h = harness();
  const alive = setTimeout(() => {}, 5_000);
  try {
    breakQueueOnKick(h);
    // The next request (it never reaches the broken queue).
    await assert.rejects(h.driver.execute(RequestType.FLUSH, 0, undefined, 2_000), /needs reset/);
  } finally {
    clearTimeout(alive);
    await h.close();
  }
});

Deno.test("interrupt line: every async wait is answered by an interrupt raised on the same thread", async () => {
  // An in-process device raises its interrupts on the thread the driver waits on. The runtime
  // must not end (or lose the wake-up) while such a wait is pending: nothing else is running.
  const transport = new TransportState();
  const line = new InterruptLine(transport.buffer);
  for (let i = 0; i < 20; i++) {
    const seen = line.count;
    const woken = line.wait(seen);
    await Promise.resolve();
    transport.raise(ISR_QUEUE);
    assert.equal(await woken, true, `wait ${i}`);
  }
});

Deno.test("driver: an async wait wakes when another caller's reap takes the completions, though no interrupt comes", async () => {
  // Operations awaited at once share one used ring: the first to wake reaps
  // every completion, the others' among them. An operation asleep in wait()
  // must then look again instead of waiting for an interrupt that has come
  // and gone (it hung until its timeout before).
  const h = harness();
  try {
    const ring = h.disk.pci.ioRead(LegacyRegister.QUEUE_PFN, 4) * 2 ** LEGACY_PFN_SHIFT;
    const { avail } = legacyRingAddresses(ring, h.driver.queueSize);
    const region = h.memory.regionFor(avail, 4 + 2 * h.driver.queueSize + 2)!;
    const u16 = (gpa: number) => (gpa - region.gpa) >>> 1;
    // One request first, answered with an interrupt and reaped (used index 1).
    await h.driver.execute(RequestType.FLUSH, 0);
    // No interrupt for the next completion, whichever suppression was
    // negotiated (§2.7.10): NO_INTERRUPT, or used_event behind the used index.
    Atomics.store(region.u16, u16(avail + AvailRing.FLAGS), AVAIL_F_NO_INTERRUPT);
    Atomics.store(region.u16, u16(avail + AvailRing.usedEvent(h.driver.queueSize)), 0);
    const line = new InterruptLine(h.disk.transport.buffer);
    const interrupts = line.count;

    const started = performance.now();
    const asleep = h.driver.wait(5_000);
    h.driver.submit(RequestType.FLUSH, 0);
    h.driver.kick(); // served in process, before kick() returns
    assert.equal(line.count, interrupts, "the device raised no interrupt");
    assert.equal(h.driver.reap(), 1, "another caller reaps the completion");
    assert.equal(await asleep, true, "the sleeping wait saw it");
    assert.ok(performance.now() - started < 2_500, "and did not sleep until its timeout");
  } finally {
    await h.close();
  }
});
