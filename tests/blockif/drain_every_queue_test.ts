/**
 * A worker that looks for work drains every ring with chains before it
 * runs a request, keeping one request for itself and waking a worker for
 * each other runnable one. A kick that came while a worker polled woke
 * nobody (the poller sees WAKE move by itself, `src/virtio/doorbell.ts`),
 * so kicks on several queues, or on several devices sharing the threads,
 * during one spin are the poller's to hand out. A worker that stopped at
 * the first ring with chains ran that request with the other ring's
 * chain still on it and the other workers asleep: the second request
 * waited for the first one's I/O.
 *
 * The worker's loop runs on the test's thread, serving two devices that
 * share its pool, over a stand-in medium that records, as each request
 * starts, what was already taken off the rings and how often workers were
 * woken.
 */

import assert from "node:assert/strict";
import type { EngineContext } from "../../src/blk/engine.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestType } from "../../src/blk/spec.ts";
import { PoolWord } from "../../src/blockif/pool_layout.ts";
import { RequestPool } from "../../src/blockif/request_pool.ts";
import { BlockifServer } from "../../src/blockif/server.ts";
import type { IoQueue, IoRequest } from "../../src/io/io_queue.ts";
import { RawGuest } from "../helpers/raw_guest.ts";
import { servedDevice } from "../helpers/served_device.ts";

/** What the pool looked like when a request started. */
interface StartSnapshot {
  /** Runnable requests waiting in the pool (the one starting excluded). */
  readonly runnable: number;
  /** Times WAKE was bumped so far (each bump wakes workers). */
  readonly wakes: number;
}

/** A medium that completes each operation at once, recording the pool as it starts. */
class RecordingMedium implements IoQueue {
  #completed: number[] = [];
  constructor(readonly snapshot: () => StartSnapshot, readonly starts: StartSnapshot[]) {}

  get inFlight(): number {
    return this.#completed.length;
  }

  submit(_request: IoRequest, token: number): boolean {
    this.starts.push(this.snapshot());
    this.#completed.push(token);
    return true;
  }

  commit(): void {}

  reap(done: (token: number, result: number) => void): number {
    const completed = this.#completed;
    this.#completed = [];
    for (const token of completed) done(token, 0);
    return completed.length;
  }

  wait(): void {}

  close(): void {}
}

Deno.test("a worker takes the chains of every ring off before it runs one, and wakes a worker for the rest", () => {
  // Two devices sharing the pool's threads, as with shared I/O threads (the
  // same holds for two queues of one device).
  const devices = [0, 1].map(() => {
    let context!: EngineContext;
    // The device's own engine never runs: nobody rings its doorbell.
    const guest = RawGuest.create({ device: { engine: (c) => new InlineEngine(context = c) } });
    return { guest, context };
  });
  const guests = devices.map((device) => device.guest);
  const pool = new RequestPool({ elements: 8, segMax: devices[0].context.limits.segMax });
  const server = new BlockifServer(pool, { dispatch: "worker", pollMaxNs: 0, threads: 2 });
  const wakeBefore = Atomics.load(pool.words, PoolWord.WAKE);
  const starts: StartSnapshot[] = [];
  const snapshot = () => ({
    runnable: pool.runnableCount,
    wakes: Atomics.load(pool.words, PoolWord.WAKE) - wakeBefore,
  });
  devices.forEach(({ context }, id) =>
    server.attach(id, servedDevice(context, new RecordingMedium(snapshot, starts)))
  );

  // Both kicks came while a worker polled: nobody else was woken for them.
  for (const guest of guests) {
    guest.offer(guest.request({ type: RequestType.IN, sector: 0, data: 4096 }).head);
  }
  // The loop sleeps once nothing is left; close the pool as soon as both reads are back.
  let returned = 0;
  const runOne = server.runOne.bind(server);
  server.runOne = () => {
    const ran = runOne();
    returned = guests.reduce((sum, guest) => sum + guest.usedIdx, 0);
    if (returned === 2) Atomics.store(pool.words, PoolWord.CLOSING, 1);
    return ran;
  };
  assert.equal(server.loop(), "closing");

  assert.equal(returned, 2, "both reads were returned");
  assert.deepEqual(
    starts[0],
    { runnable: 1, wakes: 1 },
    "when the first read started, the other device's read was already queued, and a worker " +
      "was woken for it",
  );
});
