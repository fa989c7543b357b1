/**
 * The fio-like load on a real device and driver in one thread (RAM disk):
 * what it writes is checked byte for byte from the host side, damage done
 * behind its back is reported with the block's address, and failures of
 * the device are results.
 */

import assert from "node:assert/strict";
import { type LoadProgress, type LoadResult, runLoad } from "../../src/guest/jobs/load.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import {
  checkBlock,
  expectedBlock,
  headerGeneration,
  VerifyHeader,
  VerifyStatus,
} from "../../src/guest/jobs/verify.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import type { Buffers, CompletionHandler } from "../../src/guest/virtio_blk_driver.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { type Harness, harness, MiB } from "../helpers/harness.ts";

function load(h: Harness, values: Record<string, unknown>, hooks = {}): LoadResult {
  return runLoad(h, parseLoadOptions(values), hooks);
}

/** Every block of `[offset, offset + size)` holds exactly what a one-pass verified write with `seed` wrote. */
function assertWrittenOnce(
  medium: Uint8Array,
  offset: number,
  size: number,
  bs: number,
  seed: number,
) {
  for (let address = offset; address < offset + size; address += bs) {
    const actual = medium.subarray(address, address + bs);
    const expected = expectedBlock(address, seed, 1, bs);
    if (!actual.every((byte, i) => byte === expected[i])) {
      assert.fail(`block at ${address} does not hold what the load wrote there`);
    }
  }
}

function assertZero(medium: Uint8Array, from: number, to: number): void {
  const first = medium.subarray(from, to).findIndex((byte) => byte !== 0);
  assert.equal(first, -1, `byte ${from + first} was changed`);
}

const DEPTHS: [number, boolean][] = [[1, false], [4, false], [16, false], [21, false], [64, true]];

for (const rw of ["write", "randwrite"]) {
  for (const [iodepth, indirect] of DEPTHS) {
    Deno.test(`load: verified ${rw} at iodepth ${iodepth}${indirect ? " (indirect)" : ""} leaves exactly its blocks on the disk`, async () => {
      const h = harness({ diskBytes: 2 * MiB, driver: { indirect } });
      const free = h.allocator.available;
      const result = load(h, {
        rw,
        bs: "4k",
        iodepth: String(iodepth),
        verify: "crc32c",
        seed: "7",
      });
      assert.equal(result.stoppedBy, "done");
      assert.equal(result.plan.depth, iodepth);
      assert.equal(result.write.ios, 512);
      assert.equal(result.write.bytes, 2 * MiB);
      assert.equal(result.errorCount, 0);
      assert.equal(result.verify?.checked, 512);
      assert.equal(result.verify?.mismatches, 0);
      assert.equal(result.verify?.phase?.ios, 512);
      assert.equal(result.read.ios, 0);
      assertWrittenOnce(h.medium, 0, 2 * MiB, 4096, 7);
      assert.equal(h.allocator.available, free, "the load gave its buffers back");
      await h.close();
    });
  }
}

Deno.test("load: block sizes from one sector to 256 KiB, inside an offset/size window", async () => {
  for (const bs of [512, 8192, 256 * 1024]) {
    const h = harness({ diskBytes: 4 * MiB });
    const result = load(h, {
      rw: "randwrite",
      bs: String(bs),
      iodepth: "8",
      offset: "1M",
      size: "2M",
      verify: "crc32c",
    });
    assert.equal(result.verify?.mismatches, 0, `bs ${bs}`);
    assert.equal(result.write.ios, (2 * MiB) / bs);
    assertWrittenOnce(h.medium, MiB, 2 * MiB, bs, 1);
    assertZero(h.medium, 0, MiB);
    assertZero(h.medium, 3 * MiB, 4 * MiB);
    await h.close();
  }
});

