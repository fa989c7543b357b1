/**
 * The benchmark keeps working: every case runs through the device, the raw
 * baseline and fio (when installed) for a fraction of a second on a small
 * file, and the table, the JSON, the markdown page, the chart and the memory
 * probe come out whole. Nothing here looks at how fast anything was.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VirtioBlkError } from "../../src/errors.ts";
import { CASES } from "../../scripts/bench/cases.ts";
import { fioVersion } from "../../scripts/bench/fio.ts";
import { CHART_FILE, main, MARKDOWN_FILE } from "../../scripts/bench/main.ts";
import { renderTextReport } from "../../scripts/bench/report.ts";
import type { BenchResults } from "../../scripts/bench/results.ts";
import {
  type BenchOptions,
  DEFAULT_BENCH_OPTIONS,
  runBenchmark,
} from "../../scripts/bench/runner.ts";

const MIB = 1 << 20;

function tiny(dir: string, overrides: Partial<BenchOptions> = {}): BenchOptions {
  return {
    ...DEFAULT_BENCH_OPTIONS,
    file: join(dir, "bench.img"),
    size: 8 * MIB,
    seconds: 0.1,
    // A short ramp: the guest's unmeasured warm-up runs, and is not measured.
    ramp: 0.05,
    rounds: 1,
    threads: [1, 2],
    memory: false,
    memorySeconds: 0.05,
    ...overrides,
  };
}

Deno.test("every case runs through the device, the raw baseline and fio, and the report shows them all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fio = (await fioVersion()) !== null;
    const results = await runBenchmark(
      tiny(dir, { memory: true, sweepDepths: [1, 4] }),
    );

    assert.equal(statSync(join(dir, "bench.img")).size, 8 * MIB);
    assert.equal(results.file.created, true);
    assert.deepEqual(results.cases.map((c) => c.case.name), CASES.map((c) => c.name));
    for (const result of results.cases) {
      const { name, iodepth } = result.case;
      const kinds = result.subjects.map((s) => s.kind);
      assert.deepEqual(
        [...new Set(kinds)],
        fio ? ["device", "raw", "fio"] : ["device", "raw"],
        name,
      );
      for (const subject of result.subjects) {
        assert.equal(subject.rounds.length, 1, `${name} ${subject.id}`);
        assert.ok(subject.threads <= Math.max(iodepth, 8), `${name} ${subject.id}`);
        for (const m of subject.rounds) {
          assert.ok(m.ios > 0, `${name} ${subject.id} completed requests`);
          assert.equal(m.errors, 0, `${name} ${subject.id}`);
          assert.ok(m.p99Us >= m.p50Us && m.p50Us > 0, `${name} ${subject.id} latencies`);
          assert.ok(m.cpuSeconds > 0, `${name} ${subject.id} CPU time`);
        }
      }
      // QD1 has one baseline thread; deeper cases the configured counts and the device's 8.
      const rawThreads = result.subjects.filter((s) => s.kind === "raw").map((s) => s.threads);
      assert.deepEqual(rawThreads, iodepth === 1 ? [1] : [1, 2, 8].filter((t) => t <= iodepth));
      const [comparison] = result.comparisons;
      assert.equal(comparison.device, "device");
      assert.equal(comparison.sameRaw?.against, `raw-${Math.min(8, iodepth)}t`);
      assert.ok(comparison.bestRaw !== null && comparison.bestRaw.iops > 0);
      assert.equal(comparison.bestFio === null, !fio);
    }

    assert.deepEqual(results.sweep?.depths, [1, 4]);
    for (const series of results.sweep!.series) {
      assert.deepEqual(series.points.map((p) => p.iodepth), [1, 4], series.id);
    }
    // Each device with threads of its own, then every device on 2 shared I/O threads.
    assert.deepEqual(
      results.memory?.map((m) => [m.disks, m.iothreads]),
      [[1, undefined], [4, undefined], [1, 2], [4, 2]],
    );
    for (const m of results.memory!) {
      assert.ok(m.idleBytes > 0 && m.loadedBytes > 0 && m.idleCpuPercent >= 0);
    }

    const text = renderTextReport(results);
    for (const c of CASES) assert.match(text, new RegExp(`^${c.name} `, "m"));
    assert.match(text, /Resident memory/);
    assert.match(text, /Noise: /);
    assert.match(text, /^Code: (commit [0-9a-f]{12}|not a git checkout)/m);

    // The CLI renders saved results: JSON in, markdown page and chart out.
    const saved = join(dir, "results.json");
    writeFileSync(saved, JSON.stringify(results));
    const out = join(dir, "docs");
    assert.equal(await main(["--from-json", saved, "--markdown", "--chart", "--out-dir", out]), 0);
    const page = readFileSync(join(out, MARKDOWN_FILE), "utf8");
    assert.match(page, /^# Benchmark results/);
    assert.ok(page.includes(results.machine.cpuModel) && page.includes(results.machine.date));
    assert.ok(page.includes(`](${CHART_FILE})`));
    assert.match(page, /^\| randread-qd32 +\| device +\|/m);
    const svg = readFileSync(join(out, CHART_FILE), "utf8");
    assert.match(svg, /^<svg/);
    assert.ok(svg.includes("IOPS against queue depth"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an existing file of the right size is reused, and device variants are measured side by side", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const options = tiny(dir, {
      cases: ["randread-qd32"],
      variants: ["", "workers=2,dispatch=device"],
      fio: false,
      rounds: 2,
    });
    await runBenchmark({ ...options, baseline: false, variants: [""] });
    const results: BenchResults = await runBenchmark(options);
    assert.equal(results.file.created, false);
    const [result] = results.cases;
    for (const subject of result.subjects) assert.equal(subject.rounds.length, 2, subject.id);
    assert.match(renderTextReport(results), /^randread-qd32 +device +\S+ \[\S+–\S+\]/m);
    assert.deepEqual(
      result.subjects.map((s) => [s.id, s.threads]),
      [["device", 8], ["device workers=2,dispatch=device", 2], ["raw-1t", 1], ["raw-2t", 2], [
        "raw-8t",
        8,
      ]],
    );
    assert.deepEqual(
      result.comparisons.map((c) => [c.device, c.sameRaw?.against]),
      [["device", "raw-8t"], ["device workers=2,dispatch=device", "raw-2t"]],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad options are refused before any file is created or changed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "bench.img");
    const refuse = (options: Partial<BenchOptions>, message: RegExp) =>
      assert.rejects(runBenchmark(tiny(dir, options)), (error: unknown) => {
        assert.ok(error instanceof VirtioBlkError);
        assert.match(error.message, message);
        return true;
      });
    await refuse({ cases: ["randread-qd64"] }, /--case randread-qd64: no such case/);
    await refuse({ variants: ["writethru"] }, /writethru is set by each case/);
    await refuse({ variants: ["workers=0"] }, /workers "0" must be a whole number from 1/);
    await refuse({ rounds: 0 }, /rounds must be a positive whole number/);
    assert.equal(existsSync(file), false);

    writeFileSync(file, "not a benchmark file");
    await refuse({}, /exists with 20 bytes, not 8388608/);
    assert.equal(readFileSync(file, "utf8"), "not a benchmark file");

    assert.equal(await main(["--rounds", "none"]), 2);
    assert.equal(await main(["--case", "nope", "--file", join(dir, "other.img")]), 2);
    assert.equal(existsSync(join(dir, "other.img")), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
