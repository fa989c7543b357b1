/**
 * A medium's failure keeps its cause: the guest sees IOERR (virtio 1.2
 * §5.2.6), and the device counts each failure by operation and errno, with
 * the last one's offset, logging the first of each kind and then every
 * tenfold count, so a failing disk names its problem without flooding the
 * log.
 */

import assert from "node:assert/strict";
import type { BlockBackend } from "../../src/backend/backend.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { describeSummary, logsAt, MediumErrors } from "../../src/blk/medium_errors.ts";
import { ERRNO } from "../../src/io/errno.ts";
import { IO_SHORT, IoOp } from "../../src/io/io_queue.ts";
import { RequestFailed } from "../../src/guest/virtio_blk_driver.ts";
import { harness, MiB } from "../helpers/harness.ts";
import { TruncatedBackend } from "./backends.ts";

/** A medium whose writes fail as a full file system's do (node:fs and Deno report the name). */
class FullBackend implements BlockBackend {
  readonly readOnly = false;
  constructor(readonly size: number) {}
  read(_offset: number, bytes: Uint8Array, at: number, length: number): void {
    bytes.fill(0, at, at + length);
  }
  write(): void {
    throw Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
  }
  flush(): void {}
  close(): void {}
}

Deno.test("medium errors: counted by operation and errno, most frequent first, with the last offset", () => {
  const errors = new MediumErrors();
  assert.equal(errors.record(IoOp.WRITE, -ERRNO.ENOSPC, 4096), 1);
  assert.equal(errors.record(IoOp.WRITE, -ERRNO.ENOSPC, 8192), 2);
  assert.equal(errors.record(IoOp.FLUSH, -ERRNO.EIO, 0), 1);
  assert.equal(errors.record(IoOp.READ, IO_SHORT, 3 * 2 ** 32 + 512), 1);
  const again = new MediumErrors(errors.buffer); // another thread's view
  const summary = again.summary();
  assert.equal(summary.total, 4);
  assert.deepEqual(summary.kinds[0], { op: IoOp.WRITE, result: -ERRNO.ENOSPC, count: 2 });
  assert.deepEqual(summary.last, { op: IoOp.READ, result: IO_SHORT, offset: 3 * 2 ** 32 + 512 });
  assert.equal(
    describeSummary(summary),
    "4 medium errors: write ENOSPC ×2, flush EIO ×1, read short ×1; last: read at offset " +
      `${3 * 2 ** 32 + 512} failed: the medium ended before the last byte`,
  );
});

Deno.test("medium errors: logged at the 1st, 10th, 100th … failure of a kind", () => {
  const logged = Array.from({ length: 1000 }, (_, i) => i + 1).filter(logsAt);
  assert.deepEqual(logged, [1, 10, 100, 1000]);
});

Deno.test("a device whose medium is full: the guest gets IOERR, the cause is counted and logged once per kind", async () => {
  const log: string[] = [];
  const h = harness({
    device: {
      engine: (context) => new InlineEngine(context, new FullBackend(MiB)),
      log: (message) => log.push(message),
    },
  });
  try {
    for (let i = 0; i < 10; i++) {
      await assert.rejects(h.driver.write(8 * i, new Uint8Array(512).fill(1)), RequestFailed);
    }
    const summary = h.disk.device.mediumErrors.summary();
    assert.deepEqual(summary.kinds, [{ op: IoOp.WRITE, result: -ERRNO.ENOSPC, count: 10 }]);
    assert.deepEqual(summary.last, { op: IoOp.WRITE, result: -ERRNO.ENOSPC, offset: 9 * 4096 });
    assert.deepEqual(log, [
      `${h.disk.device.name}: write at offset 0 failed: ENOSPC`,
      `${h.disk.device.name}: write at offset 36864 failed: ENOSPC (10 times)`,
    ]);
    // Reads still work: one kind of failure does not stop the device.
    assert.deepEqual(await h.driver.read(0, 512), new Uint8Array(512));
  } finally {
    await h.close();
  }
});

Deno.test("a medium shortened under the device: reads past its end are counted as short, a failed sync as EIO", async () => {
  const log: string[] = [];
  const medium = new TruncatedBackend(MiB, 64 * 1024);
  medium.flushFails = true;
  const h = harness({
    device: { engine: (context) => new InlineEngine(context, medium), log: (m) => log.push(m) },
  });
  try {
    await assert.rejects(h.driver.read(256, 512), RequestFailed);
    await assert.rejects(h.driver.flush(), RequestFailed);
    const kinds = h.disk.device.mediumErrors.summary().kinds;
    assert.deepEqual(kinds.map(({ op, result }) => [op, result]), [
      [IoOp.READ, IO_SHORT],
      [IoOp.FLUSH, -ERRNO.EIO],
    ]);
    assert.equal(log.length, 2);
    assert.match(log[0], /read at offset 131072 failed: the medium ended before the last byte/);
    assert.match(log[1], /flush failed: EIO$/);
  } finally {
    await h.close();
  }
});
