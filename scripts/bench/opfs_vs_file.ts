/**
 * The OPFS backend's benchmark case: the same loads of the built-in guest
 * on an OPFS disk in headless Chromium (the browser build, its blockif
 * threads Web Workers) and on a file in Deno (the file driver, Worker
 * threads), side by side:
 *
 *     npm run bench:browser -- [--size=64M] [--runtime=5] [--iodepth=16]
 *
 * Each case: a fresh disk of `--size`, a sequential write to fill it, then
 * random 4 KiB reads and random 4 KiB writes for `--runtime` seconds each,
 * through the same load job (`src/guest/jobs/load.ts`). Needs Debian's
 * `chromium`. Prints one table: IOPS, bandwidth and mean and 99th
 * percentile latency per medium and load.
 *
 * @module
 */

/// <reference lib="dom" />

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { describeFile } from "../../file.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import type { DirectionResult } from "../../src/guest/jobs/load.ts";
import { runUos } from "../../src/guest/uos_run.ts";
import { buildBrowser, ROOT } from "../build_browser.ts";
import { startStaticServer } from "../serve/static_server.ts";
import { findCommand } from "../system_tools.ts";

/** What each case runs. */
export interface OpfsBenchOptions {
  /** The disk's size and the load's region (`64M`). */
  readonly size: string;
  /** Seconds per random load. */
  readonly runtime: number;
  readonly iodepth: number;
}

/** One medium under one load. */
export interface OpfsBenchRow {
  readonly medium: "OPFS (Chromium)" | "file (Deno)";
  readonly load: string;
  readonly result: DirectionResult;
}

/** The loads, as the load job's options (the fill first). */
function loads(options: OpfsBenchOptions): { name: string; values: Record<string, unknown> }[] {
  const common = { size: options.size, iodepth: String(options.iodepth) };
  const timed = { runtime: String(options.runtime), time_based: true };
  return [
    { name: "fill (write 1M)", values: { ...common, rw: "write", bs: "1M", iodepth: "4" } },
    { name: "randread 4k", values: { ...common, ...timed, rw: "randread", bs: "4k" } },
    { name: "randwrite 4k", values: { ...common, ...timed, rw: "randwrite", bs: "4k" } },
  ];
}

/** The direction a load measures. */
const measured = (values: Record<string, unknown>) =>
  String(values.rw).includes("read") ? "read" : "write";

/** Runs every load on a file in Deno. */
async function fileRows(options: OpfsBenchOptions, bytes: number): Promise<OpfsBenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "virtio-blk-opfs-bench-"));
  try {
    const path = join(dir, "disk.img");
    await Deno.writeFile(path, new Uint8Array(0));
    await Deno.truncate(path, bytes);
    const backend = await describeFile(path);
    const rows: OpfsBenchRow[] = [];
    for (const load of loads(options)) {
      const vm = await VirtualMachine.create({
        disks: [{ slot: 3, func: 0, device: { backend } }],
      });
      try {
        const result = await runUos(vm, {
          kind: "load",
          disk: "vda",
          options: parseLoadOptions(load.values),
          json: false,
          progress: false,
        });
        rows.push({
          medium: "file (Deno)",
          load: load.name,
          result: result.load![measured(load.values)],
        });
      } finally {
        await vm.close();
      }
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs every load on an OPFS disk in headless Chromium. */
async function opfsRows(options: OpfsBenchOptions, bytes: number): Promise<OpfsBenchRow[]> {
  const executablePath = findCommand("chromium");
  if (executablePath === undefined) {
    throw new Error("chromium is not installed (apt-get install chromium)");
  }
  const work = mkdtempSync(join(tmpdir(), "virtio-blk-opfs-bench-"));
  const dist = join(work, "dist") + "/";
  await buildBrowser(dist);
  const server = await startStaticServer({
    mounts: [{ prefix: "/", directory: `${ROOT}web` }, { prefix: "/dist/", directory: dist }],
  });
  const browser = await chromium.launch({
    executablePath,
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    const rows: OpfsBenchRow[] = [];
    await page.evaluate(async (bytes) => {
      const lib = await import("/dist/virtio-blk.js") as typeof import("../../browser.ts");
      await lib.createOpfsDisk("bench/disk.img", bytes);
    }, bytes);
    for (const load of loads(options)) {
      const result = await page.evaluate(async (values) => {
        const lib = await import("/dist/virtio-blk.js") as typeof import("../../browser.ts");
        const backend = await lib.describeOpfsFile("bench/disk.img");
        const vm = await lib.VirtualMachine.create({
          disks: [{ slot: 3, func: 0, device: { backend } }],
        });
        try {
          return (await lib.runUos(vm, {
            kind: "load",
            disk: "vda",
            options: lib.parseLoadOptions(values),
            json: false,
            progress: false,
          })).load!;
        } finally {
          await vm.close();
        }
      }, load.values);
      rows.push({
        medium: "OPFS (Chromium)",
        load: load.name,
        result: result[measured(load.values)],
      });
    }
    return rows;
  } finally {
    await browser.close();
    await server.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** Runs both media; the OPFS rows first. */
export async function runOpfsBench(options: OpfsBenchOptions): Promise<OpfsBenchRow[]> {
  const plan = parseLoadOptions({ size: options.size });
  if (plan.size === null || !("bytes" in plan.size)) {
    throw new Error(`--size=${options.size} must be a size, not a share`);
  }
  return [
    ...await opfsRows(options, plan.size.bytes),
    ...await fileRows(options, plan.size.bytes),
  ];
}

/** The rows as a plain table. */
export function formatOpfsBench(rows: readonly OpfsBenchRow[]): string {
  const table = [["medium", "load", "IOPS", "MiB/s", "mean lat", "p99 lat"]];
  for (const { medium, load, result } of rows) {
    table.push([
      medium,
      load,
      result.iops.toFixed(0),
      (result.bandwidth / (1 << 20)).toFixed(1),
      `${(result.latency.meanNs / 1000).toFixed(0)} µs`,
      `${((result.latency.percentilesNs["99"] ?? 0) / 1000).toFixed(0)} µs`,
    ]);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  return table.map((r) =>
    r.map((c, i) => i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")
  )
    .join("\n") + "\n";
}

if (import.meta.main) {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        size: { type: "string", default: "64M" },
        runtime: { type: "string", default: "5" },
        iodepth: { type: "string", default: "16" },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`bench:browser: ${(error as Error).message}`);
    Deno.exit(2);
  }
  for (const name of ["runtime", "iodepth"] as const) {
    if (!/^[1-9]\d{0,4}$/.test(values[name])) {
      console.error(`bench:browser: --${name}=${values[name]} must be a whole number from 1`);
      Deno.exit(2);
    }
  }
  try {
    parseLoadOptions({ size: values.size });
  } catch (error) {
    console.error(`bench:browser: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const rows = await runOpfsBench({
    size: values.size,
    runtime: Number(values.runtime),
    iodepth: Number(values.iodepth),
  });
  console.log(formatOpfsBench(rows));
}
