/**
 * Closing a virtio-blk PCI function while a driver still holds it: every
 * request, pending or later, fails with a `VirtioBlkError` `CLOSED` that
 * names the device, on either engine and either way of waiting; none hangs.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import type { VirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { GuestAllocator } from "../../src/guest/allocator.ts";
import { DirectRegisters, InterruptLine } from "../../src/guest/io.ts";
import { VirtioBlkDriver } from "../../src/guest/virtio_blk_driver.ts";
import { TempDir } from "../backend/file_fixtures.ts";
import { harness } from "../helpers/harness.ts";

/** The error every request to `disk` must fail with once it is closed. */
function closedError(disk: VirtioBlkPci) {
  return (error: unknown) => {
    assert.ok(error instanceof VirtioBlkError, `not a VirtioBlkError: ${error}`);
    assert.equal(error.code, "CLOSED");
    assert.equal(error.message, `${disk.pci.name} is closed (its registers read all ones)`);
    return true;
  };
}

Deno.test("close: the README's set-up (blockif workers) fails every later request as CLOSED", async () => {
  const h = harness({ device: { engine: workerEngine() } });
  await h.disk.device.ready();
  await h.driver.write(0, new Uint8Array(512).fill(7));
  const free = h.allocator.available;
  await h.close();

  assert.match(h.disk.pci.name, /^virtio-blk device on RAM disk [0-9a-f]{16}$/);
  await assert.rejects(h.driver.read(0, 512), closedError(h.disk));
  assert.equal(h.driver.closed, true);
  await assert.rejects(h.driver.write(0, new Uint8Array(512)), closedError(h.disk));
  await assert.rejects(h.driver.flush(), closedError(h.disk));
  await assert.rejects(h.driver.getId(), closedError(h.disk));
  assert.throws(() => h.driver.submit(0, 0), closedError(h.disk));
  assert.equal(h.allocator.available, free, "the failed requests freed their buffers");
});

Deno.test("close: a request the device has not taken yet fails as CLOSED when it closes", async () => {
  const h = harness();
  // The device stops taking chains (as a back end does while it hands its rings over).
  h.disk.device.queue(0).pause();
  const free = h.allocator.available;
  const pending = h.driver.read(0, 512);
  const outcome = pending.then(() => "resolved", (error) => error);
  await h.close();
  closedError(h.disk)(await outcome);
  assert.equal(h.allocator.available, free, "its bounce buffer was freed");
});

Deno.test("close: the blocking calls (a driver in a Worker) fail as CLOSED too", async () => {
  const h = harness();
  h.driver.writeSync(0, new Uint8Array(512));
  await h.close();
  assert.throws(() => h.driver.readSync(0, 512), closedError(h.disk));
  assert.throws(() => h.driver.flushSync(), closedError(h.disk));
  assert.throws(() => h.driver.waitSync(1000), closedError(h.disk));
});

Deno.test("close: a driver started on a closed function fails at once as CLOSED", async () => {
  const h = harness();
  await h.close();
  assert.throws(
    () =>
      VirtioBlkDriver.init({
        memory: h.memory,
        registers: new DirectRegisters(h.disk.pci),
        interrupt: new InterruptLine(h.disk.transport.buffer),
        allocator: new GuestAllocator(0x1000, h.memory.size),
      }),
    closedError(h.disk),
  );
});

Deno.test("close: the error names the file a device serves", async () => {
  using dir = new TempDir();
  const path = dir.file("named.img", 64 * 1024);
  const h = harness({ device: { backend: describeFile(path) } });
  await h.close();
  await assert.rejects(h.driver.read(0, 512), (error: unknown) => {
    assert.ok(error instanceof VirtioBlkError);
    assert.equal(
      error.message,
      `virtio-blk device on ${path} is closed (its registers read all ones)`,
    );
    return true;
  });
});
