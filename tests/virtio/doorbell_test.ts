/**
 * A doorbell counts every kick and wakes one waiter, except while a thread
 * spins on it (holds the spinner word): that thread sees the count change
 * by itself, and a notify would only wake a sleeper for nothing.
 */

import assert from "node:assert/strict";
import { Doorbell } from "../../src/virtio/doorbell.ts";

const BELL = 0;
const SPINNER = 1;

/**
 * How a wait on the bell word ended within `ms`: "ok" (notified) or
 * "timed-out". Registered before this returns; a timer keeps the event loop
 * alive meanwhile (a pending `Atomics.waitAsync` does not).
 */
async function waitOutcome(words: Int32Array, ms: number): Promise<string> {
  const wait = Atomics.waitAsync(words, BELL, Atomics.load(words, BELL), ms);
  assert.equal(wait.async, true);
  const keepAlive = setInterval(() => {}, 10);
  try {
    return await wait.value;
  } finally {
    clearInterval(keepAlive);
  }
}

Deno.test("doorbell: a ring counts the kick and notifies one waiter", async () => {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const bell = new Doorbell({ buffer: words.buffer as SharedArrayBuffer, index: BELL });
  const first = waitOutcome(words, 2000);
  const second = waitOutcome(words, 50);
  bell.ring();
  assert.equal(bell.count, 1);
  // One kick wakes one thread: the oldest waiter.
  assert.equal(await first, "ok");
  assert.equal(await second, "timed-out");
});

Deno.test("doorbell: while its spinner word is held, a ring counts the kick without a notify", async () => {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const bell = new Doorbell({
    buffer: words.buffer as SharedArrayBuffer,
    index: BELL,
    spinner: SPINNER,
  });
  Atomics.store(words, SPINNER, 1);
  const sleeper = waitOutcome(words, 100);
  bell.ring();
  assert.equal(bell.count, 1, "the spinning thread sees the count move");
  assert.equal(await sleeper, "timed-out", "the sleeper was not woken for nothing");

  // The spinner let go: the next ring wakes a sleeper again.
  Atomics.store(words, SPINNER, 0);
  const woken = waitOutcome(words, 2000);
  bell.ring();
  assert.equal(bell.count, 2);
  assert.equal(await woken, "ok");
});
