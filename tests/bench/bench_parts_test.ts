/**
 * The benchmark's pure parts: statistics over rounds, mergeable latency
 * counts, which baselines a case gets, fio's command line, and the command
 * line of `deno task bench`.
 */

import assert from "node:assert/strict";
import { VirtioBlkError } from "../../src/errors.ts";
import { CASES, randomReadAt } from "../../scripts/bench/cases.ts";
import { deviceVariant } from "../../scripts/bench/device.ts";
import { fioArguments } from "../../scripts/bench/fio.ts";
import { LatencyCounts } from "../../scripts/bench/latency_counts.ts";
import { measurementOf, spread } from "../../scripts/bench/measurement.ts";
import { DEFAULT_SWEEP_DEPTHS, parseBenchArgs } from "../../scripts/bench/options.ts";
import { DEFAULT_BENCH_OPTIONS, threadCounts } from "../../scripts/bench/runner.ts";
import { significant, spreadCell } from "../../scripts/bench/table.ts";

const byName = (name: string) => CASES.find((c) => c.name === name)!;

Deno.test("spread: median, extremes and interpolated quartiles of the rounds", () => {
  assert.deepEqual(spread([3, 1, 2, 10]), {
    median: 2.5,
    min: 1,
    max: 10,
    q1: 1.75,
    q3: 4.75,
    n: 4,
  });
  assert.deepEqual(spread([7]), { median: 7, min: 7, max: 7, q1: 7, q3: 7, n: 1 });
  assert.throws(() => spread([]), RangeError);
});

Deno.test("a measurement's rates, CPU per million requests and the others' share of the machine", () => {
  const m = measurementOf({
    ios: 500_000,
    bytes: 500_000 * 4096,
    errors: 0,
    seconds: 2,
    p50Ns: 1500,
    p99Ns: 9000,
    cpuSeconds: 1.5,
    machineBusySeconds: 2.5,
    cores: 2,
  });
  assert.equal(m.iops, 250_000);
  assert.equal(m.bytesPerSecond, 250_000 * 4096);
  assert.equal(m.p50Us, 1.5);
  assert.equal(m.p99Us, 9);
  assert.equal(m.cpuSecondsPerMillion, 3);
  // 1 CPU second of others over 2 cores × 2 s.
  assert.equal(m.othersBusyPercent, 25);
});

Deno.test("latency counts from several threads merge into one distribution", () => {
  const a = new LatencyCounts();
  const b = new LatencyCounts();
  for (let i = 0; i < 90; i++) a.record(1000);
  for (let i = 0; i < 10; i++) b.record(100_000);
  const merged = new LatencyCounts(new Float64Array(a.counts));
  merged.add(b);
  assert.equal(merged.total, 100);
  assert.ok(Math.abs(merged.percentile(50) - 1000) <= 1000 / 64);
  assert.ok(Math.abs(merged.percentile(99) - 100_000) <= 100_000 / 64);
  assert.equal(new LatencyCounts().percentile(50), 0);
  assert.throws(() => new LatencyCounts(new Float64Array(3)), RangeError);
});

Deno.test("baseline thread counts: one thread at QD1, else the configured ones and each device's, up to QD", () => {
  const eight = deviceVariant("");
  const two = deviceVariant("workers=2");
  const three = deviceVariant("workers=3,dispatch=device");
  assert.deepEqual(threadCounts(byName("randread-qd1"), [1, 2, 8], [eight]), [1]);
  assert.deepEqual(threadCounts(byName("randread-qd32"), [1, 2, 8], [eight]), [1, 2, 8]);
  assert.deepEqual(threadCounts(byName("read-1m-qd8"), [1, 2, 8], [eight, three]), [1, 2, 3, 8]);
  assert.deepEqual(threadCounts(randomReadAt(4), [1, 2, 8], [eight, two]), [1, 2, 4]);
});