Deno.test("load: a disk with 4 KiB logical blocks takes whole blocks", async () => {
  const h = harness({ diskBytes: 2 * MiB, device: { logicalBlockSize: 4096 } });
  assert.throws(
    () => load(h, { bs: "512" }),
    (e) => e instanceof VirtioBlkError && /logical block size 4096/.test(e.message),
  );
  const result = load(h, { rw: "randwrite", bs: "16k", iodepth: "8", verify: "crc32c" });
  assert.equal(result.verify?.mismatches, 0);
  assertWrittenOnce(h.medium, 0, 2 * MiB, 16384, 1);
  await h.close();
});

Deno.test("load: a block damaged before the verify pass is reported with its address", async () => {
  const h = harness({ diskBytes: MiB });
  const corrupt = 37 * 4096;
  const misplaced = 100 * 4096;
  let damaged = false;
  const onProgress = (p: LoadProgress) => {
    if (p.phase !== "verify" || damaged) return;
    damaged = true;
    h.medium[corrupt + 1000] ^= 0x01; // one bit of payload
    h.medium.copyWithin(misplaced, 5 * 4096, 6 * 4096); // block 5's data where block 100 belongs
  };
  const result = load(h, { rw: "randwrite", bs: "4k", iodepth: "8", verify: "crc32c" }, {
    onProgress,
  });
  assert.ok(damaged);
  assert.equal(result.verify?.checked, 256);
  assert.equal(result.verify?.mismatches, 2);
  const failures = result.verify!.failures.map((
    f,
  ) => [f.phase, f.address, f.status, f.foundAddress]);
  assert.deepEqual(failures, [
    ["verify", corrupt, VerifyStatus.BAD_CRC, corrupt],
    ["verify", misplaced, VerifyStatus.BAD_ADDRESS, 5 * 4096],
  ]);
  await h.close();
});

Deno.test("load: a later read run checks what an earlier run wrote, and finds the damage", async () => {
  const h = harness({ diskBytes: MiB });
  load(h, { rw: "write", bs: "8k", iodepth: "4", verify: "crc32c", seed: "5" });
  h.medium[40 * 8192 + VerifyHeader.SIZE] ^= 0xff;

  const read = load(h, { rw: "randread", bs: "8k", iodepth: "16", verify: "crc32c", seed: "5" });
  assert.equal(read.read.ios, 128);
  assert.equal(read.verify?.checked, 128);
  assert.equal(read.verify?.mismatches, 1);
  assert.equal(read.verify?.failures[0].address, 40 * 8192);
  assert.equal(read.verify?.failures[0].phase, "run");
  assert.equal(read.verify?.phase, null); // nothing written: no verify pass

  const otherSeed = load(h, { rw: "read", bs: "8k", verify: "crc32c", seed: "6" });
  assert.equal(otherSeed.verify?.mismatches, 128);
  assert.equal(otherSeed.verify?.failures[0].status, VerifyStatus.BAD_SEED);
  const otherSize = load(h, { rw: "read", bs: "4k", verify: "crc32c", seed: "5" });
  assert.equal(otherSize.verify?.failures[0].status, VerifyStatus.BAD_BLOCK_SIZE);
  await h.close();
});

Deno.test("load: a mixed run checks reads of blocks it wrote and leaves unwritten blocks alone", async () => {
  const h = harness({ diskBytes: 2 * MiB });
  const result = load(h, {
    rw: "randrw",
    rwmixread: "40",
    bs: "4k",
    iodepth: "16",
    verify: "crc32c",
    seed: "11",
  });
  const { read, write, verify } = result;
  assert.equal(read.ios + write.ios, 512, "one pass visits each block once");
  assert.ok(read.ios > 150 && read.ios < 260, `${read.ios} reads of 512 at 40 %`);
  // Each block was visited once: read (never written, still zero) or written once.
  assert.equal(verify?.unverifiedReads, read.ios);
  assert.equal(verify?.phase?.ios, write.ios);
  assert.equal(verify?.mismatches, 0);
  let written = 0;
  for (let address = 0; address < 2 * MiB; address += 4096) {
    const block = h.medium.subarray(address, address + 4096);
    if (block.every((byte) => byte === 0)) continue;
    written++;
    assert.deepEqual(block, expectedBlock(address, 11, 1, 4096), `block at ${address}`);
  }
  assert.equal(written, write.ios);
  await h.close();
});

