/**
 * The legacy virtio-PCI register block in BAR0 (virtio 1.2 §4.1.4.8,
 * reference §2): each register's width and access, queue set-up through
 * QUEUE_PFN, reset, the ISR, and device config from offset 20 — and that no
 * access, however wrong, throws.
 */

import assert from "node:assert/strict";
import { BlkConfig, BlkFeature } from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { QueueFault } from "../../src/virtio/split_queue.ts";
import { legacyRingSize } from "../../src/virtio/ring_layout.ts";
import { DeviceStatus, featureBit, RingFeature } from "../../src/virtio/spec.ts";
import { ISR_CONFIG, ISR_QUEUE } from "../../src/virtio/transport_state.ts";
import { RawGuest } from "../helpers/raw_guest.ts";

const R = LegacyRegister;
const ONES = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff } as const;

/** A device with nothing set up yet. */
function fresh(options: Parameters<typeof RawGuest.create>[0] = {}): RawGuest {
  return RawGuest.create({ ...options, init: false });
}

/** What a writable RAM disk without `discard` offers (WRITE_ZEROES: any writable medium). */
const OFFERED = featureBit(BlkFeature.SEG_MAX) | featureBit(BlkFeature.BLK_SIZE) |
  featureBit(BlkFeature.FLUSH) | featureBit(BlkFeature.TOPOLOGY) |
  featureBit(BlkFeature.CONFIG_WCE) | featureBit(BlkFeature.WRITE_ZEROES) |
  featureBit(RingFeature.INDIRECT_DESC) | featureBit(RingFeature.EVENT_IDX);

Deno.test("HOST_FEATURES: the offered set, 4-byte reads only, not writable", async () => {
  const g = fresh();
  assert.equal(g.read(R.HOST_FEATURES, 4), OFFERED >>> 0);
  assert.equal(g.read(R.HOST_FEATURES, 2), ONES[2]);
  assert.equal(g.read(R.HOST_FEATURES, 1), ONES[1]);
  g.write(R.HOST_FEATURES, 4, 0);
  assert.equal(g.read(R.HOST_FEATURES, 4), OFFERED >>> 0);
  await g.close();

  const noEventIdx = fresh({ device: { eventIdx: false } });
  assert.equal(noEventIdx.offered & featureBit(RingFeature.EVENT_IDX), 0);
  await noEventIdx.close();
});

Deno.test("GUEST_FEATURES: masked by the offered set, fixed once DRIVER_OK is set", async () => {
  const g = fresh();
  g.write(R.GUEST_FEATURES, 4, 0xffff_ffff);
  assert.equal(g.read(R.GUEST_FEATURES, 4), OFFERED >>> 0);
  assert.equal(g.disk.device.ackedFeatures, BigInt(OFFERED >>> 0));
  g.write(R.GUEST_FEATURES, 4, featureBit(BlkFeature.RO) | featureBit(BlkFeature.FLUSH));
  assert.equal(g.read(R.GUEST_FEATURES, 4), featureBit(BlkFeature.FLUSH), "RO is not offered");
  g.write(R.GUEST_FEATURES, 2, 0); // wrong width: ignored
  g.write(R.GUEST_FEATURES + 2, 2, 0);
  assert.equal(g.read(R.GUEST_FEATURES, 4), featureBit(BlkFeature.FLUSH));
  g.write(R.STATUS, 1, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK);
  g.write(R.GUEST_FEATURES, 4, 0);
  assert.equal(g.read(R.GUEST_FEATURES, 4), featureBit(BlkFeature.FLUSH), "fixed after DRIVER_OK");
  await g.close();
});

Deno.test("QUEUE_NUM and QUEUE_SEL: 2-byte registers; a queue that does not exist has size 0", async () => {
  const g = fresh({ device: { queueSize: 128 } });
  assert.equal(g.read(R.QUEUE_SEL, 2), 0);
  assert.equal(g.read(R.QUEUE_NUM, 2), 128);
  assert.equal(g.read(R.QUEUE_NUM, 4), ONES[4]);
  g.write(R.QUEUE_NUM, 2, 16); // read-only
  assert.equal(g.read(R.QUEUE_NUM, 2), 128);
  g.write(R.QUEUE_SEL, 2, 1);
  assert.equal(g.read(R.QUEUE_NUM, 2), 0);
  g.write(R.QUEUE_SEL, 1, 0); // wrong width
  g.write(R.QUEUE_SEL, 4, 0);
  assert.equal(g.read(R.QUEUE_SEL, 2), 1);
  assert.equal(g.read(R.QUEUE_SEL, 1), ONES[1]);
  await g.close();
});

