/**
 * A thread whose medium completes in the kernel (io_uring) hands each
 * request to the kernel as it starts it. A ring submits only when told, or
 * when its thread sleeps in it. On a file in the page cache the kernel does
 * the copy inside the submitting call, so a thread that held its requests
 * back for one submission per pass took the next runnable request too and
 * did every copy of its batch alone (randread QD32 237k IOPS against 335k
 * submitting at once); and one that polled would spin on I/O it had never
 * handed over (randread QD1 with `poll_us=32`: p50 38 µs against 4 µs).
 * It tells the queue when nothing else waits for the thread (`mayBlock`):
 * only then may a durable write block it (io_uring's pwritev2 on the
 * thread), so a thread with work waiting never runs syncs one by one.
 *
 * The worker's loop runs on the test's thread over a stand-in ring that
 * completes what was submitted when its thread sleeps in it (as a read
 * that waits for the disk), and records, at each submission and each
 * sleep, how much it had been given and not yet submitted, and whether
 * the thread said it had nothing else to do (so a queue may block it).
 */

import assert from "node:assert/strict";
import type { EngineContext } from "../../src/blk/engine.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestType } from "../../src/blk/spec.ts";
import { PoolWord } from "../../src/blockif/pool_layout.ts";
import { RequestPool } from "../../src/blockif/request_pool.ts";
import { BlockifServer } from "../../src/blockif/server.ts";
import type { IoQueue, IoRequest, KernelIoWaiter } from "../../src/io/io_queue.ts";
import { RawGuest } from "../helpers/raw_guest.ts";
import { servedDevice } from "../helpers/served_device.ts";

/** A ring that completes what was submitted when its thread sleeps in it. */
class SlowRing implements IoQueue, KernelIoWaiter {
  readonly kind = "kernel";
  readonly waiter: KernelIoWaiter = this;
  /** Started, not yet handed to the "kernel". */
  #unsubmitted: number[] = [];
  /** In the "kernel". */
  #submitted: number[] = [];
  /** Done, not yet reaped. */
  #completed: number[] = [];
  /** At each start of an operation: operations started before it and not submitted. */
  readonly unsubmittedAtStart: number[] = [];
  /** At each start: whether the thread said it had nothing else to do (`mayBlock`). */
  readonly mayBlockAtStart: boolean[] = [];
  /** At each sleep: operations the thread had started and not submitted. */
  readonly unsubmittedAtSleep: number[] = [];
  /** Called at each sleep, after the wait (the guest's next move). */
  onSleep = () => {};
  /** Called with each reaped token. */
  onReaped = (_token: number) => {};

  get inFlight(): number {
    return this.#unsubmitted.length + this.#submitted.length + this.#completed.length;
  }

  get ready(): boolean {
    return this.#completed.length > 0;
  }

  submit(request: IoRequest, token: number): boolean {
    this.unsubmittedAtStart.push(this.#unsubmitted.length);
    this.mayBlockAtStart.push(request.mayBlock);
    this.#unsubmitted.push(token);
    return true;
  }

  commit(): void {
    this.#submitted.push(...this.#unsubmitted);
    this.#unsubmitted = [];
  }

  reap(done: (token: number, result: number) => void): number {
    const completed = this.#completed;
    this.#completed = [];
    for (const token of completed) {
      done(token, 0);
      this.onReaped(token);
    }
    return completed.length;
  }

  sleep(): void {
    // Sleeping in the ring submits what is prepared, and waits for it.
    this.unsubmittedAtSleep.push(this.#unsubmitted.length);
    this.commit();
    this.#completed.push(...this.#submitted);
    this.#submitted = [];
    this.onSleep();
  }

  wait(): void {}

  close(): void {}
}

/** A worker's server over a {@linkcode SlowRing}, with a guest to offer it reads. */
function setUp(threads = 1) {
  let context!: EngineContext;
  const guest = RawGuest.create({
    // The device's own engine never runs: nobody rings its doorbell.
    device: { engine: (c) => new InlineEngine(context = c) },
  });
  const pool = new RequestPool({ elements: 4, segMax: context.limits.segMax });
  // A poll window of up to 1 ms: the first short sleep opens it.
  const server = new BlockifServer(pool, { dispatch: "worker", pollMaxNs: 1_000_000, threads });
  const ring = new SlowRing();
  server.attach(0, servedDevice(context, ring));
  /** Closes the pool once `count` operations were reaped (the loop then returns). */
  const closeAfter = (count: number) => {
    let reaped = 0;
    ring.onReaped = () => {
      if (++reaped === count) Atomics.store(pool.words, PoolWord.CLOSING, 1);
    };
  };
  return { guest, server, ring, closeAfter };
}

/** Offers three reads at once to a worker of a group of `threads`; runs it until all are back. */
function serveThreeReads(threads = 1): SlowRing {
  const { guest, server, ring, closeAfter } = setUp(threads);
  const reads = [0, 8, 16].map((sector) =>
    guest.request({ type: RequestType.IN, sector, data: 4096 })
  );
  closeAfter(reads.length);
  for (const read of reads) guest.offer(read.head);

  assert.equal(server.loop(), "closing");
  assert.equal(guest.usedIdx, 3, "all three reads were returned");
  return ring;
}

Deno.test("a worker submits each request it starts before it takes the next", () => {
  const ring = serveThreeReads();
  assert.deepEqual(
    ring.unsubmittedAtStart,
    [0, 0, 0],
    "each read was handed to the kernel before the next one was started",
  );
  assert.deepEqual(ring.unsubmittedAtSleep, [0], "one sleep, with all three submitted");
  assert.deepEqual(
    ring.mayBlockAtStart,
    [false, false, false],
    "none may block the thread: others waited to run, or were in flight",
  );
});

Deno.test("a worker with others in its group may block on a request while more wait", () => {
  assert.deepEqual(
    serveThreeReads(2).mayBlockAtStart,
    [true, false, false],
    "the first may block (another thread can run the rest); then this thread has I/O to reap",
  );
});

Deno.test("a worker that polls has submitted what it started, instead of sleeping on it", () => {
  const { guest, server, ring, closeAfter } = setUp();
  const first = guest.request({ type: RequestType.IN, sector: 0, data: 4096 });
  const second = guest.request({ type: RequestType.IN, sector: 8, data: 4096 });

  // The first read is started and the thread sleeps in the ring with it (the
  // poll window is still closed); the guest then offers the second, which
  // the worker starts and then polls for, its window open after that short
  // sleep, before it sleeps in the ring again.
  let offeredSecond = false;
  ring.onSleep = () => {
    if (!offeredSecond) {
      offeredSecond = true;
      guest.offer(second.head);
    }
  };
  closeAfter(2);
  guest.offer(first.head);

  assert.equal(server.loop(), "closing");
  assert.equal(guest.usedIdx, 2, "both reads were returned");
  assert.deepEqual(ring.unsubmittedAtSleep, [0, 0], "no sleep on a read never handed over");
  assert.deepEqual(ring.mayBlockAtStart, [true, true], "each read was alone: it may block");
});
