/**
 * Tests that cannot run here are skipped visibly: `Deno.test`'s `ignore`
 * (a skip on Node), a line on stderr naming what is missing, and one line in
 * the file `VIRTIO_BLK_SKIP_LOG` names, from which the test command's
 * summary says how many were skipped and why. Never a failure, never a pass.
 *
 *     const skip = needsTools("sfdisk", "blkid");
 *     Deno.test({ name: "…", ignore: skip.ignore, fn: … });
 *
 * @module
 */

import { appendFileSync, existsSync } from "node:fs";
import process from "node:process";
import { describeMissing, missingTools, type SystemTool } from "../../scripts/system_tools.ts";

/** Whether a group of tests runs, and if not, why. */
export interface Skip {
  /** True when the tests cannot run here (pass as `Deno.test`'s `ignore`). */
  readonly ignore: boolean;
  /** Why, when they cannot. */
  readonly reason: string | undefined;
}

/** Skips this process reported already (each is said once). */
const reported = new Set<string>();

/** The environment variable naming the file skip reasons are appended to. */
export const SKIP_LOG_VARIABLE = "VIRTIO_BLK_SKIP_LOG";

/**
 * Records that the tests of `what` (a file or group) are skipped because of
 * `reason` (nothing when `reason` is undefined), and returns the decision.
 */
export function skipWhen(what: string, reason: string | undefined): Skip {
  if (reason !== undefined && !reported.has(`${what}: ${reason}`)) {
    const line = `${what}: ${reason}`;
    reported.add(line);
    console.warn(`skipped: ${line}`);
    const log = process.env[SKIP_LOG_VARIABLE];
    if (log) appendFileSync(log, line + "\n");
  }
  return { ignore: reason !== undefined, reason };
}

/**
 * The tests of the calling file need these programs; skipped when any is
 * missing (or, for a FUSE program, when there is no /dev/fuse to mount with).
 */
export function needsTools(...tools: SystemTool[]): Skip {
  const missing = missingTools(tools);
  const fuse = tools.some((tool) => tool === "nbdfuse" || tool === "fusermount3");
  return skipWhen(
    callerFile(),
    missing.length > 0
      ? `needs ${describeMissing(missing)}`
      : fuse && !existsSync("/dev/fuse")
      ? "needs /dev/fuse (FUSE)"
      : undefined,
  );
}

/** The test file that called into this module (for the skip log). */
function callerFile(): string {
  const stack = new Error().stack?.split("\n") ?? [];
  for (const frame of stack) {
    const file = /\/(tests\/[^:)]+?)(?::\d+){1,2}\)?$/.exec(frame)?.[1];
    if (file && !file.startsWith("tests/helpers/skip.")) return file.replace(/\.js$/, ".ts");
  }
  return "tests";
}
