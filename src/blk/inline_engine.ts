/**
 * The in-process executor: the blockif server (`src/blockif/server.ts`)
 * with a pool of its own and no threads, run on the thread that is
 * notified. It pops, parses and runs every request of a kick before
 * `notify` returns. Simple and deterministic, which makes it the engine of
 * the RAM disk and of the core tests. Kicks rung on a queue's doorbell from
 * another thread (a guest in a Worker) are picked up with
 * `Atomics.waitAsync`.
 *
 * A medium whose operations complete on this thread's event loop (a
 * network disk: an `"event-loop"` I/O waiter) cannot be waited for inside
 * `notify`, which would block that loop: there, `notify` starts every
 * chain of the kick (many in flight at once) and returns, and the engine
 * completes them as they finish, from its waiter. `settle` awaits them;
 * the synchronous `quiesce` (a reset through the legacy transport) cannot,
 * so it abandons them (`IoQueue.abandon`): they fail at once, and none
 * touches guest memory afterwards.
 *
 * @module
 */

import type { BlockBackend } from "../backend/backend.ts";
import { openIoQueue } from "../backend/backend.ts";
import type { EventLoopIoWaiter, IoQueue } from "../io/io_queue.ts";
import { RequestPool } from "../blockif/request_pool.ts";
import { recordSlots } from "./request.ts";
import { BlockifServer } from "../blockif/server.ts";
import { SyncIoQueue } from "../io/sync_io_queue.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { Doorbell, type DoorbellHandle } from "../virtio/doorbell.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import type { EngineContext, MediumChange, RequestEngine } from "./engine.ts";

/** Runs requests synchronously on the thread that is notified. */
export class InlineEngine implements RequestEngine {
  readonly #context: EngineContext;
  readonly #server: BlockifServer;
  /** Pool elements: one per ring entry. */
  readonly #elements: number;
  #io: IoQueue;
  #memory: GuestMemory;
  /** The medium's settings as requests are checked against them now. */
  #medium: Omit<MediumChange, "backend">;
  #queues: SplitQueue[];
  readonly #doorbells: DoorbellHandle[];
  #running = false;
  #closed = false;

  /**
   * Opens the backend on this thread (or uses `backend`, a medium of the
   * caller's own) and starts watching the doorbells.
   */
  constructor(context: EngineContext, backend?: BlockBackend) {
    this.#context = context;
    this.#memory = context.memory;
    this.#medium = { readOnly: context.readOnly, capacity: context.limits.capacity };
    // One element per ring entry: a whole ring's requests fit at once.
    const elements = this.#elements = Math.max(...context.queues.map((q) => q.maxQueueSize));
    this.#server = new BlockifServer(
      new RequestPool({ elements, segMax: recordSlots(context.limits) }),
      { dispatch: "worker", pollMaxNs: 0, log: context.log },
    );
    this.#io = backend
      ? new SyncIoQueue(backend, elements)
      : openIoQueue(context.backend, { capacity: elements, segMax: recordSlots(context.limits) });
    this.#queues = [];
    this.#attach(context.memory);
    const words = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * this.#queues.length);
    this.#doorbells = this.#queues.map((_, index) => ({ buffer: words, index }));
    this.#queues.forEach((_, index) => this.#watchDoorbell(index));
    const waiter = this.#io.waiter;
    if (waiter?.kind === "event-loop") void this.#completeAsTheyFinish(waiter);
  }

  doorbell(index: number): DoorbellHandle {
    return this.#doorbells[index];
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  notify(index: number): void {
    // A request's completion may make the guest kick again from inside this
    // call (an in-process driver); the outer loop picks that work up.
    if (this.#running || this.#closed) return;
    this.#running = true;
    try {
      const queue = this.#queues[index];
      const server = this.#server;
      // One chain at a time: each completes before the next is popped.
      do {
        while (server.drain(index, 0, 1) > 0 && !this.#closed) {
          while (server.runOne());
          // io_uring finishes later: wait for it here. A medium that completes
          // on this thread's event loop is completed by #completeAsTheyFinish.
          while (server.inFlight > 0 && server.sleepOnIo()) server.reap();
        }
      } while (queue.hasAvailable && !this.#closed);
    } finally {
      this.#running = false;
    }
  }

  quiesce(index: number): void {
    // Requests run to completion inside notify(), except on a medium that
    // completes on this thread's event loop, which this call cannot wait for.
    if (this.#server.pool.busyFor(0, index) === 0) return;
    this.#io.abandon?.();
    this.#server.reap();
  }

  async settle(index: number): Promise<void> {
    const waiter = this.#io.waiter;
    if (waiter?.kind !== "event-loop") return;
    // Bounded: every operation of such a medium completes within its timeout.
    while (this.#server.pool.busyFor(0, index) > 0 && !this.#closed) {
      await waiter.completion();
      this.#complete();
    }
  }

  attachMemory(memory: GuestMemory): Promise<void> {
    this.#attach(memory);
    return Promise.resolve();
  }

  async changeMedium(change: MediumChange): Promise<void> {
    // Requests run to completion inside notify(); on a medium that completes
    // on this thread's event loop the caller settled the queues first: none
    // is on the old medium now.
    const io = openIoQueue(change.backend, {
      capacity: this.#elements,
      segMax: recordSlots(this.#context.limits),
    });
    const old = this.#io;
    this.#io = io;
    this.#medium = { readOnly: change.readOnly, capacity: change.capacity };
    this.#attach(this.#memory);
    const waiter = io.waiter;
    if (waiter?.kind === "event-loop" && waiter !== old.waiter) {
      void this.#completeAsTheyFinish(waiter);
    }
    await old.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Wake the doorbell watchers so they see #closed and end.
    for (const handle of this.#doorbells) new Doorbell(handle).ring();
    await this.#io.close();
  }

  #attach(memory: GuestMemory): void {
    const context = this.#context;
    this.#memory = memory;
    this.#queues = context.queues.map((state) => new SplitQueue(memory, state));
    this.#server.attach(0, {
      settings: {
        readOnly: this.#medium.readOnly,
        limits: { ...context.limits, capacity: this.#medium.capacity },
        serial: context.serial,
        maxChain: context.maxChain,
        name: context.name,
        orderOverlapping: context.orderOverlapping,
      },
      memory,
      queues: this.#queues,
      state: context.state,
      interrupts: context.interrupts,
      errors: context.errors,
      io: this.#io,
    });
  }

  /**
   * For a medium that completes on this thread's event loop: completes
   * requests as their operations finish, runs what they unblocked, and
   * takes chains that arrived meanwhile.
   */
  async #completeAsTheyFinish(waiter: EventLoopIoWaiter): Promise<void> {
    // Until closed, or until a medium change brought a queue of another waiter.
    while (!this.#closed && this.#io.waiter === waiter) {
      await waiter.completion();
      if (this.#closed) return;
      this.#complete();
      for (let i = 0; i < this.#queues.length; i++) {
        if (this.#queues[i].hasAvailable) this.notify(i);
      }
    }
  }

  /** Completes what finished, and starts what that made runnable (a blocked overlapping write). */
  #complete(): void {
    const server = this.#server;
    server.reap();
    if (!this.#running) { while (server.runOne()); }
  }

  /** Serves kicks rung on the doorbell by other threads (a guest in a Worker). */
  async #watchDoorbell(index: number): Promise<void> {
    const doorbell = new Doorbell(this.#doorbells[index]);
    let seen = doorbell.count;
    while (!this.#closed) {
      await doorbell.changed(seen);
      if (this.#closed) return;
      seen = doorbell.count;
      this.notify(index);
    }
  }
}
