/**
 * The runtime seam for "is this module the program?". Deno (and Node from
 * 24.2) say so in `import.meta.main`; Node 20 does not, so there the answer
 * is whether the process's entry script (`process.argv[1]`) is this module's
 * file, on the main thread. It lets `deno run cli.ts …` and
 * `node cli.js …` both start the command line, from the same source.
 *
 * @module
 */

import { realpathSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";

/**
 * Whether the module whose `import.meta` is `meta` is the program's entry
 * point.
 *
 * @example
 * ```ts
 * if (isMainModule(import.meta)) await runCli();
 * ```
 */
export function isMainModule(meta: ImportMeta): boolean {
  const main = (meta as { main?: unknown }).main;
  if (typeof main === "boolean") return main;
  const entry = process.argv[1];
  if (!isMainThread || entry === undefined || !meta.url.startsWith("file:")) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(meta.url));
  } catch {
    return false;
  }
}
