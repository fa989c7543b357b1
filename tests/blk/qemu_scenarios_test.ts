/**
 * The scenarios of QEMU's virtio-blk qtest (tests/qtest/virtio-blk-test.c:
 * basic, indirect, config, nxvirtq, idx) and a device reset in the middle of
 * use, driven by hand through the legacy BAR and the ring in guest memory.
 */

import assert from "node:assert/strict";
import { BlkConfig, BlkFeature, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { VirtioBlkDriver } from "../../src/guest/virtio_blk_driver.ts";
import { DirectRegisters, InterruptLine } from "../../src/guest/io.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { DeviceStatus, featureBit, RingFeature } from "../../src/virtio/spec.ts";
import { QueueFault } from "../../src/virtio/split_queue.ts";
import { ISR_QUEUE } from "../../src/virtio/transport_state.ts";
import { harness, pattern } from "../helpers/harness.ts";
import { RawGuest, STATUS_UNTOUCHED } from "../helpers/raw_guest.ts";

const SECTOR = 512;

/** QEMU's payload: "TEST" at the start of an otherwise zero sector. */
function testSector(): Uint8Array {
  const data = new Uint8Array(SECTOR);
  data.set(new TextEncoder().encode("TEST"));
  return data;
}

/** Writes `data` at `sector` and reads it back, asserting every byte the device touched. */
function writeThenReadBack(g: RawGuest, sector: number, data: Uint8Array, indirect: boolean) {
  const usedBefore = g.usedIdx;
  const interruptsBefore = g.interrupts;

  const write = g.request({ type: RequestType.OUT, sector, data, indirect });
  g.offer(write.head);
  let before = g.snapshot();
  g.notify();
  assert.equal(g.u8(write.status), RequestStatus.OK);
  assert.deepEqual(g.usedSince(usedBefore), [{ id: write.head, len: 1 }]);
  assert.deepEqual(g.medium.subarray(sector * SECTOR, sector * SECTOR + data.length), data);
  g.assertChangedOnly(before, [...write.writable, g.usedRange]);
  assert.equal(g.interrupts, interruptsBefore + 1);
  assert.equal(g.takeIsr(), ISR_QUEUE);

  const read = g.request({ type: RequestType.IN, sector, data: data.length, indirect });
  g.offer(read.head);
  before = g.snapshot();
  g.notify();
  assert.equal(g.u8(read.status), RequestStatus.OK);
  assert.deepEqual(g.usedSince(usedBefore + 1), [{ id: read.head, len: data.length + 1 }]);
  assert.deepEqual(g.readBytes(read.data, data.length), data);
  g.assertChangedOnly(before, [...read.writable, g.usedRange]);
  assert.equal(g.interrupts, interruptsBefore + 2);
  assert.equal(g.takeIsr(), ISR_QUEUE);
  assert.equal(g.takeIsr(), 0, "reading the ISR cleared it");
}

Deno.test("qtest basic: a write then a read of the same sector, direct descriptors", async () => {
  const g = RawGuest.create();
  writeThenReadBack(g, 0, testSector(), false);
  writeThenReadBack(g, 1, pattern(4 * SECTOR, 1), false);
  // The last sector of the disk is reachable.
  writeThenReadBack(g, g.medium.length / SECTOR - 1, pattern(SECTOR, 2), false);
  assert.equal(g.queue.fault, QueueFault.NONE);
  await g.close();
});

Deno.test("qtest indirect: the same requests through indirect tables", async () => {
  const g = RawGuest.create();
  assert.ok(g.offered & featureBit(RingFeature.INDIRECT_DESC), "INDIRECT_DESC is offered");
  writeThenReadBack(g, 0, testSector(), true);
  writeThenReadBack(g, 7, pattern(8 * SECTOR, 3), true);
  await g.close();
});

Deno.test("qtest config: capacity, blk_size, topology and seg_max at every access width", async () => {
  const g = RawGuest.create({
    diskBytes: 3 << 20,
    device: { segMax: 17, logicalBlockSize: 512, physicalBlockSize: 4096 },
  });
  const config = (offset: number, size: 1 | 2 | 4) =>
    g.read(LegacyRegister.CONFIG + offset, size) >>> 0;
  const offered = g.offered;
  for (const bit of [BlkFeature.SEG_MAX, BlkFeature.BLK_SIZE, BlkFeature.TOPOLOGY]) {
    assert.ok(offered & featureBit(bit), `feature ${bit} is offered`);
  }
  assert.equal(offered & featureBit(BlkFeature.RO), 0);

  const capacity = 3 * 2048; // 512-byte sectors
  assert.equal(config(BlkConfig.CAPACITY, 4), capacity);
  assert.equal(config(BlkConfig.CAPACITY + 4, 4), 0);
  const bytes = [];
  for (let i = 0; i < 8; i++) bytes.push(config(BlkConfig.CAPACITY + i, 1));
  assert.deepEqual(bytes, [0x00, 0x18, 0, 0, 0, 0, 0, 0]);
  assert.equal(config(BlkConfig.CAPACITY, 2), 0x1800);
  assert.equal(config(BlkConfig.CAPACITY + 1, 2), 0x0018, "unaligned config reads work");

  assert.equal(config(BlkConfig.SEG_MAX, 4), 17);
  assert.equal(config(BlkConfig.BLK_SIZE, 4), 512);
  assert.equal(config(BlkConfig.PHYSICAL_BLOCK_EXP, 1), 3, "4096 = 512 << 3");
  assert.equal(config(BlkConfig.ALIGNMENT_OFFSET, 1), 0);
  assert.equal(config(BlkConfig.MIN_IO_SIZE, 2), 8, "in logical blocks");
  assert.equal(config(BlkConfig.OPT_IO_SIZE, 4), 8);
  assert.equal(config(BlkConfig.WRITEBACK, 1), 0, "write-through by default");
  assert.equal(config(BlkConfig.NUM_QUEUES, 2), 1);
  // Past the structure, inside the BAR: all ones.
  assert.equal(config(BlkConfig.SIZE, 1), 0xff);
  await g.close();

  // A 4096-byte logical block: capacity still counts 512-byte sectors.
  const big = RawGuest.create({
    diskBytes: 1 << 20,
    device: { logicalBlockSize: 4096, physicalBlockSize: 4096 },
  });
  assert.equal(big.read(LegacyRegister.CONFIG + BlkConfig.CAPACITY, 4), 2048);
  assert.equal(big.read(LegacyRegister.CONFIG + BlkConfig.BLK_SIZE, 4), 4096);
  assert.equal(big.read(LegacyRegister.CONFIG + BlkConfig.PHYSICAL_BLOCK_EXP, 1), 0);
  await big.close();
});

Deno.test("qtest nxvirtq: QUEUE_SEL, QUEUE_PFN and QUEUE_NOTIFY of a queue that does not exist change nothing", async () => {
  const g = RawGuest.create();
  const pfn = g.read(LegacyRegister.QUEUE_PFN, 4);
  const status = g.status;
  const interrupts = g.interrupts;
  // A request waits in the ring, not yet kicked.
  const pending = g.request({ type: RequestType.OUT, data: testSector() });
  g.offer(pending.head);
  const before = g.snapshot();

  for (const queue of [1, 2, 0xffff]) {
    g.write(LegacyRegister.QUEUE_SEL, 2, queue);
    assert.equal(g.read(LegacyRegister.QUEUE_SEL, 2), queue);
    assert.equal(g.read(LegacyRegister.QUEUE_NUM, 2), 0, "a queue that does not exist has size 0");
    g.write(LegacyRegister.QUEUE_PFN, 4, 1);
    g.write(LegacyRegister.QUEUE_PFN, 4, pfn + 4);
    assert.equal(g.read(LegacyRegister.QUEUE_PFN, 4), 0);
    g.notify(queue);
  }
  assert.deepEqual(g.changes(before), [], "guest memory is untouched");
  assert.equal(g.status, status);
  assert.equal(g.interrupts, interrupts);
  assert.equal(g.takeIsr(), 0);
  assert.equal(g.medium.every((b) => b === 0), true, "nothing reached the disk");

  // Queue 0 is as it was, and still works.
  g.write(LegacyRegister.QUEUE_SEL, 2, 0);
  assert.equal(g.read(LegacyRegister.QUEUE_PFN, 4), pfn);
  assert.equal(g.read(LegacyRegister.QUEUE_NUM, 2), 64);
  g.notify(0);
  assert.equal(g.u8(pending.status), RequestStatus.OK);
  assert.deepEqual(g.usedSince(0), [{ id: pending.head, len: 1 }]);
  await g.close();
});

Deno.test("qtest idx: with EVENT_IDX a completion before used_event does not interrupt; the next one interrupts for both", async () => {
  const g = RawGuest.create();
  const features = g.init(g.offered);
  assert.ok(features & featureBit(RingFeature.EVENT_IDX), "EVENT_IDX negotiated");

  // First write: the first completion always interrupts.
  const first = g.request({ type: RequestType.OUT, sector: 0, data: testSector() });
  g.submit(first.head);
  assert.deepEqual(g.usedSince(0), [{ id: first.head, len: 1 }]);
  assert.equal(g.interrupts, 1);
  assert.equal(g.takeIsr(), ISR_QUEUE);
  assert.equal(g.availEvent, 1, "the device asks for a kick at the next request");

  // "Notify after processing the third request": used_event = 2.
  g.usedEvent = 2;
  const second = g.request({ type: RequestType.OUT, sector: 1, data: testSector() });
  g.submit(second.head);
  assert.equal(g.u8(second.status), RequestStatus.OK);
  assert.equal(g.usedIdx, 2);
  assert.equal(g.interrupts, 1, "no interrupt: used.idx did not pass used_event");
  assert.equal(g.takeIsr(), 0);

  const third = g.request({ type: RequestType.IN, sector: 1, data: SECTOR });
  g.submit(third.head);
  assert.equal(g.interrupts, 2, "one interrupt for both requests");
  assert.equal(g.takeIsr(), ISR_QUEUE);
  assert.deepEqual(g.usedSince(1), [
    { id: second.head, len: 1 },
    { id: third.head, len: SECTOR + 1 },
  ]);
  assert.equal(g.u8(third.status), RequestStatus.OK);
  assert.deepEqual(g.readBytes(third.data, SECTOR), testSector());
  assert.equal(g.availEvent, 3);
  assert.equal(g.usedFlags, 0, "with EVENT_IDX used.flags is not used");
  await g.close();
});

Deno.test("reset mid-use: STATUS 0 forgets the ring and pending work; re-initialised, the device works again", async () => {
  const g = RawGuest.create();
  writeThenReadBack(g, 0, testSector(), false);
  g.write(LegacyRegister.CONFIG + BlkConfig.WRITEBACK, 1, 1);
  const interrupts = g.interrupts;

  // A request is made available but never kicked; then the driver resets.
  const pending = g.request({ type: RequestType.OUT, sector: 5, data: pattern(SECTOR, 9) });
  g.offer(pending.head);
  g.write(LegacyRegister.STATUS, 1, 0);
  assert.equal(g.status, 0);
  assert.equal(g.read(LegacyRegister.QUEUE_PFN, 4), 0, "the ring is forgotten");
  assert.equal(g.read(LegacyRegister.GUEST_FEATURES, 4), 0, "accepted features are forgotten");
  assert.equal(g.read(LegacyRegister.CONFIG + BlkConfig.WRITEBACK, 1), 0, "WCE back to default");
  assert.equal(g.takeIsr(), 0);
  assert.equal(g.queue.ready, false);

  // A kick now reaches no queue.
  const before = g.snapshot();
  g.notify();
  assert.deepEqual(g.changes(before), []);
  assert.equal(g.u8(pending.status), STATUS_UNTOUCHED);
  assert.equal(g.interrupts, interrupts);
  assert.ok(g.medium.subarray(5 * SECTOR, 6 * SECTOR).every((b) => b === 0));

  // Re-initialised (zeroed ring at the same place), the device serves again from index 0.
  g.init();
  assert.equal(g.status, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK);
  writeThenReadBack(g, 3, pattern(2 * SECTOR, 4), true);
  assert.equal(g.usedIdx, 2);
  assert.ok(g.medium.subarray(5 * SECTOR, 6 * SECTOR).every((b) => b === 0));
  await g.close();
});

Deno.test("the guest driver: write and read back, direct and indirect, across a device reset", async () => {
  for (const indirect of [false, true]) {
    const h = harness({ driver: { indirect } });
    assert.equal(h.driver.usesIndirect, indirect);
    const data = pattern(8 * SECTOR, indirect ? 5 : 6);
    await h.driver.write(16, data);
    assert.deepEqual(await h.driver.read(16, data.length), data);

    h.driver.resetDevice();
    assert.equal(h.disk.transport.status, 0);
    const again = VirtioBlkDriver.init({
      memory: h.memory,
      registers: new DirectRegisters(h.disk.pci),
      interrupt: new InterruptLine(h.disk.transport.buffer),
      allocator: h.allocator,
      indirect,
    });
    assert.deepEqual(await again.read(16, data.length), data);
    await again.write(17, data.subarray(0, SECTOR));
    await again.flush();
    assert.deepEqual(h.medium.subarray(17 * SECTOR, 18 * SECTOR), data.subarray(0, SECTOR));
    await h.close();
  }
});
