/**
 * The vhost-user protocol fuzzer (`protocol_fuzzer.ts`) against the CLI back
 * end in a child process, one short seed: every message answered or refused
 * as the protocol says, no crash, no hang, nothing held afterwards that was
 * not held before (fds, guest memory mappings, threads), and a well-behaved
 * front end served afterwards. `scripts/fuzz_vhost_user.ts` runs it long.
 */

import assert from "node:assert/strict";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { holdings, settledLeaks } from "./back_end_health.ts";
import {
  type ChildBackEnd,
  connectedFrontEnd,
  withChildBackEnd,
  within,
} from "./child_back_end.ts";
import { DATA_BUFFER, QemuFeatures } from "./front_end.ts";
import { fuzzBackEnd, unexpectedOutput } from "./protocol_fuzzer.ts";

const SEED = 1;
const MESSAGES = 1500;
const BOUND_MS = 20_000;

/** A full connect, ring start and one read, as QEMU and a guest would. */
async function wellBehaved(backEnd: ChildBackEnd): Promise<void> {
  const fe = await within(
    connectedFrontEnd(backEnd),
    BOUND_MS,
    "a well-behaved front end connects",
  );
  try {
    await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
    const read = await within(
      fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 4096 }),
      BOUND_MS,
      "a read answered",
    );
    assert.equal(read.status, RequestStatus.OK);
    assert.equal(await within(fe.stopRing(), BOUND_MS, "the ring stopped"), 1);
  } finally {
    fe.close();
  }
}

Deno.test(`vhost-user fuzzer (seed ${SEED}, ${MESSAGES} messages): every message answered or refused, no crash, hang or leak, and a well-behaved front end served afterwards`, async () => {
  await withChildBackEnd(async (backEnd) => {
    const pid = backEnd.child.pid;
    await wellBehaved(backEnd);
    const baseline = await settledBaseline(pid);
    let exited = false;
    backEnd.child.status.then(() => (exited = true));
    const report = await fuzzBackEnd({
      socket: backEnd.socket,
      seed: SEED,
      messages: MESSAGES,
      replyBoundMs: BOUND_MS,
      alive: () => !exited,
    }).catch((error) => {
      throw new Error(`${error.message}\nthe back end said:\n${backEnd.stderr().slice(-3000)}`);
    });
    assert.ok(
      report.replies > 0 && report.hangUps > 0 && report.chains > 0,
      JSON.stringify(report),
    );
    await wellBehaved(backEnd);
    assert.deepEqual(await settledLeaks(pid, baseline, BOUND_MS), [], "held after the run");
    assert.deepEqual(unexpectedOutput(backEnd.stderr()), []);
  });
});

/** What the idle back end holds once a session's resources are released. */
async function settledBaseline(pid: number) {
  let previous = holdings(pid);
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = holdings(pid);
    if (JSON.stringify(now) === JSON.stringify(previous)) return now;
    previous = now;
  }
  return previous;
}
