/**
 * A medium that fails or hangs, end to end with the worker engine (a file
 * backend opened by every blockif thread, the driver in this thread):
 * - ENOSPC from a full file system (a sparse image on a small tmpfs) and
 *   EIO from nbdkit's error filter behind a FUSE file: the guest gets IOERR
 *   for the failing requests and OK for every other one, the device
 *   recovers without a reset once the medium does, the per-device counters
 *   (`device.mediumErrors`) hold the operation, errno and count of each kind
 *   and the last failure's offset, and the log says each kind once (then at
 *   the 10th, 100th, … failure). Reset and close then complete at once:
 *   nothing is left in the medium.
 * - A medium that hangs (nbdkit's pause filter): its requests wait, for as
 *   long as it hangs; another device keeps serving meanwhile; and close()
 *   waits for the held request too, however long, because a thread held in
 *   the medium cannot be stopped (terminating it does not end its read,
 *   which would land in guest memory after close() returned). A reset waits
 *   the same way (tests/blockif/device_options_test.ts, "reset with
 *   requests in flight").
 *
 * The bounds (`within`) are far above what each wait takes; they only turn
 * a hang into a failure.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import type { MediumErrorSummary } from "../../src/blk/medium_errors.ts";
import { ID_BYTES, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { type WorkerEngine, workerEngine } from "../../src/blockif/worker_engine.ts";
import { IoOp } from "../../src/io/io_queue.ts";
import { TmpfsMount, tmpfsUnavailable } from "../backend/file_fixtures.ts";
import { type Harness, harness, MiB, pattern } from "../helpers/harness.ts";
import { NBD_MEDIUM_TOOLS, NbdMedium } from "../helpers/nbd_medium.ts";
import { IO_VARIANTS, type IoVariant } from "../helpers/io_variants.ts";
import { needsTools, type Skip, skipWhen } from "../helpers/skip.ts";
import { until, within } from "../helpers/within.ts";

const NO_TMPFS = skipWhen("a full file system (medium faults)", tmpfsUnavailable());
const NO_NBD = needsTools(...NBD_MEDIUM_TOOLS);

const BOUND_MS = 20_000;
const ENOSPC = 28;
const EIO = 5;
const CHUNK = 64 << 10;

/**
 * A device over the file at `path` with the worker engine, its threads
 * reaching the file the `variant`'s way, and the log lines it wrote.
 */
function fileDevice(path: string, variant: IoVariant): Harness & { logs: string[] } {
  const logs: string[] = [];
  const h = harness({
    memoryBytes: 16 * MiB,
    device: {
      backend: describeFile(path, variant.name === "io_uring" ? { aio: "io_uring" } : {}),
      engine: workerEngine({ workers: 2 }),
      log: (line) => logs.push(line),
    },
  });
  return { ...h, logs };
}

/** One request of `length` bytes at `sector` from/to a fresh buffer; resolves with its status. */
async function request(
  h: Harness,
  type: number,
  sector: number,
  length: number,
  fill?: Uint8Array,
): Promise<{ status: number; data: Uint8Array }> {
  const address = h.allocator.alloc(Math.max(length, 1), 4096);
  const bytes = new Uint8Array(h.memory.buffer);
  try {
    if (fill) bytes.set(fill, address);
    const buffers = length === 0
      ? { count: 0, address: [], length: [] }
      : { count: 1, address: [address], length: [length] };
    const { status } = await h.driver.execute(type, sector, buffers);
    return { status, data: bytes.slice(address, address + length) };
  } finally {
    h.allocator.free(address);
  }
}

/**
 * The log lines about failures of `op` with `errno`: how many name the
 * kind's first failure, and the counts the others say (`… (10 times)`).
 */
function logged(logs: string[], op: string, errno: string) {
  const lines = logs.filter((line) =>
    line.includes(`${op} at offset`) && line.includes(`failed: ${errno}`)
  );
  return {
    first: lines.filter((line) => line.endsWith(`failed: ${errno}`)).length,
    counted: lines.flatMap((line) => {
      const count = /\((\d+) times\)$/.exec(line);
      return count ? [Number(count[1])] : [];
    }),
  };
}

function kind(summary: MediumErrorSummary, op: number, result: number): number {
  return summary.kinds.find((k) => k.op === op && k.result === result)?.count ?? 0;
}

/** Skipped if either the medium's tools or the I/O variant is missing here. */
function either(first: Skip, second: Skip): { ignore: boolean } {
  return { ignore: first.ignore || second.ignore };
}

