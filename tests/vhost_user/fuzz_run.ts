/**
 * One whole fuzz run against the CLI back end in a child process, as the
 * test and `scripts/fuzz_vhost_user.ts` do it: a well-behaved front end
 * first (so that what the process holds after any session is the
 * baseline), the fuzzer, then a well-behaved front end again (a full
 * connect, ring start and read), and what the process holds once that
 * session's resources are released, compared with the baseline.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { type Holdings, holdings, settledLeaks } from "./back_end_health.ts";
import {
  type ChildBackEnd,
  connectedFrontEnd,
  withChildBackEnd,
  within,
} from "./child_back_end.ts";
import { DATA_BUFFER, QemuFeatures } from "./front_end.ts";
import {
  fuzzBackEnd,
  FuzzFinding,
  type FuzzReport,
  refusalKinds,
  unexpectedOutput,
} from "./protocol_fuzzer.ts";

/** What to run. */
export interface FuzzRunOptions {
  readonly seed: number;
  readonly messages: number;
  /** Extra `-s` options of the back end's device (e.g. `workers=2`). */
  readonly deviceOptions?: string;
  /** Bound of every wait (a reply, a hang-up, resources released). */
  readonly boundMs?: number;
  readonly progress?: (line: string) => void;
  /** Connections between two looks at what the back end holds (default 250). */
  readonly checkpointEvery?: number;
}

/** What a run found. */
export interface FuzzRunResult {
  readonly report: FuzzReport;
  /** What the back end held afterwards that it did not before. */
  readonly leaks: string[];
  /** stderr lines a run must not cause (`unexpectedOutput`). */
  readonly unexpected: string[];
  /** Each kind of log line the back end wrote, numbers blanked. */
  readonly logKinds: string[];
}

/** A full connect, ring start and one read answered, as QEMU and a guest would. */
export async function wellBehavedFrontEnd(backEnd: ChildBackEnd, boundMs: number): Promise<void> {
  const fe = await within(connectedFrontEnd(backEnd), boundMs, "a well-behaved front end connects");
  try {
    await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
    const read = await within(
      fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 4096 }),
      boundMs,
      "a read answered",
    );
    assert.equal(read.status, RequestStatus.OK);
    assert.equal(await within(fe.stopRing(), boundMs, "the ring stopped"), 1);
  } finally {
    fe.close();
  }
}

/** What the idle back end holds once it no longer changes (a session's release is in the background). */
async function settledHoldings(pid: number): Promise<Holdings> {
  let previous = holdings(pid);
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = holdings(pid);
    if (JSON.stringify(now) === JSON.stringify(previous)) return now;
    previous = now;
  }
  return previous;
}

/**
 * Fuzzes a fresh CLI back end. Rejects when the fuzzer finds something (a
 * {@linkcode FuzzFinding}, with the back end's last words) or the
 * well-behaved front end is not served; resolves with the rest for the
 * caller to judge.
 */
export async function fuzzChildBackEnd(options: FuzzRunOptions): Promise<FuzzRunResult> {
  const boundMs = options.boundMs ?? 20_000;
  let result: FuzzRunResult | undefined;
  await withChildBackEnd(async (backEnd) => {
    const pid = backEnd.child.pid;
    await wellBehavedFrontEnd(backEnd, boundMs);
    const baseline = await settledHoldings(pid);
    let exited = false;
    void backEnd.child.status.then(() => (exited = true));
    const lastWords = (error: Error) => {
      error.message += `\nthe back end said (last lines):\n${backEnd.stderr().slice(-3000)}`;
      return error;
    };
    const report = await fuzzBackEnd({
      socket: backEnd.socket,
      seed: options.seed,
      messages: options.messages,
      replyBoundMs: boundMs,
      alive: () => !exited,
      progress: options.progress,
      // Between connections, once the back end let the last one go (a probe is served
      // only then): it must hold what it held before the run.
      checkpoint: async (connections) => {
        (await within(connectedFrontEnd(backEnd), boundMs, "a probe connects")).close();
        const leaks = await settledLeaks(pid, baseline, boundMs);
        if (leaks.length > 0) {
          throw new FuzzFinding(
            `after ${connections} connections the back end holds more: ${leaks}`,
          );
        }
      },
      checkpointEvery: options.checkpointEvery,
    }).catch((error) => {
      throw lastWords(error);
    });
    await wellBehavedFrontEnd(backEnd, boundMs).catch((error) => {
      throw lastWords(error);
    });
    result = {
      report,
      leaks: await settledLeaks(pid, baseline, boundMs),
      unexpected: unexpectedOutput(backEnd.stderr()),
      logKinds: refusalKinds(backEnd.stderr()),
    };
  }, { deviceOptions: options.deviceOptions });
  return result!;
}
