/**
 * A device's medium changing while the driver runs (`device.changeMedium`):
 * a resize (the same file at a new size), an empty drive (ACRN's `nodisk`)
 * that gets a medium and loses it again. The driver hears each change as a
 * configuration-change interrupt and reads the new capacity; nothing
 * reaches past the new end, also for requests that were on their way
 * during the shrink. On both ways the engine's threads reach the file
 * (synchronous calls, io_uring) and with the in-process engine.
 */

import assert from "node:assert/strict";
import { truncateSync } from "node:fs";
import type { FileBackendSpec } from "../../src/backend/file_driver.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { isNoMedium, noMedium } from "../../src/backend/no_medium.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { type WorkerEngine, workerEngine } from "../../src/blockif/worker_engine.ts";
import type { EngineFactory } from "../../src/blk/engine.ts";
import { RequestFailed, type VirtioBlkDriver } from "../../src/guest/virtio_blk_driver.ts";
import { type Harness, harness, MiB, pattern } from "../helpers/harness.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";
import { NBD_MEDIUM_TOOLS, NbdMedium } from "../helpers/nbd_medium.ts";
import { sendRanges } from "../helpers/range_request.ts";
import { needsTools } from "../helpers/skip.ts";

const SECTOR = 512;

/** A file of `bytes` zeros in a new directory; removed on dispose. */
function tempFile(bytes: number): { path: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "medium-change-" });
  const path = `${dir}/disk.img`;
  Deno.writeFileSync(path, new Uint8Array(bytes));
  return { path, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

/** The engines a medium change must work on, for `aio` (threads or io_uring). */
function engines(aio: "threads" | "io_uring"): { name: string; engine: EngineFactory }[] {
  const threads = { name: "blockif threads", engine: workerEngine({ workers: 2 }) };
  // The in-process engine waits for io_uring inside notify; one case of it is enough.
  return aio === "io_uring"
    ? [threads]
    : [threads, { name: "in-process", engine: (context) => new InlineEngine(context) }];
}

/** Reads `sectors` at `sector`; the status the device gave (OK, or IOERR's 1). */
async function readStatus(driver: VirtioBlkDriver, sector: number, sectors = 1): Promise<number> {
  try {
    await driver.read(sector, sectors * SECTOR);
    return RequestStatus.OK;
  } catch (error) {
    if (error instanceof RequestFailed) return error.status;
    throw error;
  }
}

/** Waits (without a deadline of its own) until the driver has seen `changes` config changes. */
async function configChanges(h: Harness, changes: number): Promise<void> {
  while (h.driver.acknowledgeInterrupts(), h.driver.configChanges < changes) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

for (const io of IO_VARIANTS) {
  for (const { name, engine } of engines(io.name === "io_uring" ? "io_uring" : "threads")) {
    Deno.test({
      name: `medium change (${io.name}, ${name}): a resize reaches the driver as a config ` +
        `interrupt with the new capacity, and nothing goes past the new end`,
      ignore: io.skip.ignore,
      async fn() {
        using file = tempFile(MiB);
        const aio = io.name === "io_uring" ? "io_uring" : "threads";
        const spec = describeFile(file.path, { aio });
        const h = harness({ device: { backend: spec, engine } });
        try {
          await h.disk.device.ready();
          assert.equal(h.driver.capacity, MiB / SECTOR);
          const device = h.disk.device;

          // Grow: the file first, then the device.
          truncateSync(file.path, 2 * MiB);
          await device.changeMedium({ ...spec, size: 2 * MiB });
          assert.equal(device.capacity, 2 * MiB / SECTOR);
          await configChanges(h, 1);
          assert.equal(h.driver.capacity, 2 * MiB / SECTOR, "the driver read the new capacity");
          const data = pattern(4096, 7);
          await h.driver.write(2 * MiB / SECTOR - 8, data);
          assert.deepEqual(await h.driver.read(2 * MiB / SECTOR - 8, 4096), data);

          // Shrink: the device first; then nothing may reach past the new end.
          await device.changeMedium({ ...spec, size: MiB / 2 });
          await configChanges(h, 2);
          assert.equal(h.driver.capacity, MiB / 2 / SECTOR);
          truncateSync(file.path, MiB / 2);
          assert.equal(await readStatus(h.driver, MiB / 2 / SECTOR - 1), RequestStatus.OK);
          assert.equal(await readStatus(h.driver, MiB / 2 / SECTOR), RequestStatus.IOERR);
          await assert.rejects(
            h.driver.write(MiB / 2 / SECTOR, new Uint8Array(SECTOR)),
            RequestFailed,
          );
          assert.equal(Deno.statSync(file.path).size, MiB / 2, "the file did not grow back");
        } finally {
          await h.close();
        }
      },
    });
  }
}

for (const { name, engine } of engines("threads")) {
  Deno.test(`medium change (${name}): an empty drive has capacity 0, gets a medium, loses it`, async () => {
    using file = tempFile(MiB);
    const h = harness({ device: { backend: noMedium(), engine } });
    try {
      await h.disk.device.ready();
      const { driver } = h;
      assert.equal(driver.capacity, 0);
      // virtio-blk has no "no medium" status: every transfer is out of range, IOERR.
      assert.equal(await readStatus(driver, 0), RequestStatus.IOERR);
      await assert.rejects(driver.write(0, new Uint8Array(SECTOR)), RequestFailed);
      const flush = await driver.execute(RequestType.FLUSH, 0);
      assert.equal(flush.status, RequestStatus.OK, "nothing to make stable: FLUSH succeeds");
      assert.match(await driver.getId(), /\S/, "GET_ID answers");

      const medium = describeFile(file.path);
      await h.disk.device.changeMedium(medium);
      await configChanges(h, 1);
      assert.equal(driver.capacity, MiB / SECTOR);
      const data = pattern(8192, 3);
      await driver.write(100, data);
      assert.deepEqual(await driver.read(100, data.length), data);
      assert.deepEqual(
        Deno.readFileSync(file.path).subarray(100 * SECTOR, 100 * SECTOR + data.length),
        data,
        "the write reached the inserted file",
      );

      await h.disk.device.changeMedium(noMedium());
      await configChanges(h, 2);
      assert.equal(driver.capacity, 0);
      assert.equal(await readStatus(driver, 100), RequestStatus.IOERR);
    } finally {
      await h.close();
    }
  });
}

Deno.test("medium change: a medium no thread can open leaves the drive empty, and the driver is told", async () => {
  using file = tempFile(MiB);
  const spec = describeFile(file.path);
  const h = harness({ device: { backend: spec, engine: workerEngine({ workers: 2 }) } });
  try {
    await h.disk.device.ready();
    const gone: FileBackendSpec = { ...spec, path: `${file.path}.missing`, name: "missing" };
    await assert.rejects(h.disk.device.changeMedium(gone), /missing/);
    assert.ok(isNoMedium(h.disk.device.medium), "the drive is empty");
    await configChanges(h, 1);
    assert.equal(h.driver.capacity, 0);
    assert.equal(await readStatus(h.driver, 0), RequestStatus.IOERR);
  } finally {
    await h.close();
  }
});

const PAUSE = needsTools(...NBD_MEDIUM_TOOLS);

Deno.test({
  name: "medium change: a shrink waits for the request in flight on the old medium, and a " +
    "request taken before it but started after is refused past the new end",
  ignore: PAUSE.ignore,
  async fn() {
    await using paused = await NbdMedium.start({ plugin: { memory: MiB }, pausable: true });
    // One thread, and the device thread takes requests off the ring (ACRN's
    // dispatch): the second request is parsed at once, against the old capacity.
    const spec = describeFile(paused.path);
    const h = harness({
      device: { backend: spec, engine: workerEngine({ workers: 1, dispatch: "device" }) },
    });
    try {
      await h.disk.device.ready();
      const { driver } = h;
      await paused.pause();
      const held = driver.write(0, pattern(4096, 1));
      // The one thread has taken it, and it hangs on the medium.
      const pool = (h.disk.device.engine as WorkerEngine).pool;
      while (pool.busyCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      // The last sector: inside the old capacity, outside the new one.
      const late = readStatus(driver, MiB / SECTOR - 1);
      const lateZeroes = sendRanges(h, RequestType.WRITE_ZEROES, [[MiB / SECTOR - 8, 8]]);
      let shrunk = false;
      const shrink = h.disk.device.changeMedium({ ...spec, size: MiB / 2 })
        .then(() => (shrunk = true));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(shrunk, false, "the shrink waits while a request is on the old medium");
      await paused.resume();
      await shrink;
      await held;
      assert.equal(await late, RequestStatus.IOERR, "the late request was checked again");
      assert.equal(await lateZeroes, RequestStatus.IOERR, "so were the late WRITE_ZEROES' ranges");
      await configChanges(h, 1);
      assert.equal(driver.capacity, MiB / 2 / SECTOR);
      assert.equal(await readStatus(driver, MiB / 2 / SECTOR - 1), RequestStatus.OK);
    } finally {
      await paused.resume();
      await h.close();
    }
  },
});