Deno.test("load: time based over a small region rewrites blocks with new generations, all consistent", async () => {
  const h = harness({ diskBytes: MiB });
  const result = load(h, {
    rw: "randrw",
    bs: "4k",
    // 15 blocks, 8 in flight: batches straddle passes, so a block comes round while busy.
    size: "60k",
    iodepth: "8",
    runtime: "300ms",
    time_based: true,
    verify: "crc32c",
  });
  assert.equal(result.stoppedBy, "runtime");
  assert.ok(result.write.ios > 15 * 3, `${result.write.ios} writes`);
  assert.equal(result.verify?.mismatches, 0);
  assert.ok(
    result.verify!.checked > result.read.ios - 16,
    "reads after the first writes are checked",
  );
  const view = new DataView(h.medium.buffer);
  const generations = new Set<number>();
  for (let address = 0; address < 60 * 1024; address += 4096) {
    assert.equal(checkBlock(h.medium, view, address, 4096, address, 1, 0), VerifyStatus.OK);
    generations.add(headerGeneration(view, address));
  }
  assert.ok([...generations].some((g) => g > 1), `generations ${[...generations]}`);
  assertZero(h.medium, 60 * 1024, MiB);
  await h.close();
});

Deno.test("load: with completions from worker threads, out of order, it sleeps in waitSync and verifies all", async () => {
  const h = harness({ diskBytes: 2 * MiB, device: { engine: workerEngine({ workers: 4 }) } });
  await h.disk.device.ready();
  const result = load(h, { rw: "randwrite", bs: "4k", iodepth: "16", verify: "crc32c", seed: "3" });
  assert.equal(result.verify?.mismatches, 0);
  assert.equal(result.verify?.checked, 512);
  assertWrittenOnce(h.medium, 0, 2 * MiB, 4096, 3);
  await h.close();
});

Deno.test("load: time based randrw over 15 blocks stays consistent with out-of-order completions", async () => {
  const h = harness({ diskBytes: MiB, device: { engine: workerEngine({ workers: 4 }) } });
  await h.disk.device.ready();
  const result = load(h, {
    rw: "randrw",
    bs: "4k",
    size: "60k",
    iodepth: "8",
    runtime: "400ms",
    time_based: true,
    verify: "crc32c",
  });
  assert.equal(result.errorCount, 0);
  assert.equal(result.verify?.mismatches, 0, JSON.stringify(result.verify?.failures[0]));
  assert.ok(result.write.ios > 15 * 3, `${result.write.ios} writes`);
  const view = new DataView(h.medium.buffer);
  for (let address = 0; address < 60 * 1024; address += 4096) {
    assert.equal(checkBlock(h.medium, view, address, 4096, address, 1, 0), VerifyStatus.OK);
  }
  await h.close();
});

/**
 * The harness with its real driver seen through a recorder: every request
 * still goes to the real driver and device; the recorder notes which
 * sectors are in flight between submit and completion.
 */
