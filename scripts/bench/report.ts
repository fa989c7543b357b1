/**
 * The whole report around the table: what ran where (machine, file,
 * rounds), the table, how to read it, how busy the shared machine was, and
 * resident memory — as terminal text or as the markdown page
 * `docs/bench/results.md` the README links to.
 *
 * @module
 */

import { machineLine } from "./machine.ts";
import { spread } from "./measurement.ts";
import type { BenchResults, MemoryProbe } from "./results.ts";
import { renderMarkdownTable, renderTextTable } from "./table.ts";

const MIB = 2 ** 20;

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/** Which code ran: `Code: commit 0123abcd4567 (with local changes to src/x.ts)`. */
export function sourceLine(results: BenchResults): string {
  const source = results.source;
  if (source === null || source === undefined) return "Code: not a git checkout";
  const changes = source.modified.length === 0
    ? ""
    : ` with uncommitted changes to ${source.modified.join(", ")}`;
  return `Code: commit ${source.commit}${changes}`;
}

/** Lines about what ran, before the table. */
export function headerLines(results: BenchResults): string[] {
  const { machine, file, settings } = results;
  const variants = settings.variants.map((v) => v === "" ? "defaults" : v).join("; ");
  return [
    `Machine: ${machineLine(machine)}`,
    `Date: ${machine.date}; load average ${machine.loadAverage.join(" ")} before, ` +
    `${results.loadAverageAfter.join(" ")} after; the run took ${
      Math.round(results.durationSeconds)
    } s`,
    sourceLine(results),
    `File: ${file.path}, ${file.size / MIB} MiB on ${file.fileSystem.type} ` +
    `(${file.fileSystem.device}), page cache warmed`,
    `Each subject ran ${settings.rounds} round(s) of ${settings.seconds} s per case, taking turns` +
    ((settings.ramp ?? 0) > 0
      ? ` (the device's guest ran the load ${settings.ramp} s unmeasured before each, fio's ramp_time)`
      : "") +
    `; cells are median [min–max]. Device options: ${variants}.`,
  ];
}

/** How to read the table. */
export const TABLE_NOTES: readonly string[] = [
  "device: the full path (guest driver in a vCPU Worker → avail ring → notify → request pool → " +
  "blockif workers → file → used ring → interrupt), measured by the guest's fio-like load job.",
  "raw N threads: the same runtime reading/writing the file directly with node:fs positional " +
  "calls (plus fdatasync per write in write-through) from N Workers into a SharedArrayBuffer, " +
  "one request per thread (queue depth = threads); 4 KiB latencies are sampled 1 in 8.",
  "fio N jobs: fio --ioengine=psync --invalidate=0 --numjobs=N (O_DSYNC in write-through), the C " +
  "reference.",
  "* best of its kind by median IOPS. ×best raw, ×best fio: device median IOPS / that one's. " +
  "×same raw: against the raw baseline with as many threads as the device can keep busy " +
  "(min(workers, QD)). +p50 µs: device median p50 minus that baseline's.",
  "CPU s/M req: CPU seconds per million requests — the whole process (guest, device model, " +
  "workers) for device and raw rows, fio's own accounting for fio rows.",
];

/** How busy other processes kept the machine during the measurements. */
export function noiseLine(results: BenchResults): string {
  const all = [
    ...results.cases.flatMap((c) => c.subjects.flatMap((s) => s.rounds)),
    ...(results.sweep?.series.flatMap((s) => s.points.flatMap((p) => p.rounds)) ?? []),
  ].map((m) => m.othersBusyPercent);
  if (all.length === 0) return "Noise: nothing was measured.";
  const s = spread(all);
  return `Noise: other processes used ${s.median.toFixed(0)} % of the machine's CPU time ` +
    `during a median measurement (quartiles ${s.q1.toFixed(0)}–${s.q3.toFixed(0)} %, ` +
    `max ${s.max.toFixed(0)} %).`;
}

/** Resident memory lines, or none when it was not measured. */
export function memoryLines(memory: readonly MemoryProbe[] | null): string[] {
  if (memory === null || memory.length === 0) return [];
  const threads = (m: MemoryProbe) =>
    m.iothreads === undefined ? "8 threads each" : `${m.iothreads} shared I/O threads`;
  const lines = memory.map((m) =>
    `${m.disks} device${m.disks === 1 ? "" : "s"} (${threads(m)}): ${mib(m.idleBytes)} idle, ` +
    `${mib(m.loadedBytes)} after a short load on each (${mib(m.bareBytes)} before any device); ` +
    `idle afterwards ${m.idleCpuPercent.toFixed(1)} % of a core`
  );
  for (const iothreads of new Set(memory.map((m) => m.iothreads))) {
    const set = memory.filter((m) => m.iothreads === iothreads);
    const one = set.find((m) => m.disks === 1);
    const more = set.find((m) => m.disks > 1);
    if (one && more) {
      const per = (more.idleBytes - one.idleBytes) / (more.disks - 1);
      lines.push(`each further device (${threads(one)}) adds about ${mib(per)} idle`);
    }
  }
  return lines;
}

/** The report for the terminal. */
export function renderTextReport(results: BenchResults): string {
  const memory = memoryLines(results.memory);
  return [
    ...headerLines(results),
    "",
    renderTextTable(results),
    "",
    ...TABLE_NOTES.map((note) => `- ${note}`),
    noiseLine(results),
    ...(memory.length > 0
      ? ["Resident memory (VmRSS) and idle CPU:", ...memory.map((l) => `  ${l}`)]
      : []),
  ].join("\n");
}

/**
 * The markdown page: title, machine and date, the table, notes, noise,
 * memory, and the chart when `chartFile` (a path relative to the page) is given.
 */
export function renderMarkdownReport(results: BenchResults, chartFile?: string): string {
  const memory = memoryLines(results.memory);
  const sections = [
    "# Benchmark results",
    "",
    "Written by `deno task bench --chart --markdown --json docs/bench/results.json` " +
    "(scripts/bench/); run it again to update this page, the chart and the figures.",
    "",
    ...headerLines(results).map((line) => `- ${line}`),
    "",
    renderMarkdownTable(results),
    "",
    ...TABLE_NOTES.map((note) => `- ${note}`),
    `- ${noiseLine(results)}`,
  ];
  if (memory.length > 0) {
    sections.push(
      "",
      "## Resident memory (VmRSS) and idle CPU",
      "",
      ...memory.map((l) => `- ${l}`),
    );
  }
  if (chartFile !== undefined) {
    sections.push(
      "",
      "## IOPS against queue depth (4 KiB random read)",
      "",
      `![IOPS against queue depth](${chartFile})`,
    );
  }
  return sections.join("\n") + "\n";
}
