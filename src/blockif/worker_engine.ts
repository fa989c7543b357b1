/**
 * The blockif engine: a request pool in a SharedArrayBuffer and a set of Web
 * Workers (8 by default, as ACRN's blockif) that execute a device's requests,
 * each with its own handle on the medium. Set-up and shutdown go through
 * postMessage; nothing per request does.
 *
 * @module
 */

import type { EngineContext, EngineFactory, RequestEngine } from "../blk/engine.ts";
import { VirtioBlkError } from "../errors.ts";
import { siblingModule, startThread, type Thread } from "../runtime/thread.ts";
import { Doorbell, type DoorbellHandle } from "../virtio/doorbell.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import { PoolWord } from "./pool_layout.ts";
import { RequestPool } from "./request_pool.ts";
import { BlockifServer, type Dispatch, type ServerSettings } from "./server.ts";
import type { WorkerInit, WorkerMessage } from "./worker_init.ts";

/** ACRN's number of blockif threads per device. */
export const DEFAULT_WORKERS = 8;
/** ACRN's number of request elements (BLOCKIF_MAXREQ). */
export const DEFAULT_POOL_SIZE = 64;

/** How the engine is sized and who drains the ring. */
export interface WorkerEngineOptions {
  /** Worker threads (default 8). */
  readonly workers?: number;
  /** Request elements in the pool (default 64). */
  readonly poolSize?: number;
  /** `"worker"` (default): a woken worker drains the ring; `"device"`: the device thread does. */
  readonly dispatch?: Dispatch;
  /**
   * Longest adaptive polling window of an idle worker, in microseconds
   * (QEMU's poll-max-ns); 0 turns polling off. Default {@linkcode DEFAULT_POLL_US}.
   */
  readonly pollUs?: number;
}

/**
 * Default polling window cap: off. Measured on the 2-core machines this
 * project runs on (docs/bench): with a guest that polls for completions
 * too, `poll_us=32` doubles 4 KiB reads at QD1 (p50 +2.4 µs over a raw
 * read); with a guest that sleeps on interrupts it gains nothing, costs a
 * few per cent at QD32, and spins a core while requests trickle in.
 */
export const DEFAULT_POLL_US = 0;

/** How long close() waits for workers to leave their loop before terminating them. */
const CLOSE_GRACE_MS = 5000;
/** How long quiesce() and settle() sleep between looks at busyq. */
const QUIESCE_POLL_MS = 50;

/** An {@linkcode EngineFactory} for the worker engine. */
export function workerEngine(options: WorkerEngineOptions = {}): EngineFactory {
  return (context) => new WorkerEngine(context, options);
}

