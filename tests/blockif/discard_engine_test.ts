/**
 * DISCARD and WRITE_ZEROES through the blockif engine onto a real file, over
 * each I/O variant (threads: fallocate through FFI on the thread;
 * io_uring: IORING_OP_FALLOCATE): a discard punches holes (the file keeps
 * its size and frees the blocks), WRITE_ZEROES zeros in place or, with
 * unmap, deallocates; a `range=` window keeps every range inside it; and
 * where the file system refuses to zero a range (tmpfs has no ZERO_RANGE)
 * the zeros are written instead. The request-level checks are in
 * `tests/blk/discard_test.ts`.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import type { FileBackendSpec } from "../../src/backend/file_driver.ts";
import { fileSpaceUnavailable } from "../../src/backend/file_space.ts";
import type { DiscardOptions } from "../../src/blk/device.ts";
import { RangeFlag, RangeSegment, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import type { BackendSpec } from "../../src/backend/backend.ts";
import { type Harness, harness, MiB, pattern } from "../helpers/harness.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";
import { skipWhen } from "../helpers/skip.ts";
import { LoopDevice, loopDevicesUnavailable, TempDir } from "../backend/file_fixtures.ts";

const SECTOR = 512;
const { OK, IOERR } = RequestStatus;
// Holes are punched through Deno's FFI; on Node the device offers no DISCARD.
const space = skipWhen("DISCARD onto files", fileSpaceUnavailable());

/** [first sector, sectors, flags] of each segment. */
type Segment = readonly [number, number, number?];

/** `discard` with room for the tests' multi-segment requests. */
const DISCARD: DiscardOptions = { maxSegments: 4 };

/** A device over `backend` served by the worker engine (DISCARD offered with `discard`). */
async function device(backend: BackendSpec, discard?: DiscardOptions) {
  const h = harness({
    device: { backend, engine: workerEngine({ workers: 2 }), discard },
  });
  await h.disk.device.ready();
  return h;
}

/** Sends a DISCARD or WRITE_ZEROES of `segments`; its status. */
async function send(h: Harness, type: number, segments: readonly Segment[]): Promise<number> {
  const bytes = segments.length * RangeSegment.SIZE;
  const table = h.allocator.alloc(bytes, 16);
  const view = new DataView(h.memory.buffer);
  segments.forEach(([sector, sectors, flags], i) => {
    const at = table + i * RangeSegment.SIZE;
    view.setBigUint64(at + RangeSegment.SECTOR, BigInt(sector), true);
    view.setUint32(at + RangeSegment.NUM_SECTORS, sectors, true);
    view.setUint32(at + RangeSegment.FLAGS, flags ?? 0, true);
  });
  const done = await h.driver.execute(type, 0, { count: 1, address: [table], length: [bytes] });
  return done.status;
}

/** `bytes` with `[sector, +sectors)` of each segment zeroed. */
function zeroed(bytes: Uint8Array, segments: readonly Segment[]): Uint8Array {
  const out = bytes.slice();
  for (const [sector, sectors] of segments) {
    out.fill(0, sector * SECTOR, (sector + sectors) * SECTOR);
  }
  return out;
}

/**
 * Blocks a hole of `sectors` frees at least: splitting an extent may cost
 * the file system a block of its own (ext4: one 4 KiB extent block).
 */
function freedAtLeast(sectors: number): number {
  return sectors - 64;
}

/** 512-byte blocks the file holds on disk. */
function blocks(path: string): number {
  return Deno.statSync(path).blocks!;
}

