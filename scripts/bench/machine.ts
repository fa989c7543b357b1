/**
 * A description of the machine a benchmark ran on, for the results: CPU
 * model and cores (from /proc/cpuinfo), memory, kernel, runtime versions and
 * the load average, which says how busy the shared machine was.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { loadavg, release, totalmem } from "node:os";

/** What the benchmark ran on. */
export interface MachineDescription {
  /** ISO 8601 date and time the description was taken. */
  readonly date: string;
  readonly cpuModel: string;
  /** Logical CPUs in /proc/cpuinfo. */
  readonly cores: number;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly runtime: {
    readonly deno: string;
    readonly v8: string;
    readonly typescript: string;
  };
  /** `fio --version`, or null when fio is not installed. */
  readonly fio: string | null;
  /** 1, 5 and 15 minute load averages. */
  readonly loadAverage: readonly number[];
}

/** Model name and logical CPU count from /proc/cpuinfo. */
export function cpuInfo(): { model: string; cores: number } {
  const text = readFileSync("/proc/cpuinfo", "utf8");
  const cores = text.split("\n").filter((line) => /^processor\s*:/.test(line)).length;
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1].trim() ?? "unknown";
  return { model, cores };
}

/** Describes this machine now; `fio` is what {@linkcode fioVersion} found. */
export function describeMachine(fio: string | null): MachineDescription {
  const cpu = cpuInfo();
  return {
    date: new Date().toISOString(),
    cpuModel: cpu.model,
    cores: cpu.cores,
    memoryBytes: totalmem(),
    kernel: release(),
    runtime: { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript },
    fio,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** One line: `AMD EPYC, 2 cores, 23.5 GiB, Linux 6.1.0, Deno 2.9.6 (V8 …), fio-3.33`. */
export function machineLine(machine: MachineDescription): string {
  const gib = (machine.memoryBytes / 2 ** 30).toFixed(1);
  return `${machine.cpuModel}, ${machine.cores} cores, ${gib} GiB, Linux ${machine.kernel}, ` +
    `Deno ${machine.runtime.deno} (V8 ${machine.runtime.v8}), ` +
    (machine.fio ?? "fio not installed");
}

/** Which code was measured: the commit, and files changed since it (the benchmark runs the work tree). */
export interface SourceDescription {
  readonly commit: string;
  /** Tracked files under src/, scripts/ or mod.ts that differ from the commit. */
  readonly modified: readonly string[];
}

async function git(...args: string[]): Promise<string | null> {
  try {
    const root = new URL("../../", import.meta.url).pathname;
    const { success, stdout } = await new Deno.Command("git", {
      args: ["-C", root, ...args],
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout) : null;
  } catch {
    return null;
  }
}

/** The commit and the locally changed source files, or null outside a git checkout. */
export async function describeSource(): Promise<SourceDescription | null> {
  const commit = await git("rev-parse", "--short=12", "HEAD");
  if (commit === null) return null;
  const status = await git(
    "status",
    "--porcelain",
    "--untracked-files=no",
    "--",
    "src",
    "scripts",
    "mod.ts",
    "cli.ts",
    "file.ts",
    "vhost_user.ts",
  );
  const modified = (status ?? "").split("\n").filter((line) => line.length > 3).map((line) =>
    line.slice(3)
  );
  return { commit: commit.trim(), modified };
}
