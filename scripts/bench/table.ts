/**
 * The results table: one block of rows per case — each device variant, then
 * the raw baselines and fio runs — with medians and [min–max] spreads, and
 * on device rows the ratios against the best raw baseline, the raw baseline
 * with matching threads, and fio's best. Rendered as aligned text for the
 * terminal or as a markdown table.
 *
 * @module
 */

import { formatCount } from "../../src/guest/jobs/units.ts";
import { best } from "./comparisons.ts";
import type { Spread } from "./measurement.ts";
import type { BenchResults, CaseResult, Ratio, SubjectResult } from "./results.ts";

/** Column headings. */
export const COLUMNS = [
  "case",
  "subject",
  "IOPS",
  "MB/s",
  "p50 µs",
  "p99 µs",
  "CPU s/M req",
  "×best raw",
  "×same raw",
  "×best fio",
  "+p50 µs",
] as const;

/** Three significant digits (whole numbers from 100 up). */
export function significant(value: number): string {
  const size = Math.abs(value);
  if (size >= 100) return String(Math.round(value));
  if (size >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** `median [min–max]`, or the median alone when there was one round. */
export function spreadCell(s: Spread, format: (value: number) => string): string {
  return s.n > 1 ? `${format(s.median)} [${format(s.min)}–${format(s.max)}]` : format(s.median);
}

function ratioCell(ratio: Ratio | null): string {
  return ratio === null ? "–" : `${ratio.iops.toFixed(2)}×`;
}

function subjectCells(subject: SubjectResult, marked: boolean): string[] {
  const s = subject.summary;
  const errors = subject.rounds.some((m) => m.errors > 0) ? " (errors!)" : "";
  return [
    subject.label + (marked ? " *" : "") + errors,
    spreadCell(s.iops, formatCount),
    spreadCell(s.bytesPerSecond, (v) => significant(v / 1e6)),
    spreadCell(s.p50Us, significant),
    spreadCell(s.p99Us, significant),
    spreadCell(s.cpuSecondsPerMillion, significant),
  ];
}

/** The rows of one case (the case name in the first row only). */
export function caseRows(result: CaseResult): string[][] {
  const rows: string[][] = [];
  const bestOf = (kind: "raw" | "fio") => best(result.subjects.filter((s) => s.kind === kind));
  const marked = new Set([bestOf("raw"), bestOf("fio")]);
  for (const subject of result.subjects) {
    const cells = subjectCells(subject, marked.has(subject));
    const comparison = result.comparisons.find((c) => c.device === subject.id);
    const extra = comparison === undefined ? ["", "", "", ""] : [
      ratioCell(comparison.bestRaw),
      ratioCell(comparison.sameRaw),
      ratioCell(comparison.bestFio),
      comparison.sameRaw === null ? "–" : significant(comparison.sameRaw.addedP50Us),
    ];
    rows.push([rows.length === 0 ? result.case.name : "", ...cells, ...extra]);
  }
  return rows;
}

/** Every row of the table. */
export function tableRows(results: BenchResults): string[][] {
  return results.cases.flatMap(caseRows);
}

/** The table as aligned text, a blank line between cases. */
export function renderTextTable(results: BenchResults): string {
  const blocks = results.cases.map(caseRows);
  const all = [[...COLUMNS], ...blocks.flat()];
  const widths = COLUMNS.map((_, c) => Math.max(...all.map((row) => row[c].length)));
  // Names and labels read left-aligned, numbers right-aligned.
  const line = (row: readonly string[]) =>
    row.map((cell, c) => c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join("  ")
      .trimEnd();
  const lines = [line(COLUMNS), ...blocks.map((rows) => rows.map(line).join("\n"))];
  return lines.join("\n\n");
}

/** The table in markdown. */
export function renderMarkdownTable(results: BenchResults): string {
  const row = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  const align = COLUMNS.map((_, c) => (c < 2 ? "---" : "---:"));
  return [row(COLUMNS), row(align), ...tableRows(results).map(row)].join("\n");
}
