/**
 * The write cache (virtio 1.2 §5.2.6.2, CONFIG_WCE): write-through by
 * default, write-back when the driver sets config `writeback` and can flush,
 * and the configured default back at every reset — seen through a medium
 * that records every write and flush the device asks of it.
 */

import assert from "node:assert/strict";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { BlkConfig, BlkFeature, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { featureBit } from "../../src/virtio/spec.ts";
import { harness, pattern } from "../helpers/harness.ts";
import { RawGuest, type RawGuestOptions, STATUS_UNTOUCHED } from "../helpers/raw_guest.ts";
import { type BackendCall, WindowBackend } from "./backends.ts";

const SECTOR = 512;
const WRITEBACK = LegacyRegister.CONFIG + BlkConfig.WRITEBACK;
const flushCall: BackendCall = { op: "flush" };

/** A guest whose device runs on a recording medium. */
function recordedGuest(options: RawGuestOptions = {}) {
  let medium: WindowBackend | undefined;
  const g = RawGuest.create({
    ...options,
    device: {
      ...options.device,
      engine: (ctx) =>
        new InlineEngine(ctx, medium = new WindowBackend(new Uint8Array(1 << 20), 0, 1 << 20)),
    },
  });
  return { g, medium: medium! };
}

/** Submits one request and returns the medium calls it caused. */
function run(
  g: RawGuest,
  medium: WindowBackend,
  request: { type: number; sector?: number; data?: Uint8Array | number },
): BackendCall[] {
  const r = g.request(request);
  const from = medium.calls.length;
  g.submit(r.head);
  assert.equal(g.u8(r.status), RequestStatus.OK);
  return medium.calls.slice(from);
}

function write(sector: number) {
  return { type: RequestType.OUT, sector, data: pattern(SECTOR, sector) };
}

const FLUSH = { type: RequestType.FLUSH };

Deno.test("write-through by default: every write is flushed before it completes", async () => {
  const { g, medium } = recordedGuest();
  assert.ok(g.offered & featureBit(BlkFeature.CONFIG_WCE));
  assert.ok(g.offered & featureBit(BlkFeature.FLUSH), "FLUSH is offered with CONFIG_WCE");
  assert.equal(g.read(WRITEBACK, 1), 0);

  const r = g.request(write(3));
  const seenAtFlush: { status: number; usedIdx: number }[] = [];
  medium.onCall = (call) => {
    if (call.op === "flush") seenAtFlush.push({ status: g.u8(r.status), usedIdx: g.usedIdx });
  };
  g.submit(r.head);
  assert.deepEqual(medium.calls, [{ op: "write", offset: 3 * SECTOR, length: SECTOR }, flushCall]);
  assert.deepEqual(seenAtFlush, [{ status: STATUS_UNTOUCHED, usedIdx: 0 }], "not yet completed");
  assert.equal(g.u8(r.status), RequestStatus.OK);

  medium.onCall = () => {};
  assert.deepEqual(run(g, medium, { type: RequestType.IN, sector: 3, data: SECTOR }), [
    { op: "read", offset: 3 * SECTOR, length: SECTOR },
  ]);
  assert.deepEqual(run(g, medium, FLUSH), [flushCall]);
  assert.deepEqual(run(g, medium, { type: RequestType.FLUSH_OUT }), [flushCall]);
  await g.close();
});

Deno.test("write-back once the driver sets writeback: writes complete unflushed, FLUSH makes them stable", async () => {
  const { g, medium } = recordedGuest();
  g.write(WRITEBACK, 1, 1);
  assert.equal(g.read(WRITEBACK, 1), 1);
  assert.equal(g.disk.device.state.writeCache, true);
  assert.deepEqual(run(g, medium, write(1)), [{ op: "write", offset: SECTOR, length: SECTOR }]);
  assert.deepEqual(run(g, medium, write(2)), [{ op: "write", offset: 2 * SECTOR, length: SECTOR }]);
  assert.deepEqual(run(g, medium, FLUSH), [flushCall]);

  // Back to write-through, with a 4-byte config write covering the field.
  g.write(WRITEBACK, 4, 0);
  assert.equal(g.read(WRITEBACK, 1), 0);
  assert.deepEqual(run(g, medium, write(4)), [
    { op: "write", offset: 4 * SECTOR, length: SECTOR },
    flushCall,
  ]);
  // A 2-byte write at offset 31 sets the field through its high byte.
  g.write(WRITEBACK - 1, 2, 0x0100);
  assert.equal(g.read(WRITEBACK, 1), 1);
  assert.deepEqual(run(g, medium, write(5)), [{ op: "write", offset: 5 * SECTOR, length: SECTOR }]);
  await g.close();
});

Deno.test("writeback is the only writable config field", async () => {
  const g = RawGuest.create();
  const before = Array.from(
    { length: BlkConfig.SIZE },
    (_, i) => g.read(LegacyRegister.CONFIG + i, 1),
  );
  for (let offset = 0; offset < BlkConfig.SIZE; offset++) {
    if (offset !== BlkConfig.WRITEBACK) g.write(LegacyRegister.CONFIG + offset, 1, 0x5a);
  }
  g.write(LegacyRegister.CONFIG + BlkConfig.CAPACITY, 4, 0xffff_ffff);
  const after = Array.from(
    { length: BlkConfig.SIZE },
    (_, i) => g.read(LegacyRegister.CONFIG + i, 1),
  );
  assert.deepEqual(after, before);
  await g.close();
});

Deno.test("CONFIG_WCE without FLUSH negotiated: writeback starts at 0 even on a writeback device", async () => {
  // virtio 1.2 §5.2.5.1: "the device MUST initialize writeback to 0".
  const { g, medium } = recordedGuest({
    device: { writeback: true },
    features: ~featureBit(BlkFeature.FLUSH),
  });
  assert.ok(g.read(LegacyRegister.GUEST_FEATURES, 4) & featureBit(BlkFeature.CONFIG_WCE));
  assert.equal(g.read(WRITEBACK, 1), 0);
  assert.deepEqual(run(g, medium, write(7)).at(-1), flushCall);
  // The same device with FLUSH negotiated starts in write-back, as configured.
  g.init();
  assert.equal(g.read(WRITEBACK, 1), 1);
  assert.deepEqual(run(g, medium, write(7)), [{ op: "write", offset: 7 * SECTOR, length: SECTOR }]);
  await g.close();
});

Deno.test("without FLUSH negotiated the device stays write-through, whatever writeback says", async () => {
  const { g, medium } = recordedGuest({ features: ~featureBit(BlkFeature.FLUSH) });
  assert.equal(g.read(LegacyRegister.GUEST_FEATURES, 4) & featureBit(BlkFeature.FLUSH), 0);
  g.write(WRITEBACK, 1, 1);
  assert.equal(g.disk.device.state.writeCache, false);
  assert.deepEqual(run(g, medium, write(6)), [
    { op: "write", offset: 6 * SECTOR, length: SECTOR },
    flushCall,
  ]);
  await g.close();
});

Deno.test("reset restores the configured cache mode", async (t) => {
  await t.step("writethru device: the guest's writeback = 1 is undone by a reset", async () => {
    const { g, medium } = recordedGuest();
    g.write(WRITEBACK, 1, 1);
    assert.deepEqual(run(g, medium, write(1)).length, 1);
    g.write(LegacyRegister.STATUS, 1, 0);
    assert.equal(g.read(WRITEBACK, 1), 0);
    g.init();
    assert.equal(g.read(WRITEBACK, 1), 0);
    assert.deepEqual(run(g, medium, write(1)), [
      { op: "write", offset: SECTOR, length: SECTOR },
      flushCall,
    ]);
    await g.close();
  });

  await t.step("writeback device: the guest's writeback = 0 is undone by a reset", async () => {
    const { g, medium } = recordedGuest({ device: { writeback: true } });
    assert.equal(g.read(WRITEBACK, 1), 1);
    assert.deepEqual(run(g, medium, write(2)), [{
      op: "write",
      offset: 2 * SECTOR,
      length: SECTOR,
    }]);
    g.write(WRITEBACK, 1, 0);
    assert.deepEqual(run(g, medium, write(2)).at(-1), flushCall);
    g.write(LegacyRegister.STATUS, 1, 0);
    assert.equal(g.read(WRITEBACK, 1), 1);
    g.init();
    assert.deepEqual(run(g, medium, write(2)), [{
      op: "write",
      offset: 2 * SECTOR,
      length: SECTOR,
    }]);
    // A driver that does not take FLUSH gets write-through from the same device.
    g.init(~featureBit(BlkFeature.FLUSH));
    assert.deepEqual(run(g, medium, write(2)).at(-1), flushCall);
    await g.close();
  });
});

Deno.test("the guest driver reads and toggles the cache mode", async () => {
  const h = harness();
  assert.equal(h.driver.info.writeback, false);
  h.driver.writeback = true;
  assert.equal(h.driver.writeback, true);
  assert.equal(h.disk.device.state.writeCache, true);
  h.driver.writeback = false;
  assert.equal(h.disk.device.state.writeCache, false);
  await h.close();
});
