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
import { QueueWord } from "../virtio/queue_state.ts";
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
  #running = false;
  #closed = false;

  /** Opens the backend on this thread and starts watching the doorbells. */
  constructor(context: EngineContext) {
    this.#context = context;
    this.#queues = context.queues.map((state) => new SplitQueue(context.memory, state));
    this.#backend = openBackend(context.backend);
    this.#execution = {
      memory: context.memory,
      backend: this.#backend,
      readOnly: context.readOnly,
      state: context.state,
      serial: context.serial,
    };
    const capacity = Math.max(
      ...context.queues.map((q) => q.maxQueueSize),
      context.limits.segMax + 2,
    );
    this.#chain = new DescriptorChain(capacity);
    this.#request = new BlkRequest(context.limits.segMax);
    this.#queues.forEach((_, index) => this.#watchDoorbell(index));
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

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const queue of this.#queues) queue.kick(); // wakes the doorbell watchers so they end
      this.#backend.close();
    }
    return Promise.resolve();
  }

  #serve(index: number): void {
    const queue = this.#queues[index];
    const { memory, limits, interrupts } = this.#context;
    do {
      if (!queue.beginDrain()) break;
      let popped;
      while ((popped = queue.pop(this.#chain)) === Pop.CHAIN) {
        const generation = queue.generation;
        parseRequest(this.#chain, memory, limits, this.#request);
        const status = executeRequest(this.#request, this.#execution);
        completeRequest(queue, index, memory, this.#request, status, generation, interrupts);
      }
      if (!queue.endDrain() || popped === Pop.BROKEN) break;
    } while (!this.#closed);
    if (queue.fault !== QueueFault.NONE) interrupts.needsReset(index);
  }

  async #watchDoorbell(index: number): Promise<void> {
    const words = this.#queues[index].words;
    let seen = Atomics.load(words, QueueWord.KICKS);
    while (!this.#closed) {
      const wait = Atomics.waitAsync(words, QueueWord.KICKS, seen);
      if (wait.async) await wait.value;
      if (this.#closed) return;
      seen = Atomics.load(words, QueueWord.KICKS);
      this.notify(index);
    }
  }
}
