/**
 * The in-process executor: pops, parses and runs every request on the
 * thread that handles the kick, then returns it before looking at the next.
 * Simple and deterministic (each kick is fully served when `notify`
 * returns), which makes it the engine of the RAM disk and of the core tests.
 * Kicks rung on a queue's doorbell from another thread (a guest in a Worker)
 * are picked up with `Atomics.waitAsync`.
 *
 * @module
 */

import type { BlockBackend } from "../backend/backend.ts";
import { openBackend } from "../backend/open_backend.ts";
import { DescriptorChain } from "../virtio/descriptor_chain.ts";
import { Doorbell, type DoorbellHandle } from "../virtio/doorbell.ts";
import { Pop, QueueFault, SplitQueue } from "../virtio/split_queue.ts";
import type { EngineContext, RequestEngine } from "./engine.ts";
import { completeRequest, executeRequest, type ExecutionContext } from "./execute.ts";
import { BlkRequest, parseRequest } from "./request.ts";

/** Runs requests synchronously on the thread that is notified. */
export class InlineEngine implements RequestEngine {
  readonly #context: EngineContext;
  readonly #queues: SplitQueue[];
  readonly #backend: BlockBackend;
  readonly #execution: ExecutionContext;
  readonly #chain: DescriptorChain;
  readonly #request: BlkRequest;
  readonly #doorbells: DoorbellHandle[];
  #running = false;
  #closed = false;

  /**
   * Opens the backend on this thread (or uses `backend`, a medium of the
   * caller's own) and starts watching the doorbells.
   */
  constructor(context: EngineContext, backend?: BlockBackend) {
    this.#context = context;
    this.#queues = context.queues.map((state) => new SplitQueue(context.memory, state));
    this.#backend = backend ?? openBackend(context.backend);
    this.#execution = {
      memory: context.memory,
      backend: this.#backend,
      readOnly: context.readOnly,
      state: context.state,
      serial: context.serial,
    };
    this.#chain = new DescriptorChain(context.maxChain);
    this.#request = new BlkRequest(context.limits.segMax);
    const words = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * this.#queues.length);
    this.#doorbells = this.#queues.map((_, index) => ({ buffer: words, index }));
    this.#queues.forEach((_, index) => this.#watchDoorbell(index));
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
      this.#serve(index);
    } finally {
      this.#running = false;
    }
  }

  quiesce(_index: number): void {
    // Requests run to completion inside notify(): nothing is ever in flight here.
  }

  settle(_index: number): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Wake the doorbell watchers so they see #closed and end.
      for (const handle of this.#doorbells) new Doorbell(handle).ring();
      this.#backend.close();
    }
    return Promise.resolve();
  }

  #serve(index: number): void {
    const queue = this.#queues[index];
    const { memory, limits, interrupts } = this.#context;
    do {
      if (!queue.beginDrain()) break;
      try {
        while (queue.pop(this.#chain) === Pop.CHAIN) {
          const generation = queue.generation;
          parseRequest(this.#chain, memory, limits, this.#request);
          const status = executeRequest(this.#request, this.#execution);
          completeRequest(queue, index, memory, this.#request, status, generation, interrupts);
        }
      } finally {
        // Never leave AVAIL_LOCK held: the next kick would block this thread for good.
        queue.endDrain();
      }
    } while (queue.hasAvailable && !this.#closed);
    if (queue.fault !== QueueFault.NONE) interrupts.needsReset(index);
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