/** Runs a device's requests on a pool of worker threads. */
export class WorkerEngine implements RequestEngine {
  /** The request pool the device's requests wait and run in; open for diagnostics and tests. */
  readonly pool: RequestPool;
  /** The settings in effect, defaults filled in. */
  readonly settings: Required<WorkerEngineOptions>;
  readonly #dispatch: Dispatch;
  readonly #queues: SplitQueue[];
  readonly #threads: Promise<Thread[]>;
  readonly #ready: Promise<void>;
  readonly #closed: Promise<void>[] = [];
  readonly #deviceServer: BlockifServer | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates the request pool and starts the worker threads; each opens its
   * own handle on the medium. Await {@linkcode WorkerEngine.ready} before
   * relying on them: a worker that cannot open the medium rejects it.
   *
   * @param context what the device shares with its engine
   * @param options how many workers and elements, and who drains the ring
   * @throws {VirtioBlkError} `INVALID_CONFIG` for a worker count, pool size
   *   or polling window out of range
   */
  constructor(context: EngineContext, options: WorkerEngineOptions = {}) {
    const workers = options.workers ?? DEFAULT_WORKERS;
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
      throw new VirtioBlkError("INVALID_CONFIG", `worker count ${workers} must be 1 to 256`);
    }
    const elements = options.poolSize ?? DEFAULT_POOL_SIZE;
    if (!Number.isInteger(elements) || elements < 1 || elements > 65536) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `request pool size ${elements} must be 1 to 65536`,
      );
    }
    this.#dispatch = options.dispatch ?? "worker";
    const pollUs = options.pollUs ?? DEFAULT_POLL_US;
    if (!Number.isFinite(pollUs) || pollUs < 0 || pollUs > 1_000_000) {
      throw new VirtioBlkError("INVALID_CONFIG", `poll window ${pollUs} µs must be 0 to 1000000`);
    }
    this.settings = { workers, poolSize: elements, dispatch: this.#dispatch, pollUs };
    this.pool = new RequestPool({ elements, segMax: context.limits.segMax });
    this.#queues = context.queues.map((state) => new SplitQueue(context.memory, state));
    const maxChain = context.maxChain;
    const settings: ServerSettings = {
      readOnly: context.readOnly,
      limits: context.limits,
      serial: context.serial,
      dispatch: this.#dispatch,
      maxChain,
      pollMaxNs: pollUs * 1000,
    };
    if (this.#dispatch === "device") {
      // The device thread only drains; it never sleeps in the pool, so it never polls.
      this.#deviceServer = new BlockifServer({
        ...settings,
        pollMaxNs: 0,
        memory: context.memory,
        queues: this.#queues,
        pool: this.pool,
        state: context.state,
        interrupts: context.interrupts,
      });
      this.#watchKicks();
    }
    const init: Omit<WorkerInit, "index"> = {
      memory: context.memory.handle(),
      queues: context.queues.map((q) => ({ buffer: q.buffer, maxQueueSize: q.maxQueueSize })),
      pool: { buffer: this.pool.buffer, dimensions: { elements, segMax: context.limits.segMax } },
      state: context.state.buffer,
      interrupts: context.interruptHandle,
      backend: context.backend,
      settings,
    };
    const starts: Promise<void>[] = [];
    const url = siblingModule(import.meta.url, "worker");
    // Every thread that starts is kept, so close() ends it even if another failed to start.
    const started = Array.from({ length: workers }, async (_, index) => {
      const thread = await startThread(url, `blockif-${index}`);
      let readyResolve!: () => void, readyReject!: (e: Error) => void;
      starts[index] = new Promise<void>((resolve, reject) => {
        readyResolve = resolve;
        readyReject = reject;
      });
      this.#closed[index] = new Promise<void>((closedResolve) => {
        thread.onMessage((raw) => {
          const message = raw as WorkerMessage;
          if (message.type === "ready") readyResolve();
          else if (message.type === "error") {
            readyReject(
              new VirtioBlkError("BAD_BACKING_FILE", `blockif worker ${index}: ${message.message}`),
            );
            closedResolve();
          } else closedResolve();
        });
        thread.onError((error) => {
          readyReject(new VirtioBlkError("IO_ERROR", `blockif worker ${index} died: ${error}`));
          closedResolve();
        });
      });
      thread.postMessage({ ...init, index } satisfies WorkerInit);
      return thread;
    });
    this.#threads = Promise.allSettled(started).then((results) =>
      results.flatMap((result) => result.status === "fulfilled" ? [result.value] : [])
    );
    this.#ready = Promise.all(started).then(() => Promise.all(starts)).then(() => {});
    // Callers that never await ready() must not see an unhandled rejection.
    this.#ready.catch(() => {});
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  notify(index: number): void {
    if (this.#closing) return;
    if (this.#deviceServer) this.#deviceServer.drain(index);
    else new Doorbell(this.doorbell(index)).ring();
  }

  doorbell(_index: number): DoorbellHandle {
    return {
      buffer: this.pool.buffer,
      index: this.#dispatch === "worker" ? PoolWord.WAKE : PoolWord.KICK,
    };
  }

  /**
   * Drops the queue's requests that no worker started and waits until no
   * worker runs one: after this, nothing touches guest memory for requests
   * popped before the queue was disabled (bug class 15).
   */
  quiesce(index: number): void {
    const words = this.#beginQuiesce(index);
    try {
      for (let seen = this.#unsettled(); seen !== undefined; seen = this.#unsettled()) {
        Atomics.wait(words, PoolWord.SETTLED, seen, QUIESCE_POLL_MS);
      }
    } finally {
      Atomics.sub(words, PoolWord.QUIESCING, 1);
    }
  }

  /**
   * {@linkcode quiesce} that waits with `Atomics.waitAsync`, so the calling
   * thread's event loop runs meanwhile (a hung medium keeps a request
   * busy for as long as it hangs).
   */
  async settle(index: number): Promise<void> {
    const words = this.#beginQuiesce(index);
    try {
      for (let seen = this.#unsettled(); seen !== undefined; seen = this.#unsettled()) {
        const wait = Atomics.waitAsync(words, PoolWord.SETTLED, seen, QUIESCE_POLL_MS);
        if (wait.async) await wait.value;
      }
    } finally {
      Atomics.sub(words, PoolWord.QUIESCING, 1);
    }
  }

  /** Drops what no worker started, and counts a waiter (finish() then notifies SETTLED). */
  #beginQuiesce(index: number): Int32Array {
    this.pool.abandon(index, this.#queues[index].generation);
    Atomics.add(this.pool.words, PoolWord.QUIESCING, 1);
    return this.pool.words;
  }

  /** The SETTLED count to wait on while a worker runs a request; undefined once none does. */
  #unsettled(): number | undefined {
    const seen = Atomics.load(this.pool.words, PoolWord.SETTLED);
    return this.pool.busyCount === 0 ? undefined : seen;
  }

  close(): Promise<void> {
    // A second close() waits for the first to finish.
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const words = this.pool.words;
    Atomics.store(words, PoolWord.CLOSING, 1);
    Atomics.add(words, PoolWord.WAKE, 1);
    Atomics.notify(words, PoolWord.WAKE);
    Atomics.add(words, PoolWord.KICK, 1);
    Atomics.notify(words, PoolWord.KICK);
    const threads = await this.#threads;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#closed),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS))),
    ]);
    clearTimeout(timer);
    await Promise.all(threads.map((thread) => thread.terminate()));
  }

  /** Device dispatch: the device thread drains when a vCPU rings KICK. */
  async #watchKicks(): Promise<void> {
    const doorbell = new Doorbell({ buffer: this.pool.buffer, index: PoolWord.KICK });
    let seen = doorbell.count;
    while (!this.#closing) {
      await doorbell.changed(seen);
      seen = doorbell.count;
      if (this.#closing) return;
      for (let i = 0; i < this.#queues.length; i++) this.#deviceServer!.drain(i);
    }
  }
}