Deno.test("QUEUE_PFN: the ring must lie wholly in guest memory, or the queue stays disabled", async () => {
  const memoryBytes = 1 << 20;
  const g = fresh({ memoryBytes });
  const pages = memoryBytes / 4096;
  const ringPages = legacyRingSize(64) / 4096;
  const refused = [pages - ringPages + 1, pages, 0x000f_ffff, 0xffff_ffff];
  for (const pfn of refused) {
    g.write(R.QUEUE_PFN, 4, pfn);
    assert.equal(g.read(R.QUEUE_PFN, 4), 0, `pfn ${pfn}`);
    assert.equal(g.queue.ready, false);
  }
  g.write(R.QUEUE_PFN, 4, pages - ringPages);
  assert.equal(g.read(R.QUEUE_PFN, 4), pages - ringPages, "a ring ending at the end of memory");
  assert.equal(g.queue.ready, true);
  g.write(R.QUEUE_PFN, 2, 1); // wrong width
  assert.equal(g.read(R.QUEUE_PFN, 4), pages - ringPages);
  assert.equal(g.read(R.QUEUE_PFN, 2), ONES[2]);
  // A refused PFN disables the queue that was there.
  g.write(R.QUEUE_PFN, 4, pages);
  assert.equal(g.read(R.QUEUE_PFN, 4), 0);
  assert.equal(g.queue.ready, false);
  g.write(R.QUEUE_PFN, 4, 1);
  assert.equal(g.queue.ready, true);
  g.write(R.QUEUE_PFN, 4, 0);
  assert.equal(g.read(R.QUEUE_PFN, 4), 0, "0 disables the queue");
  assert.equal(g.queue.ready, false);
  await g.close();
});

Deno.test("STATUS: 1-byte, read back as written; 0 resets the device", async () => {
  const g = RawGuest.create();
  const running = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK;
  assert.equal(g.status, running);
  assert.equal(g.read(R.STATUS, 2), ONES[2]);
  g.write(R.STATUS, 2, 0); // wrong width: no reset
  g.write(R.STATUS, 4, 0);
  assert.equal(g.status, running);
  assert.equal(g.queue.ready, true);
  g.write(R.CONFIG + BlkConfig.WRITEBACK, 1, 1);
  g.write(R.QUEUE_SEL, 2, 5);

  g.write(R.STATUS, 1, 0);
  assert.equal(g.status, 0);
  assert.equal(g.queue.ready, false);
  assert.equal(g.read(R.QUEUE_SEL, 2), 0);
  g.write(R.QUEUE_SEL, 2, 0);
  assert.equal(g.read(R.QUEUE_PFN, 4), 0);
  assert.equal(g.read(R.GUEST_FEATURES, 4), 0);
  assert.equal(g.read(R.CONFIG + BlkConfig.WRITEBACK, 1), 0);
  await g.close();
});

Deno.test("ISR: a 1-byte read returns and clears it; other widths neither", async () => {
  const g = RawGuest.create();
  g.disk.transport.raise(ISR_QUEUE);
  g.disk.transport.raise(ISR_CONFIG);
  assert.equal(g.read(R.ISR, 2), ONES[2]);
  assert.equal(g.read(R.ISR, 4), ONES[4]);
  assert.equal(g.read(R.ISR, 1), ISR_QUEUE | ISR_CONFIG);
  assert.equal(g.read(R.ISR, 1), 0);
  g.write(R.ISR, 1, 3); // read-only
  assert.equal(g.read(R.ISR, 1), 0);
  await g.close();
});

Deno.test("QUEUE_NOTIFY: 2-byte writes of an existing queue kick it; everything else is ignored", async () => {
  const g = RawGuest.create();
  const r = g.request({ type: 4 }); // FLUSH
  g.offer(r.head);
  const before = g.snapshot();
  g.write(R.QUEUE_NOTIFY, 1, 0);
  g.write(R.QUEUE_NOTIFY, 4, 0);
  g.write(R.QUEUE_NOTIFY, 2, 1);
  g.write(R.QUEUE_NOTIFY, 2, 0xffff);
  assert.deepEqual(g.changes(before), []);
  assert.equal(g.read(R.QUEUE_NOTIFY, 2), ONES[2], "write-only");
  g.write(R.QUEUE_NOTIFY, 2, 0);
  assert.equal(g.usedIdx, 1);
  await g.close();
});