/** Runs `body` on `h`; closes `h` if it fails (a passing body ends with {@linkcode resetAndClose}). */
async function closingOnFailure(h: Harness, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    await h.close();
    throw error;
  }
}

/** Reset (STATUS = 0, which waits for requests in flight) and close, each bounded. */
async function resetAndClose(h: Harness): Promise<void> {
  h.driver.resetDevice();
  await within(h.close(), BOUND_MS, "close()");
}

for (const variant of IO_VARIANTS) {
  Deno.test(
    `${variant.name}: medium ENOSPC (a full tmpfs): the guest gets IOERR for the writes that find no room and OK for everything else; the counters and the log say write/ENOSPC`,
    {
      ignore: either(NO_TMPFS, variant.skip).ignore,
    },
    async () => {
      // A sparse 2 MiB image on a 1 MiB file system: the writes run out of room halfway.
      using tmpfs = new TmpfsMount(1 << 20);
      const image = tmpfs.sparseFile("sparse.img", 2 << 20);
      const h = fileDevice(image, variant);
      await closingOnFailure(h, async () => {
        await within(h.disk.device.ready(), BOUND_MS, "the engine starts");
        const statuses: number[] = [];
        let lastFailed = -1;
        for (let offset = 0; offset < 2 << 20; offset += CHUNK) {
          const { status } = await request(
            h,
            RequestType.OUT,
            offset / 512,
            CHUNK,
            pattern(CHUNK, offset),
          );
          statuses.push(status);
          if (status !== RequestStatus.OK) lastFailed = offset;
        }
        const failed = statuses.filter((s) => s === RequestStatus.IOERR).length;
        assert.ok(failed > 0 && statuses.includes(RequestStatus.OK), `statuses ${statuses}`);
        assert.ok(statuses.every((s) => s === RequestStatus.OK || s === RequestStatus.IOERR));
        // Every other request is served: a read of what was written, a rewrite of a block
        // that has its room already, a flush, GET_ID.
        const read = await request(h, RequestType.IN, 0, CHUNK);
        assert.equal(read.status, RequestStatus.OK);
        assert.deepEqual(read.data, pattern(CHUNK, 0));
        assert.equal(
          (await request(h, RequestType.OUT, 0, CHUNK, pattern(CHUNK, 7))).status,
          RequestStatus.OK,
        );
        assert.equal((await request(h, RequestType.FLUSH, 0, 0)).status, RequestStatus.OK);
        assert.equal((await request(h, RequestType.GET_ID, 0, ID_BYTES)).status, RequestStatus.OK);

        const summary = h.disk.device.mediumErrors.summary();
        // A write that fails part way may be retried by no one: the counter counts requests'
        // failed operations, one per failed request here (one 64 KiB pwrite each).
        assert.equal(kind(summary, IoOp.WRITE, -ENOSPC), failed, JSON.stringify(summary));
        assert.equal(summary.total, failed);
        assert.deepEqual(summary.last, { op: IoOp.WRITE, result: -ENOSPC, offset: lastFailed });
        const lines = logged(h.logs, "write", "ENOSPC");
        assert.equal(lines.first, 1, `one line for the kind: ${h.logs.join("\n")}`);
        assert.deepEqual(lines.counted, failed >= 10 ? [10] : []);
        await resetAndClose(h);
      });
    },
  );
}

