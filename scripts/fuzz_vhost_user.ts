/**
 * The vhost-user protocol fuzzer's long run (the test suite runs a short
 * seed: tests/vhost_user/protocol_fuzz_test.ts):
 *
 *     deno run -A scripts/fuzz_vhost_user.ts [--messages N] [--seed S] [--device OPTIONS]
 *
 * Starts the CLI back end in a child process (`-s 9,virtio-blk,<1 MiB
 * image>[,OPTIONS]`), fuzzes it with N messages (default 100 000) from seed
 * S (default: drawn, and printed so that a run can be repeated), then
 * checks it still serves a well-behaved front end and holds nothing it did
 * not hold before. Prints what it did, the kinds of log lines the back end
 * wrote, and any finding; exits 1 on a finding.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fuzzChildBackEnd } from "../tests/vhost_user/fuzz_run.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    messages: { type: "string", default: "100000" },
    seed: { type: "string" },
    device: { type: "string" },
  },
});
const messages = Number(values.messages);
const seed = values.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(values.seed);
if (!Number.isSafeInteger(messages) || messages < 1 || !Number.isSafeInteger(seed)) {
  console.error("fuzz_vhost_user: --messages and --seed take whole numbers");
  Deno.exit(2);
}
console.log(`fuzzing the vhost-user back end: seed ${seed}, ${messages} messages`);
try {
  const { report, leaks, unexpected, logKinds } = await fuzzChildBackEnd({
    seed,
    messages,
    deviceOptions: values.device,
    progress: (line) => console.log(line),
  });
  console.log(JSON.stringify(report, null, 2));
  console.log(`log lines by kind (${logKinds.length}):\n  ${logKinds.join("\n  ")}`);
  const findings = [
    ...leaks.map((leak) => `leak: ${leak}`),
    ...unexpected.map((line) => `unexpected output: ${line}`),
  ];
  console.log(findings.length === 0 ? "no finding" : `findings:\n  ${findings.join("\n  ")}`);
  Deno.exit(findings.length === 0 ? 0 : 1);
} catch (error) {
  console.log(`finding: ${error instanceof Error ? error.message : error}`);
  Deno.exit(1);
}