Deno.test("device config starts at offset 20 and is readable at any width and alignment", async () => {
  const g = fresh({ diskBytes: 0x1234 * 512 });
  const capacity = g.disk.device.capacity;
  const read = (offset: number, size: 1 | 2 | 4) => g.read(R.CONFIG + offset, size) >>> 0;
  assert.equal(read(BlkConfig.CAPACITY, 4), capacity);
  for (let i = 0; i < 4; i++) {
    assert.equal(read(BlkConfig.CAPACITY + i, 1), (capacity >>> (8 * i)) & 0xff);
  }
  assert.equal(read(BlkConfig.CAPACITY + 1, 4), capacity >>> 8);
  assert.equal(read(BlkConfig.CAPACITY + 3, 2), (capacity >>> 24) & 0xffff);
  assert.equal(read(BlkConfig.BLK_SIZE - 1, 4), (512 << 8) >>> 0);
  await g.close();
});

Deno.test("offsets inside, between and beyond the registers read all ones and never throw", async () => {
  const g = RawGuest.create();
  const barSize = g.disk.pci.barSize;
  assert.equal(barSize, 128);
  const inside = [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 15, 17];
  for (const offset of inside) {
    for (const size of [1, 2, 4] as const) {
      assert.equal(g.read(offset, size), ONES[size], `read(${offset}, ${size})`);
    }
  }
  // Widths no port access has read as 32 ones, like the device config and the PCI header.
  for (const offset of [R.HOST_FEATURES, R.QUEUE_NUM, R.STATUS, R.ISR, R.CONFIG, 1]) {
    for (const size of [0, 3, 8]) {
      assert.equal(g.disk.pci.ioRead(offset, size), ONES[4], `read(${offset}, ${size})`);
    }
  }
  const before = g.snapshot();
  const status = g.status;
  const wild = [-1, -4, barSize, barSize - 1, barSize - 3, 1e9, 0.5, NaN, Infinity];
  for (const offset of wild) {
    for (const size of [1, 2, 4, 3, 8, 0] as const) {
      assert.doesNotThrow(() => g.disk.pci.ioWrite(offset, size, 0xffff_ffff));
      const value = g.disk.pci.ioRead(offset, size);
      if (size === 1 || size === 2 || size === 4) {
        if (!(offset >= 0 && offset + size <= barSize)) assert.equal(value, ONES[size]);
      }
    }
  }
  for (const offset of inside) g.write(offset, 1, 0);
  assert.deepEqual(g.changes(before), []);
  assert.equal(g.status, status);
  assert.equal(g.queue.ready, true);
  await g.close();
});

Deno.test("a broken device stays broken until reset: STATUS writes keep NEEDS_RESET, a new ring is refused", async () => {
  const g = RawGuest.create();
  const running = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK;
  g.availIdx = 200; // more than N ahead: the queue is broken
  g.notify();
  assert.equal(g.status, running | DeviceStatus.DEVICE_NEEDS_RESET);
  g.write(R.STATUS, 1, running);
  assert.equal(g.status, running | DeviceStatus.DEVICE_NEEDS_RESET, "the driver cannot clear it");
  const pfn = g.read(R.QUEUE_PFN, 4);
  g.write(R.QUEUE_PFN, 4, 0);
  g.write(R.QUEUE_PFN, 4, pfn);
  assert.equal(g.queue.fault, QueueFault.AVAIL_INDEX_TOO_FAR, "no fresh ring while NEEDS_RESET");
  assert.equal(g.read(R.QUEUE_PFN, 4), pfn, "the PFN write was ignored");
  g.write(R.STATUS, 1, 0);
  assert.equal(g.status, 0);
  assert.equal(g.queue.fault, 0);
  await g.close();
});

Deno.test("a closed function answers like a removed one: all ones, writes dropped, one interrupt", async () => {
  const g = RawGuest.create();
  const r = g.request({ type: 4 }); // FLUSH, offered but not yet kicked
  g.offer(r.head);
  const interrupts = g.disk.transport.interrupts;
  await g.close();
  assert.equal(g.disk.pci.closed, true);
  assert.equal(g.disk.transport.interrupts, interrupts + 1, "a waiting driver is woken to look");
  const before = g.snapshot();
  for (const offset of Object.values(R)) {
    for (const size of [1, 2, 4] as const) {
      g.write(offset, size, 0);
      assert.equal(g.read(offset, size), ONES[size], `read(${offset}, ${size})`);
    }
  }
  g.write(R.QUEUE_NOTIFY, 2, 0);
  assert.deepEqual(g.changes(before), [], "a kick of a closed function touches no guest memory");
  assert.equal(g.usedIdx, 0);
  await g.close(); // a second close changes nothing
  assert.equal(g.disk.transport.interrupts, interrupts + 1);
});
