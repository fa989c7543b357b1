/**
 * The test command, `npm test` (what `.ci/run` runs too). (Not named
 * `test.ts`: `deno test` would take that name for a test module and run it.)
 *
 *     npm test                      # everything, as below
 *     npm test -- tests/blk/ …      # only the Deno tests under these paths
 *     npm test -- --no-install      # never install system programs
 *
 * 1. Installs, when it runs as root on Debian, the system programs the tests
 *    use that are missing (`scripts/system_tools.ts` lists them); elsewhere it
 *    says which are missing. Tests that need a missing program are skipped
 *    and named — never failed, never passed.
 * 2. Type-checks everything once, then runs the Deno suite (`deno test
 *    --no-check`: Worker modules are not checked again at every start).
 * 3. Builds the npm package and runs the suites on Node against it, then
 *    installs the packed tarball into a fresh project as a user would
 *    (`tests/node/run.ts`, `tests/node/consumer_check.ts`).
 * 4. Prints how many tests were skipped and why, and ends with the one line
 *    CI reads: `N passed, N failed`. Exits non-zero when anything failed.
 *
 * @module
 */

import process from "node:process";
import {
  describeMissing,
  findCommand,
  missingTools,
  packagesFor,
  SYSTEM_TOOLS,
  type SystemTool,
} from "./system_tools.ts";
import { SKIP_LOG_VARIABLE } from "../tests/helpers/skip.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const flags = Deno.args.filter((arg) => arg.startsWith("--"));
const paths = Deno.args.filter((arg) => !arg.startsWith("--"));
const unknown = flags.filter((flag) => flag !== "--no-install");
if (unknown.length > 0) {
  console.error(`test: unknown option ${unknown[0]} (paths and --no-install only)`);
  Deno.exit(2);
}

/** Counts of one stage. */
interface StageCounts {
  readonly name: string;
  passed: number;
  failed: number;
  skipped: number;
}

const decoder = new TextDecoder();
// deno-lint-ignore no-control-regex
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

/**
 * Runs `args` with this Deno, echoing its output, and returns its exit code
 * and the last 8 KiB of its stdout (where summaries are).
 */
async function runEchoed(args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let tail = "";
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-8192);
  }
  const { code } = await child.status;
  return { code, tail: plain(tail) };
}

/** A stage that ended badly without counting a failure (it crashed) counts one. */
function settle(stage: StageCounts, code: number): StageCounts {
  if (code !== 0 && stage.failed === 0) stage.failed = 1;
  return stage;
}