Deno.test("device variants take engine options and refuse what each case sets", () => {
  assert.deepEqual(deviceVariant(""), {
    options: "",
    label: "device",
    workers: 8,
    hipri: false,
    nbd: false,
  });
  assert.deepEqual(deviceVariant("workers=2,dispatch=device"), {
    options: "workers=2,dispatch=device",
    label: "device workers=2,dispatch=device",
    workers: 2,
    hipri: false,
    nbd: false,
  });
  // hipri goes to the guest's load, not to the device's options.
  assert.deepEqual(deviceVariant("workers=2,hipri"), {
    options: "workers=2",
    label: "device workers=2,hipri",
    workers: 2,
    hipri: true,
    nbd: false,
  });
  // nbd puts the disk on qemu-nbd serving the same file; the device's options stay.
  assert.deepEqual(deviceVariant("nbd,workers=2"), {
    options: "workers=2",
    label: "device nbd,workers=2",
    workers: 2,
    hipri: false,
    nbd: true,
  });
  for (const bad of ["writeback", "ro", "pool_size=0", "turbo"]) {
    assert.throws(() => deviceVariant(bad), VirtioBlkError, bad);
  }
});

Deno.test("fio runs the case with psync on the same file, sequential cases in one slice per job", () => {
  const random = fioArguments("/d/f.img", 1 << 30, byName("randread-qd32"), 2, 1.5);
  assert.ok(random.includes("--ioengine=psync") && random.includes("--invalidate=0"));
  assert.ok(random.includes("--rw=randread") && random.includes("--bs=4096"));
  assert.ok(random.includes("--numjobs=2") && random.includes("--runtime=1500ms"));
  assert.ok(random.includes(`--size=${1 << 30}`));
  assert.ok(!random.some((a) => a.startsWith("--sync") || a.startsWith("--offset_increment")));

  const sequential = fioArguments("/d/f.img", 1 << 30, byName("write-1m-qd8"), 8, 1);
  assert.ok(sequential.includes(`--size=${1 << 27}`));
  assert.ok(sequential.includes(`--offset_increment=${1 << 27}`));

  assert.ok(
    fioArguments("/d/f.img", 1 << 30, byName("randwrite-qd1-wt"), 1, 1).includes("--sync=dsync"),
  );
  assert.ok(
    fioArguments("/d/a:b.img", 1 << 30, byName("randread-qd1"), 1, 1).includes(
      "--filename=/d/a\\:b.img",
    ),
  );
});

Deno.test("the command line: defaults, one case quickly, device variants, and bad values", () => {
  const defaults = parseBenchArgs([]);
  assert.deepEqual(defaults.options, DEFAULT_BENCH_OPTIONS);
  assert.equal(defaults.chart, false);

  const quick = parseBenchArgs(["--case", "randread-qd32", "--rounds", "3", "--seconds", "500ms"]);
  assert.deepEqual(quick.options.cases, ["randread-qd32"]);
  assert.equal(quick.options.rounds, 3);
  assert.equal(quick.options.seconds, 0.5);
  assert.equal(quick.options.memory, false, "a chosen case skips the memory probe");
  assert.equal(defaults.options.ramp, 2, "the device's guest warms up 2 s before each measurement");
  assert.equal(parseBenchArgs(["--ramp", "0"]).options.ramp, 0);
  assert.equal(parseBenchArgs(["--ramp", "500ms"]).options.ramp, 0.5);

  const compare = parseBenchArgs([
    "--device=workers=8",
    "--device=workers=2",
    "--threads",
    "8,2,2",
    "--no-fio",
    "--chart",
    "--size",
    "256M",
  ]);
  assert.deepEqual(compare.options.variants, ["workers=8", "workers=2"]);
  assert.deepEqual(compare.options.threads, [2, 8]);
  assert.equal(compare.options.fio, false);
  assert.equal(compare.options.size, 256 << 20);
  assert.deepEqual(compare.options.sweepDepths, DEFAULT_SWEEP_DEPTHS);

  for (
    const args of [
      ["--rounds", "0"],
      ["--seconds", "soon"],
      ["--ramp", "later"],
      ["--size", "big"],
      [
        "--threads",
        "1,x",
      ],
      ["--bogus"],
    ]
  ) {
    assert.throws(() => parseBenchArgs(args), VirtioBlkError, args.join(" "));
  }
});

Deno.test("table cells: three significant digits, and median [min–max] when there are rounds", () => {
  assert.deepEqual([0.1234, 9.876, 12.34, 123.4, 98765].map(significant), [
    "0.12",
    "9.88",
    "12.3",
    "123",
    "98765",
  ]);
  assert.equal(spreadCell(spread([1, 2, 3]), significant), "2.00 [1.00–3.00]");
  assert.equal(spreadCell(spread([2]), significant), "2.00");
});
