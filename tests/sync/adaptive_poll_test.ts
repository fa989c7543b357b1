import assert from "node:assert/strict";
import { AdaptivePoll, POLL_START_NS } from "../../src/sync/adaptive_poll.ts";

Deno.test("adaptive poll: short sleeps grow the window up to the cap; long sleeps shrink it to nothing", () => {
  const poll = new AdaptivePoll(32_000);
  assert.equal(poll.windowNs, 0, "starts by sleeping at once");
  const windows = [];
  for (let i = 0; i < 5; i++) {
    poll.slept(1_000); // woken after 1 µs: spinning would have caught it
    windows.push(poll.windowNs);
  }
  assert.deepEqual(windows, [POLL_START_NS, 8_000, 16_000, 32_000, 32_000]);
  const shrinking = [];
  for (let i = 0; i < 5; i++) {
    poll.slept(5_000_000); // idle: 5 ms asleep
    shrinking.push(poll.windowNs);
  }
  assert.deepEqual(shrinking, [16_000, 8_000, 4_000, 0, 0]);
});

Deno.test("adaptive poll: spin returns as soon as work is there, or after the window", () => {
  const poll = new AdaptivePoll(2_000_000);
  assert.equal(poll.spin(() => true), false, "a zero window does not even look");
  poll.windowNs = 2_000_000;
  let checks = 0;
  assert.equal(poll.spin(() => ++checks === 3), true);
  assert.equal(checks, 3);
  // A clock the test moves: every look at the work takes 1/64 ms.
  const STEP_MS = 1 / 64;
  const start = 1000;
  let clock = start;
  const now = performance.now;
  performance.now = () => clock;
  let arrived;
  try {
    arrived = poll.spin(() => {
      clock += STEP_MS;
      return false;
    });
  } finally {
    performance.now = now;
  }
  assert.equal(arrived, false);
  assert.ok(clock >= start + 2, `looked until the 2 ms window had passed (${clock - start} ms)`);
  // The clock is read every 16 looks; then one last look.
  assert.ok(clock <= start + 2 + 17 * STEP_MS, `and stopped then (${clock - start} ms)`);
});

Deno.test("adaptive poll: a cap of 0 never polls", () => {
  const poll = new AdaptivePoll(0);
  poll.slept(10);
  assert.equal(poll.windowNs, 0);
});
