/**
 * A blockif worker on the test's own thread: an engine for a
 * {@linkcode RawGuest} that serves kicks in-process, plus a blockif server
 * over a request pool that the test drives step by step as a worker thread
 * would run (drain, runOne, loop), so that another thread's action can be
 * made to happen at the exact moment a race is about.
 */

import type { BlockBackend } from "../../src/backend/backend.ts";
import { openBackend } from "../../src/backend/backend.ts";
import type { EngineContext, RequestEngine } from "../../src/blk/engine.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestPool } from "../../src/blockif/request_pool.ts";
import { BlockifServer, type Dispatch } from "../../src/blockif/server.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import type { InterruptSink } from "../../src/virtio/transport_state.ts";

/** How the in-thread worker is set up. */
export interface InThreadWorkerOptions {
  /** Where its interrupts go (default: the device's own sink). */
  readonly interrupts?: InterruptSink;
  /** Who drains (default `"worker"`). */
  readonly dispatch?: Dispatch;
  /** Elements of its pool (default 4). */
  readonly elements?: number;
}

/** Serves kicks in-process; `worker` is a blockif server the test drives as a worker thread. */
export class InThreadWorker implements RequestEngine {
  /** The blockif server the test drives. */
  readonly worker: BlockifServer;
  /** Its request pool. */
  readonly pool: RequestPool;
  /** Its own views of the device's queues. */
  readonly queues: readonly SplitQueue[];
  readonly #inline: InlineEngine;
  readonly #backend: BlockBackend;

  constructor(context: EngineContext, options: InThreadWorkerOptions = {}) {
    this.#inline = new InlineEngine(context);
    this.pool = new RequestPool({ elements: options.elements ?? 4, segMax: context.limits.segMax });
    this.queues = context.queues.map((state) => new SplitQueue(context.memory, state));
    this.#backend = openBackend(context.backend);
    this.worker = new BlockifServer({
      memory: context.memory,
      queues: this.queues,
      pool: this.pool,
      state: context.state,
      interrupts: options.interrupts ?? context.interrupts,
      backend: this.#backend,
      readOnly: context.readOnly,
      limits: context.limits,
      serial: context.serial,
      dispatch: options.dispatch ?? "worker",
      maxChain: context.maxChain,
      pollMaxNs: 0,
    });
  }
  ready() {
    return Promise.resolve();
  }
  notify(index: number) {
    this.#inline.notify(index);
  }
  doorbell(index: number) {
    return this.#inline.doorbell(index);
  }
  quiesce() {}
  attachMemory(): Promise<void> {
    throw new Error("the in-thread worker serves one guest memory");
  }
  close() {
    this.#backend.close();
    return this.#inline.close();
  }
}
