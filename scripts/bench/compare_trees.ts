/**
 * Two commits' devices, measured in one run: the benchmark of this checkout
 * and of another one (a `git worktree` of the commit to compare with, set
 * up with `npm install`) take turns, one round each, on one benchmark file,
 * so both see the same machine, file, page cache and background load. (One
 * file, not one per checkout: two files with the same bytes can differ
 * threefold in 4 KiB random-write speed on this ext4, so two files would
 * measure the files.) Each round is a new process with a new VM, and on
 * this 2-core machine where its threads land makes one process's figures a
 * draw from a two-humped distribution (randread QD32: ~150k or ~210k IOPS
 * for the very same tree): compare many rounds (default 10, an even number
 * so each tree runs first as often), and check the method with the same
 * checkout on both sides (`--base .`). Prints each round's figures, then
 * each case's median and best device
 * IOPS, p50 latency and CPU per request for both, and the ratio.
 *
 * By default each process measures each case once, on a VM it has just
 * started, so every figure includes the JIT's warm-up of all the device's
 * threads (with 8 workers sharing QD1's requests, each isolate tiers up
 * slowly: seconds of V8's background compilation). `--bench-rounds N` has
 * each process measure N times on the same VM, as `deno task bench` does
 * (3 by default there), and `--warmup K` leaves each process's first K of
 * them out of the figures: steady state.
 *
 * Both checkouts must measure alike. A benchmark that has `--ramp` (the
 * guest's unmeasured warm-up before each measurement) runs with `--ramp 0`
 * unless both have it; then `--ramp T` here is passed to both.
 *
 *     deno run -A scripts/bench/compare_trees.ts --base ../old-checkout [--head ../other]
 *       [--rounds 5] [--bench-rounds 3 --warmup 1] [--ramp 2]
 *       [--case randread-qd1 …] [--device workers=2 …] [--seconds 1] [--file PATH]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import type { BenchResults } from "./results.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    base: { type: "string" },
    head: { type: "string" },
    rounds: { type: "string" },
    "bench-rounds": { type: "string" },
    warmup: { type: "string" },
    seconds: { type: "string" },
    ramp: { type: "string" },
    case: { type: "string", multiple: true },
    device: { type: "string", multiple: true },
    file: { type: "string" },
  },
});
if (values.base === undefined) {
  console.error("compare_trees: --base <checkout of the commit to compare with> is required");
  Deno.exit(2);
}
const trees = {
  base: resolve(values.base),
  head: values.head === undefined
    ? new URL("../..", import.meta.url).pathname
    : resolve(values.head),
};
const rounds = Number(values.rounds ?? 10);
const benchRounds = Number(values["bench-rounds"] ?? 1);
const warmup = Number(values.warmup ?? 0);
if (
  !(Number.isInteger(benchRounds) && Number.isInteger(warmup) && 0 <= warmup &&
    warmup < benchRounds)
) {
  console.error("compare_trees: --warmup K must be a whole number below --bench-rounds N");
  Deno.exit(2);
}
/** Whether `tree`'s benchmark takes `--ramp`. */
async function hasRamp(tree: string): Promise<boolean> {
  const options = await Deno.readTextFile(`${tree}/scripts/bench/options.ts`);
  return options.includes("--ramp T");
}
const ramps = { base: await hasRamp(trees.base), head: await hasRamp(trees.head) };
if (values.ramp !== undefined && !(ramps.base && ramps.head)) {
  console.error("compare_trees: --ramp needs both checkouts' benchmarks to have it");
  Deno.exit(2);
}
/** The benchmark file both checkouts use (created by the first run when missing). */
const file = resolve(values.file ?? `${trees.head}/tmp/bench/disk-1g.img`);

async function commitOf(tree: string): Promise<string> {
  const output = await new Deno.Command("git", {
    args: ["-C", tree, "rev-parse", "--short", "HEAD"],
  })
    .output();
  return new TextDecoder().decode(output.stdout).trim();
}

