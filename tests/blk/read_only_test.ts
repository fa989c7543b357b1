/**
 * A read-only device (`ro`): VIRTIO_BLK_F_RO is offered, every write
 * completes IOERR without touching the medium, everything else works.
 */

import assert from "node:assert/strict";
import { BlkFeature, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { RequestFailed } from "../../src/guest/virtio_blk_driver.ts";
import { featureBit } from "../../src/virtio/spec.ts";
import { harness, pattern } from "../helpers/harness.ts";
import { RawGuest } from "../helpers/raw_guest.ts";

const SECTOR = 512;

Deno.test("read-only: RO is offered, writes complete IOERR and the RAM disk is unchanged", async () => {
  for (const features of [undefined, ~featureBit(BlkFeature.RO)]) {
    // Also when the driver does not accept RO: the device refuses writes anyway.
    const g = RawGuest.create({ readOnly: true, features });
    assert.ok(g.offered & featureBit(BlkFeature.RO));
    const contents = pattern(g.medium.length, 21);
    g.medium.set(contents);

    for (const indirect of [false, true]) {
      const w = g.request({
        type: RequestType.OUT,
        sector: 2,
        data: pattern(4 * SECTOR, 22),
        indirect,
      });
      g.offer(w.head);
      const before = g.snapshot();
      const usedIdx = g.usedIdx;
      g.notify();
      assert.deepEqual(g.usedSince(usedIdx), [{ id: w.head, len: 1 }]);
      assert.equal(g.u8(w.status), RequestStatus.IOERR);
      g.assertChangedOnly(before, [{ start: w.status, length: 1 }, g.usedRange]);
    }
    assert.deepEqual(g.medium, contents, "not one byte of the disk changed");

    const read = g.request({ type: RequestType.IN, sector: 2, data: 2 * SECTOR });
    const flush = g.request({ type: RequestType.FLUSH });
    const id = g.request({ type: RequestType.GET_ID, data: 20 });
    const usedIdx = g.usedIdx;
    g.submit(read.head, flush.head, id.head);
    assert.deepEqual(g.usedSince(usedIdx), [
      { id: read.head, len: 2 * SECTOR + 1 },
      { id: flush.head, len: 1 },
      { id: id.head, len: 21 },
    ]);
    for (const r of [read, flush, id]) assert.equal(g.u8(r.status), RequestStatus.OK);
    assert.deepEqual(g.readBytes(read.data, 2 * SECTOR), contents.subarray(2 * SECTOR, 4 * SECTOR));
    await g.close();
  }
});

Deno.test("read-only: a writable device does not offer RO", async () => {
  const g = RawGuest.create();
  assert.equal(g.offered & featureBit(BlkFeature.RO), 0);
  await g.close();
});

Deno.test("read-only: the guest driver sees RO and its writes fail with IOERR", async () => {
  const h = harness({ readOnly: true });
  assert.equal(h.driver.info.readOnly, true);
  h.medium.set(pattern(SECTOR, 23));
  await assert.rejects(
    h.driver.write(0, new Uint8Array(SECTOR).fill(1)),
    (error: unknown) => error instanceof RequestFailed && error.status === RequestStatus.IOERR,
  );
  assert.deepEqual(h.medium.subarray(0, SECTOR), pattern(SECTOR, 23));
  assert.deepEqual(await h.driver.read(0, SECTOR), pattern(SECTOR, 23));
  await h.close();
});