function recordingInFlight(h: Harness): { target: Harness; overlaps: () => number } {
  const inFlight = new Map<number, number>(); // token -> sector
  let overlaps = 0;
  const driver = h.driver;
  const spy = new Proxy(driver, {
    get(target, property) {
      if (property === "submit") {
        return (type: number, sector: number, buffers: Buffers) => {
          if ([...inFlight.values()].includes(sector)) overlaps++;
          const token = target.submit(type, sector, buffers);
          if (token >= 0) inFlight.set(token, sector);
          return token;
        };
      }
      if (property === "reap") {
        return (handler: CompletionHandler) =>
          target.reap((token, status, length) => {
            inFlight.delete(token);
            handler(token, status, length);
          });
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { target: { ...h, driver: spy }, overlaps: () => overlaps };
}

Deno.test("load: with verification a block is never in flight twice, even when passes wrap around", async () => {
  const h = harness({ diskBytes: MiB });
  const { target, overlaps } = recordingInFlight(h);
  const options = {
    rw: "randrw",
    bs: "4k",
    size: "60k", // 15 blocks, 8 in flight: batches straddle passes
    iodepth: "8",
    runtime: "200ms",
    time_based: true,
  };
  const verified = runLoad(target, parseLoadOptions({ ...options, verify: "crc32c" }));
  assert.ok(verified.read.ios + verified.write.ios > 15 * 10);
  assert.equal(overlaps(), 0);
  // Without verification nothing depends on it, and fio-like it does not wait.
  runLoad(target, parseLoadOptions(options));
  assert.ok(overlaps() > 0, "the recorder sees overlaps when they happen");
  await h.close();
});

Deno.test("load: writes to a read-only disk fail with IOERR and change nothing", async () => {
  const h = harness({ diskBytes: MiB, readOnly: true });
  const first = load(h, { rw: "write", bs: "4k", iodepth: "4", verify: "crc32c" });
  assert.equal(first.stoppedBy, "error");
  assert.deepEqual(first.errors[0], { direction: "write", address: 0, status: 1 });
  assert.ok(first.errorCount >= 1 && first.errorCount <= 4, "stops after what was in flight");
  assert.equal(first.write.ios, 0);
  assert.equal(first.verify?.phase, null);

  const all = load(h, { rw: "randwrite", bs: "4k", iodepth: "4", continue_on_error: true });
  assert.equal(all.stoppedBy, "done");
  assert.equal(all.errorCount, 256);
  assert.equal(all.write.errors, 256);
  assert.equal(all.write.latency.count, 256, "failed requests have latencies too");
  assertZero(h.medium, 0, MiB);

  assert.equal(load(h, { rw: "read", bs: "4k" }).read.ios, 256);
  await h.close();
});

Deno.test("load: an abort stops submitting, drains what is in flight and skips the verify pass", async () => {
  const h = harness({ diskBytes: 4 * MiB });
  let polls = 0;
  const signal = {
    get aborted() {
      return ++polls > 20;
    },
  };
  const free = h.allocator.available;
  const result = load(h, { rw: "randwrite", bs: "4k", iodepth: "8", verify: "crc32c" }, { signal });
  assert.equal(result.stoppedBy, "aborted");
  assert.ok(result.write.ios > 0 && result.write.ios < 1024, `${result.write.ios} writes`);
  assert.equal(result.verify?.phase, null);
  assert.equal(h.driver.outstanding, 0);
  assert.equal(h.allocator.available, free);
  await h.close();
});

Deno.test("load: ramp_time runs the load first and counts only the run after it; verification spans both", async () => {
  const h = harness({ diskBytes: MiB });
  let submitted = 0;
  const submit = h.driver.submit.bind(h.driver);
  h.driver.submit = (...args: Parameters<typeof submit>) => {
    submitted++;
    return submit(...args);
  };
  const seen: LoadProgress[] = [];
  const result = load(
    h,
    {
      rw: "randwrite",
      bs: "4k",
      size: "60k",
      iodepth: "4",
      ramp_time: "200ms",
      runtime: "100ms",
      time_based: true,
      verify: "crc32c",
    },
    { onProgress: (p: LoadProgress) => seen.push(p), progressIntervalMs: 0 },
  );
  assert.equal(result.stoppedBy, "runtime");
  // The ramp reports no progress: the first snapshot is the run's start, at zero.
  assert.deepEqual([...new Set(seen.map((p) => p.phase))], ["run", "verify"]);
  assert.deepEqual(seen[0].write, { ios: 0, bytes: 0 });
  assert.deepEqual(seen[0].latency, { count: 0, totalNs: 0 });
  // The run's figures are its own: its wall time, not the ramp's too, and fewer
  // requests than were sent (the ramp's are not counted).
  assert.ok(
    result.write.runtimeMs >= 100 && result.write.runtimeMs < 300,
    `${result.write.runtimeMs}`,
  );
  assert.equal(result.write.latency.count, result.write.ios);
  const verified = result.verify!.phase!.ios;
  assert.ok(
    submitted > result.write.ios + verified + 15,
    `${submitted} sent, ${result.write.ios} counted`,
  );
  // Blocks the ramp wrote and the run rewrote check out: one state for both phases.
  assert.equal(verified, 15);
  assert.equal(result.verify?.mismatches, 0);
  assert.equal(result.errorCount, 0);
  await h.close();
});

Deno.test("load: progress reports each phase from start to end, and end_fsync flushes", async () => {
  const h = harness({ diskBytes: MiB });
  const seen: LoadProgress[] = [];
  const result = load(
    h,
    { rw: "write", bs: "4k", iodepth: "4", verify: "crc32c", end_fsync: true },
    {
      onProgress: (p: LoadProgress) => seen.push(p),
      progressIntervalMs: 0,
    },
  );
  assert.equal(result.flushed, true);
  const phases = seen.map((p) => p.phase);
  assert.equal(phases[0], "run");
  assert.equal(phases.at(-1), "verify");
  assert.deepEqual([...new Set(phases)], ["run", "verify"]);
  for (const phase of ["run", "verify"]) {
    const fractions = seen.filter((p) => p.phase === phase).map((p) => p.fraction);
    assert.equal(fractions[0], 0);
    assert.equal(fractions.at(-1), 1);
    assert.ok(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]), `${phase} goes back`);
  }
  assert.equal(seen.at(-1)!.read.ios, 256);
  // Each phase's snapshots count its completions and add up their latencies.
  const lastRun = seen.filter((p) => p.phase === "run").at(-1)!;
  assert.equal(lastRun.latency.count, result.write.latency.count);
  assert.equal(lastRun.latency.count, 256);
  assert.ok(lastRun.latency.totalNs >= result.write.latency.meanNs * 256 * 0.99);
  assert.equal(seen.at(-1)!.latency.count, 256);
  assert.deepEqual(seen[0].latency, { count: 0, totalNs: 0 });
  await h.close();
});

Deno.test("load: more buffers than guest memory holds is a clear error", async () => {
  const h = harness({ diskBytes: 64 * MiB, memoryBytes: 4 * MiB, driver: { indirect: true } });
  assert.throws(
    () => load(h, { bs: "256k", iodepth: "32" }),
    (e) =>
      e instanceof VirtioBlkError && e.code === "INVALID_CONFIG" &&
      /iodepth 32 × bs 262144 = 8388608 bytes of buffers do not fit in guest memory/.test(
        e.message,
      ),
  );
  await h.close();
});

Deno.test("load: in 4 GiB of guest memory (the most -m takes), with the ring and buffers in its last pages", async () => {
  // A shared WebAssembly memory holds at most 2^32 bytes; a view of it whose
  // length is computed with 32-bit arithmetic (2^32 >>> 1 === 0) is empty.
  const memoryBytes = 4 * 1024 * MiB;
  const h = harness({ memoryBytes, ramStart: memoryBytes - 4 * MiB, diskBytes: MiB });
  assert.equal(h.memory.size, memoryBytes);
  const free = h.allocator.available;
  const result = load(h, { rw: "randwrite", bs: "4k", iodepth: "8", verify: "crc32c" });
  assert.equal(result.write.ios, 256);
  assert.equal(result.verify?.checked, 256);
  assertWrittenOnce(h.medium, 0, MiB, 4096, 1);
  assert.equal(h.allocator.available, free);
  await h.close();
});