for (const variant of IO_VARIANTS) {
  Deno.test(
    `${variant.name}: medium EIO (nbdkit's error filter on reads and writes): IOERR for those, OK for flushes and GET_ID meanwhile, a recovery without reset; counters and log per kind`,
    {
      ignore: either(NO_NBD, variant.skip).ignore,
    },
    async () => {
      await using medium = await NbdMedium.start({
        plugin: { memory: 4 * MiB },
        errors: { errno: "EIO", ops: ["pread", "pwrite"], armed: false },
      });
      const h = fileDevice(medium.path, variant);
      await closingOnFailure(h, async () => {
        await within(h.disk.device.ready(), BOUND_MS, "the engine starts");
        assert.equal(
          (await request(h, RequestType.OUT, 0, CHUNK, pattern(CHUNK, 1))).status,
          RequestStatus.OK,
        );
        medium.armErrors(true);
        const WRITES = 12, READS = 11;
        for (let i = 0; i < WRITES; i++) {
          const sector = (CHUNK * (2 + i)) / 512;
          assert.equal(
            (await request(h, RequestType.OUT, sector, CHUNK, pattern(CHUNK, i))).status,
            RequestStatus.IOERR,
            `write ${i}`,
          );
        }
        // Blocks never read before: no page cache of the FUSE file can answer for the medium.
        const readOffset = (i: number) => 2 * MiB + CHUNK * i;
        for (let i = 0; i < READS; i++) {
          assert.equal(
            (await request(h, RequestType.IN, readOffset(i) / 512, CHUNK)).status,
            RequestStatus.IOERR,
            `read ${i}`,
          );
        }
        assert.equal((await request(h, RequestType.FLUSH, 0, 0)).status, RequestStatus.OK);
        assert.equal((await request(h, RequestType.GET_ID, 0, ID_BYTES)).status, RequestStatus.OK);

        const summary = h.disk.device.mediumErrors.summary();
        assert.equal(kind(summary, IoOp.WRITE, -EIO), WRITES, JSON.stringify(summary));
        assert.equal(kind(summary, IoOp.READ, -EIO), READS, JSON.stringify(summary));
        assert.equal(summary.total, WRITES + READS);
        assert.deepEqual(summary.last, {
          op: IoOp.READ,
          result: -EIO,
          offset: readOffset(READS - 1),
        });
        assert.deepEqual(
          logged(h.logs, "write", "EIO"),
          { first: 1, counted: [10] },
          h.logs.join("\n"),
        );
        assert.deepEqual(
          logged(h.logs, "read", "EIO"),
          { first: 1, counted: [10] },
          h.logs.join("\n"),
        );

        // The medium is back: so is the device, without a reset.
        medium.armErrors(false);
        const data = pattern(CHUNK, 99);
        assert.equal(
          (await request(h, RequestType.OUT, (3 * MiB) / 512, CHUNK, data)).status,
          RequestStatus.OK,
        );
        const read = await request(h, RequestType.IN, (3 * MiB) / 512, CHUNK);
        assert.deepEqual([read.status, read.data], [RequestStatus.OK, data]);
        await resetAndClose(h);
      });
    },
  );
}

for (const variant of IO_VARIANTS) {
  Deno.test(
    `${variant.name}: medium that hangs (nbdkit's pause filter): its read waits while another device serves; close() waits for the held read however long, so nothing writes guest memory after it returned`,
    {
      ignore: either(NO_NBD, variant.skip).ignore,
    },
    async () => {
      await using medium = await NbdMedium.start({ plugin: { memory: 4 * MiB }, pausable: true });
      const dir = await Deno.makeTempDir();
      const hung = fileDevice(medium.path, variant);
      await Deno.writeFile(`${dir}/other.img`, new Uint8Array(1 * MiB));
      const other = fileDevice(`${dir}/other.img`, variant);
      let hungClosed = false;
      try {
        await within(
          Promise.all([hung.disk.device.ready(), other.disk.device.ready()]),
          BOUND_MS,
          "engines start",
        );
        const engine = hung.disk.device.engine as WorkerEngine;
        await medium.pause();
        // A read the medium holds: 0xee in its buffer until the medium answers (zeros).
        const address = hung.allocator.alloc(CHUNK, 4096);
        const memory = new Uint8Array(hung.memory.buffer);
        memory.fill(0xee, address, address + CHUNK);
        const done: number[] = [];
        hung.driver.submit(RequestType.IN, (3 * MiB) / 512, {
          count: 1,
          address: [address],
          length: [CHUNK],
        }, (_, status) => done.push(status));
        hung.driver.kick();
        await until(
          () => engine.pool.busyFor(engine.deviceId, 0) > 0,
          BOUND_MS,
          "a worker takes the read",
        );

        // Another device is not held by this one's medium.
        const data = pattern(CHUNK, 5);
        assert.equal(
          (await request(other, RequestType.OUT, 0, CHUNK, data)).status,
          RequestStatus.OK,
        );
        assert.equal((await request(other, RequestType.IN, 0, CHUNK)).data.join(), data.join());

        // close() must wait for the held read, past the threads' 5 s grace: a thread that
        // is terminated meanwhile still finishes its read(2), into memory it no longer owns.
        const closing = hung.close().then(() => (hungClosed = true));
        await new Promise((resolve) => setTimeout(resolve, 7000));
        assert.equal(hungClosed, false, "close() returned while a read was held in the medium");
        assert.equal(
          (await request(other, RequestType.IN, 0, CHUNK)).status,
          RequestStatus.OK,
          "the other device serves during the close",
        );
        await medium.resume();
        await within(closing, BOUND_MS, "close() once the medium answers");
        assert.ok(
          memory.subarray(address, address + CHUNK).every((b) => b === 0),
          "the held read filled its buffer before close() returned",
        );
      } finally {
        if (!hungClosed) {
          await medium.resume();
          await hung.close();
        }
        await other.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