async function installSystemTools(): Promise<void> {
  const all = Object.keys(SYSTEM_TOOLS) as SystemTool[];
  const missing = missingTools(all);
  if (missing.length === 0) return;
  const canInstall = process.getuid?.() === 0 && !flags.includes("--no-install") &&
    findCommand("apt-get") !== undefined;
  if (!canInstall) {
    console.log(
      `test: missing ${describeMissing(missing)}; the tests that need them are skipped` +
        (process.getuid?.() === 0 ? "" : " (run as root to install them)"),
    );
    return;
  }
  const packages = packagesFor(missing);
  console.log(`test: installing ${packages.join(" ")} (for ${missing.join(", ")})`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const apt = async (args: string[]) =>
    // dpkg's progress goes nowhere; apt's errors stay on stderr.
    (await new Deno.Command("apt-get", { args, env, stdout: "null", stderr: "inherit" })
      .output()).success;
  const installed = await apt(["update", "-qq"]) &&
    await apt([
      "install",
      "-y",
      "-qq",
      "--no-install-recommends",
      "-o",
      "Dpkg::Use-Pty=0",
      ...packages,
    ]);
  const still = missingTools(missing);
  if (!installed || still.length > 0) {
    console.log(
      `test: could not install ${describeMissing(still)}; the tests that need them are skipped`,
    );
  }
}

/**
 * Type-checks everything once (entry points, sources, tests, scripts): the
 * tests then run without checking, so the modules every Worker loads (8 per
 * engine, hundreds of times over the suite) are not checked again at each
 * start. A type error, or a documentation lint error of the public API, is
 * a failed stage.
 */
async function typeCheck(): Promise<StageCounts> {
  /** The package's entry points: checked, and their public API's documentation linted. */
  const entries = [
    "mod.ts",
    "cli.ts",
    "file.ts",
    "nbd.ts",
    "vhost_user.ts",
    "qmp.ts",
    "browser.ts",
  ];
  const everything = [...entries, "web/app.ts", "src/", "tests/", "scripts/"];
  // With paths, what they reach (and the Worker entries, loaded by URL).
  const targets = paths.length === 0
    ? everything
    : [...paths, "src/blockif/worker.ts", "src/guest/uos_worker.ts"];
  const { code } = await runEchoed(["check", ...targets]);
  // The whole run also lints the public API's documentation (every export
  // documented, no exported type referring to one that is not exported).
  const docs = paths.length === 0 ? (await runEchoed(["doc", "--lint", ...entries])).code : 0;
  return { name: "type check", passed: 0, failed: code === 0 && docs === 0 ? 0 : 1, skipped: 0 };
}

async function denoSuite(skipLog: string): Promise<StageCounts> {
  const { code, tail } = await runEchoed(
    ["test", "-A", "--no-prompt", "--no-check", ...paths],
    { [SKIP_LOG_VARIABLE]: skipLog },
  );
  // "ok | 12 passed (3 steps) | 0 failed | 2 ignored (1s)"
  const summary = [...tail.matchAll(
    /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \| (\d+) ignored)?/g,
  )].at(-1);
  return settle({
    name: "deno",
    passed: Number(summary?.[1] ?? 0),
    failed: Number(summary?.[2] ?? 0),
    skipped: Number(summary?.[3] ?? 0),
  }, code);
}

/** A stage whose last line reads `<prefix>N passed, N failed[, N skipped]`. */
async function countedStage(
  name: string,
  args: string[],
  skipLog: string,
): Promise<StageCounts> {
  const { code, tail } = await runEchoed(args, { [SKIP_LOG_VARIABLE]: skipLog });
  const summary = [
    ...tail.matchAll(
      new RegExp(`^${name}: (\\d+) passed, (\\d+) failed(?:, (\\d+) skipped)?`, "gm"),
    ),
  ].at(-1);
  return settle({
    name,
    passed: Number(summary?.[1] ?? 0),
    failed: Number(summary?.[2] ?? 0),
    skipped: Number(summary?.[3] ?? 0),
  }, code);
}

async function buildStage(): Promise<StageCounts> {
  const { code } = await runEchoed(["run", "-A", "scripts/build_npm.ts"]);
  // A build is not a test: it counts only when it fails.
  return { name: "npm build", passed: 0, failed: code === 0 ? 0 : 1, skipped: 0 };
}

await installSystemTools();
const skipLog = await Deno.makeTempFile({ prefix: "virtio-blk-skips-" });
const stages: StageCounts[] = [];
try {
  stages.push(await typeCheck());
  stages.push(await denoSuite(skipLog));
  if (paths.length === 0) {
    const build = await buildStage();
    stages.push(build);
    if (build.failed === 0) {
      stages.push(
        await countedStage("node", ["run", "-A", "tests/node/run.ts", "--no-build"], skipLog),
      );
      stages.push(
        await countedStage("consumer", ["run", "-A", "tests/node/consumer_check.ts"], skipLog),
      );
    }
  }
  const reasons = [...new Set((await Deno.readTextFile(skipLog)).split("\n").filter(Boolean))];
  console.log("");
  for (const stage of stages) {
    console.log(
      `${stage.name}: ${stage.passed} passed, ${stage.failed} failed, ${stage.skipped} skipped`,
    );
  }
  const skipped = stages.reduce((sum, stage) => sum + stage.skipped, 0);
  if (skipped > 0 || reasons.length > 0) {
    console.log(`${skipped} skipped:`);
    for (const reason of reasons) console.log(`  ${reason}`);
  }
} finally {
  await Deno.remove(skipLog);
}
const passed = stages.reduce((sum, stage) => sum + stage.passed, 0);
const failed = stages.reduce((sum, stage) => sum + stage.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed > 0 ? 1 : 0);
