import assert from "node:assert/strict";
import type { DirectionResult, LoadResult } from "../../src/guest/jobs/load.ts";
import { runLoad } from "../../src/guest/jobs/load.ts";
import { LatencyHistogram } from "../../src/guest/jobs/latency.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import { planLoad } from "../../src/guest/jobs/load_plan.ts";
import { formatLoadReport, formatProgress, loadResultJson } from "../../src/guest/jobs/report.ts";
import { harness, MiB } from "../helpers/harness.ts";

const IDLE: DirectionResult = {
  ios: 0,
  bytes: 0,
  errors: 0,
  runtimeMs: 362,
  iops: 0,
  bandwidth: 0,
  latency: new LatencyHistogram().summary(),
};

/** 16384 writes of 4 KiB in 362 ms, with latencies chosen by hand. */
const WRITES: DirectionResult = {
  ios: 16384,
  bytes: 64 * MiB,
  errors: 0,
  runtimeMs: 362,
  iops: 16384 / 0.362,
  bandwidth: (64 * MiB) / 0.362,
  latency: {
    count: 16384,
    minNs: 5_000,
    maxNs: 3_400_000,
    meanNs: 650_100,
    stdevNs: 120_550,
    percentilesNs: { "50": 620_000, "90": 900_000, "99": 1_500_000, "99.9": 3_000_000 },
  },
};

function handMadeResult(): LoadResult {
  const options = parseLoadOptions({ rw: "randwrite", bs: "4k", iodepth: "32", verify: "crc32c" });
  const plan = planLoad(options, {
    capacity: 64 * MiB,
    logicalBlockSize: 512,
    readOnly: false,
    queueSize: 64,
    indirect: false,
  });
  return {
    plan,
    stoppedBy: "done",
    read: IDLE,
    write: WRITES,
    verify: {
      method: "crc32c",
      checked: 16384,
      mismatches: 1,
      unverifiedReads: 0,
      failures: [{
        phase: "verify",
        address: 0x25000,
        status: 3,
        reason: "address mismatch (misdirected write)",
        foundAddress: 0x5000,
        foundGeneration: 1,
        expectedGeneration: 1,
      }],
      phase: { ...WRITES, runtimeMs: 100, iops: 163840, bandwidth: (64 * MiB) / 0.1 },
    },
    errorCount: 0,
    errors: [],
    flushed: false,
    notes: plan.notes,
  };
}

Deno.test("report: the human block reads like fio's", () => {
  assert.equal(
    formatLoadReport(handMadeResult(), "vda"),
    [
      "vda: rw=randwrite, bs=4KiB, iodepth=32 (21 in flight), region=64MiB@0, seed=1, verify=crc32c",
      "  write: IOPS=45.3k, BW=177MiB/s (185MB/s)(64MiB/362msec)",
      "    lat (usec): min=5, max=3400, avg=650.10, stdev=120.55",
      "    lat percentiles (usec): 50.00th=[  620], 90.00th=[  900], 99.00th=[ 1500], 99.90th=[ 3000]",
      "  verify read: IOPS=164k, BW=640MiB/s (671MB/s)(64MiB/100msec)",
      "    lat (usec): min=5, max=3400, avg=650.10, stdev=120.55",
      "    lat percentiles (usec): 50.00th=[  620], 90.00th=[  900], 99.00th=[ 1500], 99.90th=[ 3000]",
      "  verify: 16384 blocks checked, 1 mismatches",
      "    mismatch at 0x25000 (byte 151552, verify): address mismatch (misdirected write); " +
      "header says address 0x5000",
      "  note: iodepth 32 limited to 21: the ring has 64 descriptors and each request takes 3",
    ].join("\n"),
  );
});

Deno.test("report: the JSON form has fio's per-direction fields", () => {
  const json = loadResultJson(handMadeResult(), "vda");
  assert.equal(json.jobname, "vda");
  const write = json.write as Record<string, unknown>;
  assert.deepEqual(
    [write.io_bytes, write.total_ios, write.runtime, write.bw_bytes, write.errors],
    [64 * MiB, 16384, 362, Math.round((64 * MiB) / 0.362), 0],
  );
  assert.deepEqual((write.lat_ns as Record<string, unknown>).percentile, {
    "50.000000": 620_000,
    "90.000000": 900_000,
    "99.000000": 1_500_000,
    "99.900000": 3_000_000,
  });
  const verify = json.verify as Record<string, unknown>;
  assert.equal(verify.mismatches, 1);
  assert.deepEqual((verify.failures as Record<string, unknown>[])[0].found_address, 0x5000);
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json);
});

Deno.test("report: a real run's report and JSON agree with its result", async () => {
  const h = harness({ diskBytes: MiB });
  const result = runLoad(
    h,
    parseLoadOptions({ rw: "randrw", bs: "4k", iodepth: "4", verify: "crc32c" }),
  );
  const lines = formatLoadReport(result, "vda").split("\n");
  assert.match(lines[0], /^vda: rw=randrw, rwmixread=50, bs=4KiB, iodepth=4, region=1MiB@0/);
  assert.match(lines[1], /^ {2}read: IOPS=\S+, BW=\S+ \(\S+\)\(\S+\/\d+msec\)$/);
  assert.match(
    lines[3],
    /^ {4}lat percentiles \((nsec|usec|msec)\): 50\.00th=\[ *\d+\], 90\.00th=/,
  );
  assert.match(lines[4], /^ {2}write: IOPS=/);
  const verify = `  verify: ${result.verify!.checked} blocks checked, 0 mismatches, ` +
    `${result.verify!.unverifiedReads} reads of blocks not yet written (not checked)`;
  assert.ok(lines.includes(verify), lines.join("\n"));
  const json = loadResultJson(result);
  assert.equal((json.read as Record<string, unknown>).total_ios, result.read.ios);
  assert.equal((json.write as Record<string, unknown>).total_ios, result.write.ios);
  await h.close();
});

Deno.test("report: failed requests are listed with their address and status", async () => {
  const h = harness({ diskBytes: MiB, readOnly: true });
  const result = runLoad(h, parseLoadOptions({ rw: "write", bs: "4k" }));
  const lines = formatLoadReport(result, "vdb").split("\n");
  assert.match(lines[1], /^ {2}write: IOPS=0, .*, errors=1$/);
  assert.deepEqual(lines.slice(-4), [
    "  errors: 1 failed request",
    "    write at 0x0: status 1 (IOERR)",
    "  stopped at the first failed request (--continue_on_error goes on)",
    "  note: the disk is read-only: its writes will fail",
  ]);
  await h.close();
});

Deno.test("report: one progress line", () => {
  assert.equal(
    formatProgress({
      phase: "run",
      elapsedMs: 2000,
      fraction: 0.456,
      read: { ios: 24_600, bytes: 96 * MiB },
      write: { ios: 0, bytes: 0 },
      errors: 0,
      mismatches: 2,
    }),
    "[run 45%] read 12.3k IOPS 48MiB/s, write 0 IOPS 0B/s, 2.0s, 2 mismatches",
  );
});
