/**
 * The waiter of I/O queues whose operations complete on the thread's own
 * event loop (a network disk: replies arrive in socket callbacks, deadlines
 * in timers). Such a thread must never block: an `Atomics.wait` would stop
 * the very loop that delivers its completions. Its queues count what
 * finished here ({@linkcode EventLoopWaiter.arrived}) and what was reaped
 * ({@linkcode EventLoopWaiter.taken}); the thread, having nothing runnable,
 * returns to its event loop and awaits {@linkcode EventLoopWaiter.completion}
 * (the blockif threads also await a kick: `BlockifServer.idle`).
 *
 * One waiter per thread, shared by every such queue the thread opens
 * ({@linkcode eventLoopWaiterFor}), so one wait covers all of them.
 * Browser-safe.
 *
 * @module
 */

import type { EventLoopIoWaiter } from "./io_queue.ts";

/** Counts a thread's finished, unreaped operations and wakes whoever awaits one. */
export class EventLoopWaiter implements EventLoopIoWaiter {
  /** Completions arrive on the thread's event loop. */
  readonly kind = "event-loop";
  /** Operations finished and not yet reaped, over the thread's queues. */
  #unreaped = 0;
  #next: Promise<void> | undefined;
  #resolve: (() => void) | undefined;

  get ready(): boolean {
    return this.#unreaped > 0;
  }

  completion(): Promise<void> {
    if (this.#unreaped > 0) return Promise.resolve();
    return this.#next ??= new Promise((resolve) => (this.#resolve = resolve));
  }

  /** A queue has `count` more finished operations to hand out: wakes whoever awaits one. */
  arrived(count = 1): void {
    this.#unreaped += count;
    const resolve = this.#resolve;
    this.#next = this.#resolve = undefined;
    resolve?.();
  }

  /** A queue handed `count` finished operations out (its reap, or its close dropping them). */
  taken(count: number): void {
    this.#unreaped -= count;
  }
}

/** Each thread's waiter, by the object that describes the thread to its queues. */
const waiters = new WeakMap<object, EventLoopWaiter>();

/**
 * The waiter of the thread `thread` describes (its `ThreadIo`: one object
 * for the thread's life), made at the first call.
 */
export function eventLoopWaiterFor(thread: object): EventLoopWaiter {
  let waiter = waiters.get(thread);
  if (waiter === undefined) waiters.set(thread, waiter = new EventLoopWaiter());
  return waiter;
}
