import assert from "node:assert/strict";
import type { DirectionResult, LoadResult } from "../../src/guest/jobs/load.ts";
import { runLoad } from "../../src/guest/jobs/load.ts";
import { LatencyHistogram } from "../../src/guest/jobs/latency.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import { planLoad } from "../../src/guest/jobs/load_plan.ts";
import {
  FIO_VERSION_FIELD,
  formatLoadReport,
  formatProgress,
  loadResultJson,
} from "../../src/guest/jobs/report.ts";
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

Deno.test("report: the JSON form is laid out like fio's --output-format=json", () => {
  const now = new Date(2026, 11, 6, 21, 51, 35, 302);
  const json = loadResultJson(handMadeResult(), "vda", now);
  assert.deepEqual(
    [json["fio version"], json.timestamp, json.timestamp_ms, json.time],
    [
      FIO_VERSION_FIELD,
      Math.floor(now.getTime() / 1000),
      now.getTime(),
      "Sun Dec  6 21:51:35 2026",
    ],
  );
  assert.equal(json.jobs.length, 1);
  const job = json.jobs[0];
  assert.deepEqual(
    [job.jobname, job.groupid, job.error, job.job_runtime],
    ["vda", 0, 0, 362],
  );
  assert.deepEqual(job["job options"], {
    name: "vda",
    rw: "randwrite",
    bs: "4096",
    iodepth: "32",
    offset: "0",
    size: String(64 * MiB),
    randseed: "1",
    verify: "crc32c",
  });
  const bwBytes = Math.round((64 * MiB) / 0.362);
  const latency = { min: 5_000, max: 3_400_000, mean: 650_100, stddev: 120_550, N: 16384 };
  const percentile = {
    "50.000000": 620_000,
    "90.000000": 900_000,
    "99.000000": 1_500_000,
    "99.900000": 3_000_000,
  };
  assert.deepEqual(job.write, {
    io_bytes: 64 * MiB,
    io_kbytes: 65536,
    bw_bytes: bwBytes,
    bw: Math.floor(bwBytes / 1024),
    iops: 16384 / 0.362,
    runtime: 362,
    total_ios: 16384,
    short_ios: 0,
    drop_ios: 0,
    slat_ns: { min: 0, max: 0, mean: 0, stddev: 0, N: 0 },
    clat_ns: { ...latency, percentile },
    lat_ns: { ...latency, percentile },
    errors: 0,
  });
  const nothing = job.trim as Record<string, unknown>;
  assert.deepEqual([nothing.io_bytes, nothing.total_ios, nothing.iops], [0, 0, 0]);
  assert.equal((job.read as Record<string, unknown>).total_ios, 0);
  // Ours, under names fio does not use.
  assert.deepEqual([job.depth, job.stopped_by, job.flushed], [21, "done", false]);
  assert.deepEqual(job.region, { offset: 0, size: 64 * MiB, blocks: 16384 });
  const verify = job.verify as Record<string, unknown>;
  assert.equal(verify.mismatches, 1);
  assert.deepEqual((verify.failures as Record<string, unknown>[])[0].found_address, 0x5000);
  assert.equal((verify.read as Record<string, unknown>).runtime, 100);
  assert.deepEqual(job.errors, { count: 0, first: [] });
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json);
});

Deno.test("report: a load that stopped at a failed request says so in fio's error (errno)", async () => {
  const h = harness({ diskBytes: MiB, readOnly: true });
  const result = runLoad(h, parseLoadOptions({ rw: "write", bs: "4k" }));
  assert.equal(result.stoppedBy, "error");
  const [job] = loadResultJson(result, "vdb").jobs;
  assert.equal(job.error, 5, "EIO");
  assert.equal((job.write as Record<string, unknown>).errors, 1);
  await h.close();
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
  const [job] = loadResultJson(result).jobs;
  assert.equal((job.read as Record<string, unknown>).total_ios, result.read.ios);
  assert.equal((job.write as Record<string, unknown>).total_ios, result.write.ios);
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
      latency: { count: 24_600, totalNs: 24_600 * 650_000 },
    }),
    "[run 45%] read 12.3k IOPS 48MiB/s, write 0 IOPS 0B/s, 2.0s, 2 mismatches",
  );
});
