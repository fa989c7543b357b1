/**
 * Runs the command line in this process: arguments from `process.argv`,
 * output to its stdout and stderr, the exit status in `process.exitCode`.
 * `node:process` is the same on Deno and Node, so this one module serves
 * `deno run cli.ts` (the launcher) and the npm package's bin.
 *
 * @module
 */

import process from "node:process";
import { main } from "./main.ts";

/** Runs `main` with this process's arguments and streams. */
export async function runCli(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    stderrIsTerminal: process.stderr.isTTY === true,
  });
}
