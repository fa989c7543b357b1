/**
 * The chart: IOPS against queue depth for 4 KiB random reads, one line per
 * device variant and baseline (medians, with [min–max] error bars), as a
 * Vega-Lite spec rendered to SVG by Vega's headless view — no browser.
 *
 * @module
 */

import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { BenchResults } from "./results.ts";

/** One plotted point. */
interface ChartPoint {
  readonly series: string;
  readonly iodepth: number;
  readonly iops: number;
  readonly min: number;
  readonly max: number;
}

/** The Vega-Lite spec of the sweep in `results` (which must have one). */
export function chartSpec(results: BenchResults): TopLevelSpec {
  const sweep = results.sweep;
  if (sweep === null) throw new Error("the results have no queue-depth sweep (run with --chart)");
  const values: ChartPoint[] = sweep.series.flatMap((series) =>
    series.points.map((p) => ({
      series: series.label,
      iodepth: p.iodepth,
      iops: p.summary.iops.median,
      min: p.summary.iops.min,
      max: p.summary.iops.max,
    }))
  );
  const x = {
    field: "iodepth",
    type: "quantitative",
    title: "queue depth (requests in flight; baseline threads = QD)",
    scale: { type: "log", base: 2 },
    axis: { values: [...sweep.depths], format: "d" },
  } as const;
  // Legend in the sweep's order: device variants, raw, fio.
  const color = {
    field: "series",
    type: "nominal",
    title: null,
    scale: { domain: sweep.series.map((series) => series.label) },
  } as const;
  const m = results.machine;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "4 KiB random read: IOPS against queue depth",
      subtitle: `${m.cpuModel}, ${m.cores} cores; Deno ${m.runtime.deno}; ${m.fio ?? "no fio"}; ` +
        `${m.date.slice(0, 10)}; medians and [min–max] of ${results.settings.rounds} rounds`,
    },
    width: 560,
    height: 340,
    data: { values },
    layer: [
      {
        mark: { type: "line", point: true },
        encoding: {
          x,
          y: {
            field: "iops",
            type: "quantitative",
            title: "IOPS (log scale)",
            scale: { type: "log" },
            axis: { format: "~s" },
          },
          color,
        },
      },
      {
        mark: { type: "rule" },
        encoding: {
          x,
          y: { field: "min", type: "quantitative", scale: { type: "log" } },
          y2: { field: "max" },
          color,
        },
      },
    ],
    config: { font: "sans-serif" },
  } as TopLevelSpec;
}

/** Renders the chart to an SVG document. */
export async function renderChartSvg(results: BenchResults): Promise<string> {
  const vegaSpec = compile(chartSpec(results)).spec;
  const view = new View(parse(vegaSpec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