for (const io of IO_VARIANTS) {
  const ignore = io.skip.ignore || space.ignore;

  Deno.test(
    `DISCARD (${io.name}): holes punched in the file — blocks freed, size kept, the rest intact`,
    {
      ignore,
    },
    async () => {
      using medium = io.medium(MiB, { file: true });
      const path = (medium.backend as FileBackendSpec).path;
      const h = await device(medium.backend, DISCARD);
      try {
        const data = pattern(MiB, 7);
        await h.driver.write(0, data);
        await h.driver.flush();
        const before = blocks(path);
        const ranges: Segment[] = [[256, 512], [1024, 256]];
        assert.equal(await send(h, RequestType.DISCARD, ranges), OK);
        assert.ok(
          before - blocks(path) >= freedAtLeast(768),
          `${before} blocks, then ${blocks(path)}`,
        );
        assert.equal(Deno.statSync(path).size, MiB);
        assert.deepEqual(medium.bytes(), zeroed(data, ranges));
        assert.deepEqual(await h.driver.read(256, 4096), new Uint8Array(4096));
      } finally {
        await h.close();
      }
    },
  );

  Deno.test(`WRITE_ZEROES (${io.name}): zeros in place without unmap, deallocated with it`, {
    ignore,
  }, async () => {
    using medium = io.medium(MiB, { file: true });
    const path = (medium.backend as FileBackendSpec).path;
    const h = await device(medium.backend, DISCARD);
    try {
      const data = pattern(MiB, 8);
      await h.driver.write(0, data);
      await h.driver.flush();
      const before = blocks(path);
      const inPlace: Segment[] = [[0, 256], [600, 8]];
      assert.equal(await send(h, RequestType.WRITE_ZEROES, inPlace), OK);
      assert.deepEqual(medium.bytes(), zeroed(data, inPlace));
      assert.ok(blocks(path) >= before, "ZERO_RANGE keeps the blocks allocated");
      const zeroedInPlace = blocks(path);
      const unmapped: Segment[] = [[1024, 512, RangeFlag.UNMAP]];
      assert.equal(await send(h, RequestType.WRITE_ZEROES, unmapped), OK);
      assert.deepEqual(medium.bytes(), zeroed(data, [...inPlace, ...unmapped]));
      assert.ok(zeroedInPlace - blocks(path) >= freedAtLeast(512), "unmap punched a hole");
    } finally {
      await h.close();
    }
  });

  Deno.test(
    `range= window (${io.name}): ranges stay inside it; one past its end is IOERR and nothing runs`,
    {
      ignore,
    },
    async () => {
      using dir = tempDir();
      const path = `${dir.path}/disk.img`;
      const file = pattern(MiB, 9);
      Deno.writeFileSync(path, file);
      // Sectors 512–1535 of the file are the device's 0–1023.
      const backend = describeFile(path, {
        range: { start: 512, size: 1024 },
        aio: io.name === "io_uring" ? "io_uring" : "threads",
      });
      const h = await device(backend, DISCARD);
      try {
        assert.equal(await send(h, RequestType.DISCARD, [[0, 1], [1023, 1]]), OK);
        assert.equal(await send(h, RequestType.WRITE_ZEROES, [[1000, 24]]), OK);
        assert.equal(await send(h, RequestType.DISCARD, [[10, 1], [1023, 2]]), IOERR);
        assert.equal(await send(h, RequestType.WRITE_ZEROES, [[10, 1], [1024, 1]]), IOERR);
        assert.deepEqual(
          Deno.readFileSync(path),
          zeroed(file, [[512, 1], [1535, 1], [1512, 24]]),
          "only the window's ranges changed",
        );
      } finally {
        await h.close();
      }
    },
  );

  const shm = skipWhen("the zero-writing fallback on tmpfs", tmpfsMissing());
  // No FFI (Node): zeros are written there too.
  Deno.test(
    `WRITE_ZEROES (${io.name}) where the file system cannot zero a range (tmpfs): zeros are written`,
    {
      ignore: io.skip.ignore || shm.ignore,
    },
    async () => {
      using dir = tempDir("/dev/shm");
      const path = `${dir.path}/disk.img`;
      const file = pattern(4 * MiB, 10);
      Deno.writeFileSync(path, file);
      const backend = describeFile(path, { aio: io.name === "io_uring" ? "io_uring" : "threads" });
      // No `discard`: unmap may not deallocate, so ZERO_RANGE, which tmpfs refuses (EOPNOTSUPP).
      const h = await device(backend);
      try {
        // 2.5 MiB: more than one buffer of zeros (1 MiB) is written, from an odd offset.
        const ranges: Segment[] = [[3, 5120, RangeFlag.UNMAP]];
        assert.equal(await send(h, RequestType.WRITE_ZEROES, ranges), OK);
        assert.deepEqual(Deno.readFileSync(path), zeroed(file, ranges));
      } finally {
        await h.close();
      }
    },
  );
}

/** A temporary directory, under `parent` when given, removed on dispose. */
function tempDir(parent?: string): Disposable & { path: string } {
  const path = Deno.makeTempDirSync({ dir: parent, prefix: "discard-" });
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

/** Why there is no tmpfs at /dev/shm to test on, or undefined. */
function tmpfsMissing(): string | undefined {
  try {
    Deno.statSync("/dev/shm");
    return undefined;
  } catch {
    return "no /dev/shm";
  }
}

const noLoop = loopDevicesUnavailable();
const loopSkip = skipWhen("DISCARD onto a block device", noLoop);
for (const io of IO_VARIANTS) {
  Deno.test(
    `block device (${io.name}): DISCARD is BLKDISCARD (the loop device frees its file's blocks), WRITE_ZEROES zeros`,
    {
      ignore: io.skip.ignore || space.ignore || loopSkip.ignore,
    },
    async () => {
      using dir = new TempDir();
      const file = dir.file("disk.img", pattern(MiB, 11));
      using loop = new LoopDevice(file);
      const backend = describeFile(loop.path, {
        aio: io.name === "io_uring" ? "io_uring" : "threads",
      });
      const h = await device(backend, DISCARD);
      try {
        const before = blocks(file);
        const discarded: Segment[] = [[256, 512]];
        assert.equal(await send(h, RequestType.DISCARD, discarded), OK);
        const zeroedRanges: Segment[] = [[8, 8], [1024, 64, RangeFlag.UNMAP]];
        assert.equal(await send(h, RequestType.WRITE_ZEROES, zeroedRanges), OK);
        await h.driver.flush();
        assert.ok(
          before - blocks(file) >= freedAtLeast(512),
          `the loop device's file: ${before} blocks, then ${blocks(file)}`,
        );
        const expected = zeroed(pattern(MiB, 11), [...discarded, ...zeroedRanges]);
        assert.deepEqual(await h.driver.read(0, MiB), expected);
      } finally {
        await h.close();
      }
    },
  );
}
