/**
 * The vhost-user protocol fuzzer (`protocol_fuzzer.ts`) against the CLI back
 * end in a child process, one short seed: every message answered or refused
 * as the protocol says, no crash, no hang, nothing held afterwards that was
 * not held before (fds, guest memory mappings, threads), and a well-behaved
 * front end served afterwards. `scripts/fuzz_vhost_user.ts` runs it long.
 */

import assert from "node:assert/strict";
import { fuzzChildBackEnd } from "./fuzz_run.ts";

const SEED = 1;
const MESSAGES = 1500;

Deno.test(`vhost-user fuzzer (seed ${SEED}, ${MESSAGES} messages): every message answered or refused, no crash, hang or leak, and a well-behaved front end served afterwards`, async () => {
  const { report, leaks, unexpected } = await fuzzChildBackEnd({ seed: SEED, messages: MESSAGES });
  assert.ok(
    report.replies > 0 && report.hangUps > 0 && report.completed > 0,
    JSON.stringify(report),
  );
  assert.deepEqual(leaks, [], "held after the run that was not held before");
  assert.deepEqual(unexpected, [], "what the back end said that a run must not cause");
});
