/**
 * Runs the test suites on Node 20 against the npm package:
 *
 *     deno run -A tests/node/run.ts [--no-build] [tests/some_test.ts …]
 *
 * 1. builds the package (`scripts/build_npm.ts`) unless `--no-build`;
 * 2. compiles every file under `tests/` (and what they import outside the
 *    package, e.g. `scripts/`) with the same compiler into the package
 *    directory (`npm/dist/tests/`, outside the package's `files`), so the
 *    tests import the very modules the package ships;
 * 3. runs the test files (all `*_test.ts` except the Deno-only ones in
 *    `node_skips.ts`, plus `tests/node/*_on_node.ts`) with
 *    `node --import deno_shim.js --test`;
 * 4. prints the files left out and why, then one line:
 *    `node: N passed, N failed, N skipped`. Exits non-zero on any failure.
 *
 * @module
 */

import { relative } from "node:path";
import {
  buildPackage,
  compile,
  ENTRY_POINTS,
  PACKAGE_DIR,
  ROOT,
  sourceFiles,
} from "../../scripts/build_npm.ts";
import type { NodeTestCounts } from "./count_reporter.ts";
import { skippedFileReason } from "./node_skips.ts";

/** Longest a single test may take on Node before it counts as failed (a hang). */
const TEST_TIMEOUT_MS = 10 * 60_000;

const flags = Deno.args.filter((arg) => arg.startsWith("--"));
const chosen = Deno.args.filter((arg) => !arg.startsWith("--")).map((arg) =>
  relative(ROOT, arg.startsWith("/") ? arg : `${Deno.cwd()}/${arg}`)
);

if (!flags.includes("--no-build")) buildPackage();
const tests = sourceFiles(`${ROOT}tests`);
// The package's own modules are already there; the tests and whatever else
// they import (scripts/…) join them, outside the package's `files`.
compile({
  entries: tests,
  declarations: false,
  emits: (source) =>
    !source.startsWith(`${ROOT}src/`) &&
    !Object.values(ENTRY_POINTS).some((entry) => source === `${ROOT}${entry}`),
});

const candidates = tests.map((file) => relative(ROOT, file)).filter((file) =>
  /_test\.ts$/.test(file) || /^tests\/node\/[^/]*_on_node\.ts$/.test(file)
).filter((file) => chosen.length === 0 || chosen.some((c) => file.startsWith(c)));
const skippedFiles = candidates.flatMap((file) => {
  const reason = skippedFileReason(file);
  return reason === undefined ? [] : [{ file, reason }];
});
const runFiles = candidates.filter((file) => skippedFileReason(file) === undefined);
const compiled = (file: string) => `${PACKAGE_DIR}${file.replace(/\.ts$/, ".js")}`;

const countsFile = await Deno.makeTempFile({ prefix: "node-test-counts-", suffix: ".json" });
let counts: NodeTestCounts = { passed: 0, failed: 0, skipped: 0, failures: [] };
let code = 0;
try {
  if (runFiles.length > 0) {
    const node = new Deno.Command("node", {
      args: [
        "--import",
        compiled("tests/node/deno_shim.ts"),
        "--test",
        `--test-timeout=${TEST_TIMEOUT_MS}`,
        "--test-reporter=spec",
        "--test-reporter-destination=stdout",
        `--test-reporter=${compiled("tests/node/count_reporter.ts")}`,
        `--test-reporter-destination=${countsFile}`,
        ...runFiles.map(compiled),
      ],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    });
    code = (await node.output()).code;
    const text = (await Deno.readTextFile(countsFile)).trim();
    if (text !== "") counts = JSON.parse(text);
  }
} finally {
  await Deno.remove(countsFile);
}

const version = new TextDecoder().decode(
  (await new Deno.Command("node", { args: ["--version"] }).output()).stdout,
).trim();
console.log(`\nNode ${version}: ${runFiles.length} test files run against ${PACKAGE_DIR}`);
for (const { file, reason } of skippedFiles) console.log(`not run on Node: ${file} — ${reason}`);
for (const failure of counts.failures) console.log(`FAILED on Node: ${failure}`);
// A run that ended badly without a failed test (a crash, a hang) is one more failure.
const failed = counts.failed + (code !== 0 && counts.failed === 0 ? 1 : 0);
console.log(`node: ${counts.passed} passed, ${failed} failed, ${counts.skipped} skipped`);
Deno.exit(failed > 0 ? 1 : 0);
