/**
 * What the Node test run leaves out, and why: only what is Deno's by
 * nature. Every skip is visible — a skipped file is listed with its reason
 * by `run.ts`, a skipped test shows its reason in the report — and nothing
 * else about the tests changes between the runtimes.
 *
 * @module
 */

/** A rule: files (paths relative to the checkout, `tests/…_test.ts`) or test names, and why. */
export interface SkipRule {
  readonly pattern: RegExp;
  readonly reason: string;
}

/** Test files that are not run on Node at all. */
export const SKIPPED_FILES: readonly SkipRule[] = [
  {
    // All of vhost-user but its wire format (messages_test.ts: plain bytes, runs on Node).
    pattern: /^tests\/vhost_user\/(?!messages_test\.ts$)/,
    reason: "vhost-user needs Deno's FFI (fd passing, mmap, eventfds); on Node its entry " +
      "throws UNSUPPORTED, which tests/node/package_on_node.ts checks",
  },
  {
    pattern: /^tests\/readme_test\.ts$/,
    reason: "runs the README's TypeScript example with `deno run`; the consumer check runs " +
      "the same example as an .mjs file against the installed package",
  },
  {
    pattern: /^tests\/browser_safe_test\.ts$/,
    reason: "reads the TypeScript sources' module graph (mod.ts and deno.json), which the npm " +
      "package does not ship; package_on_node.ts checks the package's exports",
  },
  {
    pattern: /^tests\/browser\//,
    reason: "builds the browser bundle from the TypeScript sources (browser.ts, web/app.ts), " +
      "which the npm package does not ship, and drives Chromium; the bundle is the same " +
      "whichever runtime drives the test",
  },
  {
    pattern: /^tests\/bench\/bench_smoke_test\.ts$/,
    reason: "runs the benchmark, a Deno tool (`deno task bench`, reporting Deno.version), " +
      "which is not part of the npm package; its pure parts run (bench_parts_test.ts)",
  },
];

/** Tests (by compiled file and name) that are skipped on Node. */
export const SKIPPED_TESTS: readonly (SkipRule & { readonly file: RegExp })[] = [
  {
    file: /tests\/backend\/[^/]*_test\.js$/,
    pattern: /(^|: )fsfile: /,
    reason: "the Deno.FsFile backend is Deno only (on Node, io=fsfile is refused with " +
      "INVALID_CONFIG, and the same tests run for node-fs)",
  },
];

/** Why `file` (a path relative to the checkout) is not run on Node, or undefined. */
export function skippedFileReason(file: string): string | undefined {
  return SKIPPED_FILES.find((rule) => rule.pattern.test(file))?.reason;
}

/** Why test `name` of the compiled test file `file` is skipped on Node, or undefined. */
export function nodeSkipReason(file: string, name: string): string | undefined {
  return SKIPPED_TESTS.find((rule) => rule.file.test(file) && rule.pattern.test(name))?.reason;
}