/** One round of the benchmark in `tree`; its results. */
async function measure(which: keyof typeof trees): Promise<BenchResults> {
  const tree = trees[which];
  const json = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const args = [
      "run",
      "-A",
      `${tree}/scripts/bench/main.ts`,
      "--rounds",
      String(benchRounds),
      "--no-baseline",
      "--no-fio",
      "--no-memory",
      "--json",
      json,
      "--file",
      file,
      ...(values.seconds ? ["--seconds", values.seconds] : []),
      ...(ramps[which] ? ["--ramp", values.ramp ?? "0"] : []),
      ...(values.case ?? []).flatMap((name) => ["--case", name]),
      ...(values.device ?? []).flatMap((options) => [`--device=${options}`]),
    ];
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: tree,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) throw new Error(`bench in ${tree} failed: ${new TextDecoder().decode(stderr)}`);
    return JSON.parse(await Deno.readTextFile(json));
  } finally {
    await Deno.remove(json);
  }
}

type Figures = Map<string, { iops: number[]; p50: number[]; cpu: number[] }>;

function collect(into: Figures, results: BenchResults): void {
  for (const { case: benchCase, subjects } of results.cases) {
    for (const subject of subjects) {
      if (subject.kind !== "device") continue;
      const key = `${benchCase.name} ${subject.label}`;
      const figures = into.get(key) ?? { iops: [], p50: [], cpu: [] };
      for (const round of subject.rounds.slice(warmup)) {
        figures.iops.push(round.iops);
        figures.p50.push(round.p50Us);
        figures.cpu.push(round.cpuSecondsPerMillion);
      }
      into.set(key, figures);
    }
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const base: Figures = new Map();
const head: Figures = new Map();
for (let round = 0; round < rounds; round++) {
  // Alternate which goes first, so neither always runs on a warmer machine.
  const order = round % 2 === 0 ? ["base", "head"] as const : ["head", "base"] as const;
  for (const which of order) {
    const results = await measure(which);
    collect(which === "base" ? base : head, results);
    for (const { case: benchCase, subjects } of results.cases) {
      for (const subject of subjects) {
        if (subject.kind !== "device") continue;
        const iops = subject.rounds.map((r) => r.iops.toFixed(0)).join(" ");
        const cpu = subject.rounds.map((r) => r.cpuSecondsPerMillion.toFixed(1)).join(" ");
        console.error(
          `  ${which} ${benchCase.name} ${subject.label}: ${iops} IOPS, ${cpu} CPU s/M`,
        );
      }
    }
  }
  console.error(`round ${round + 1}/${rounds} done`);
}

const [baseCommit, headCommit] = await Promise.all([commitOf(trees.base), commitOf(trees.head)]);
console.log(
  `base ${baseCommit} (${trees.base}) vs head ${headCommit}, ${rounds} rounds each ` +
    `(${benchRounds} measurements per process, the first ${warmup} left out; ` +
    `ramp ${ramps.base && ramps.head ? values.ramp ?? "0" : "0"} s): ` +
    "medians, and the best round of each",
);
console.log(
  "| case | base IOPS | head IOPS | head ÷ base | best: base | best: head | best ÷ best | " +
    "base p50 µs | head p50 µs | base CPU s/M | head CPU s/M |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const [key, b] of base) {
  const h = head.get(key);
  if (h === undefined) continue;
  const cells = [
    median(b.iops).toFixed(0),
    median(h.iops).toFixed(0),
    `${(median(h.iops) / median(b.iops)).toFixed(2)}×`,
    Math.max(...b.iops).toFixed(0),
    Math.max(...h.iops).toFixed(0),
    `${(Math.max(...h.iops) / Math.max(...b.iops)).toFixed(2)}×`,
    median(b.p50).toFixed(1),
    median(h.p50).toFixed(1),
    median(b.cpu).toFixed(1),
    median(h.cpu).toFixed(1),
  ];
  console.log(`| ${key} | ${cells.join(" | ")} |`);
}
