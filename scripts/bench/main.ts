/**
 * `deno task bench`: the device against the raw baseline and fio, one table.
 * See `--help` (options.ts) for what it runs and writes.
 *
 * @module
 */

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { VirtioBlkError } from "../../src/errors.ts";
import { renderChartSvg } from "./chart.ts";
import { parseBenchArgs, usage } from "./options.ts";
import { renderMarkdownReport, renderTextReport } from "./report.ts";
import type { BenchResults } from "./results.ts";
import { runBenchmark } from "./runner.ts";

/** The chart's file name in the output folder. */
export const CHART_FILE = "randread_iops_vs_qd.svg";
/** The markdown page's file name in the output folder. */
export const MARKDOWN_FILE = "results.md";

/** Files written for a run's results (paths), by `--json`, `--chart` and `--markdown`. */
export async function writeOutputs(
  results: BenchResults,
  outputs: { json?: string; chart: boolean; markdown: boolean; outDir: string },
): Promise<string[]> {
  const written: string[] = [];
  const write = (path: string, text: string) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    written.push(path);
  };
  if (outputs.json !== undefined) write(outputs.json, JSON.stringify(results, null, 2) + "\n");
  const chartPath = join(outputs.outDir, CHART_FILE);
  if (outputs.chart) write(chartPath, await renderChartSvg(results));
  if (outputs.markdown) {
    const page = join(outputs.outDir, MARKDOWN_FILE);
    const chart = outputs.chart ? relative(dirname(page), chartPath) : undefined;
    write(page, renderMarkdownReport(results, chart));
  }
  await formatFiles(written.filter((path) => /\.(md|json|svg)$/.test(path)));
  return written;
}

/** Lays out written markdown, JSON and SVG as `deno fmt` does, so the repository's check passes. */
async function formatFiles(paths: readonly string[]): Promise<void> {
  if (paths.length === 0) return;
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", ...paths],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(`deno fmt ${paths.join(" ")}: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

/** Runs the command line; returns the exit status (2 for bad options). */
export async function main(args: readonly string[]): Promise<number> {
  const log = (line: string) => console.error(line);
  try {
    const command = parseBenchArgs(args);
    if (command.help) {
      console.log(usage());
      return 0;
    }
    const results = command.fromJson === undefined
      ? await runBenchmark(command.options, log)
      : JSON.parse(readFileSync(command.fromJson, "utf8")) as BenchResults;
    console.log(renderTextReport(results));
    for (const path of await writeOutputs(results, command)) log(`wrote ${path}`);
    return 0;
  } catch (error) {
    const usageError = error instanceof VirtioBlkError &&
      (error.code === "INVALID_CONFIG" || error.code === "BAD_BACKING_FILE");
    log(`bench: ${error instanceof Error ? error.message : String(error)}`);
    return usageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
