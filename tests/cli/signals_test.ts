/**
 * The run's signal handling in this very process: the first SIGINT or
 * SIGTERM asks the run to stop and decides its exit status; a later one is
 * the user insisting. (SIGTERM only: the test runner has its own SIGINT.)
 */

import assert from "node:assert/strict";
import { constants } from "node:os";
import process from "node:process";
import { SIGNAL_EXIT_STATUS, StopSignals } from "../../src/cli/signals.ts";

async function until(condition: () => boolean, what: string): Promise<void> {
  for (const end = Date.now() + 10_000; !condition();) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("the first signal stops the run and sets its status; the next one is told apart", async () => {
  const seen: string[] = [];
  const signals = new StopSignals(
    (signal) => seen.push(`first ${signal}`),
    (signal) => seen.push(`again ${signal}`),
  );
  try {
    assert.equal(signals.signal.aborted, false);
    assert.equal(signals.exitStatus, undefined);
    process.kill(process.pid, "SIGTERM");
    await until(() => signals.signal.aborted, "the stop");
    assert.equal(signals.received, "SIGTERM");
    assert.equal(signals.exitStatus, SIGNAL_EXIT_STATUS.SIGTERM);
    process.kill(process.pid, "SIGTERM");
    await until(() => seen.length === 2, "the second signal");
    assert.deepEqual(seen, ["first SIGTERM", "again SIGTERM"]);
    assert.equal(signals.exitStatus, 143, "the first signal decides the status");
  } finally {
    signals.close();
  }
});

Deno.test("exit statuses are 128 + the signal's number, as a shell reports them", () => {
  assert.deepEqual(SIGNAL_EXIT_STATUS, {
    SIGINT: 128 + constants.signals.SIGINT,
    SIGTERM: 128 + constants.signals.SIGTERM,
  });
});
