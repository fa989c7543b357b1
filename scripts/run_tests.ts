/**
 * Runs the Deno test suite and ends with the plain summary line CI reads:
 * `N passed, N failed`. Extra arguments go to `deno test` (e.g. a path).
 *
 *     deno task test [paths…]
 */

const args = ["test", "-A", "--no-prompt", ...Deno.args];
const child = new Deno.Command(Deno.execPath(), {
  args,
  stdout: "piped",
  stderr: "inherit",
}).spawn();

let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
}
const { code } = await child.status;

// Deno's summary: "ok | 12 passed (3 steps) | 0 failed (1s)" or "FAILED | 3 passed | 1 failed".
// deno-lint-ignore no-control-regex
const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
const summary = [...plain.matchAll(/(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/g)].at(-1);
const passed = summary ? Number(summary[1]) : 0;
const failed = summary ? Number(summary[2]) : 0;
// A run that died before its summary counts as one failure.
console.log(`${passed} passed, ${code === 0 || failed > 0 ? failed : failed + 1} failed`);
Deno.exit(code);
