/**
 * A group of blockif threads: one request pool in a SharedArrayBuffer and
 * the Web Workers that serve it (8 by default, as ACRN's blockif), for one
 * device or several. Devices attach their queues to the group and detach
 * them again; new guest memory (a vhost-user memory-table change) reaches
 * the threads as a message, without restarting them or reopening the
 * medium. This is QEMU's `-object iothread` model over ACRN's blockif: a
 * further disk adds queues to threads that are already there instead of
 * bringing threads of its own.
 *
 * Set-up and control go through postMessage (see `worker.ts` for how a
 * looping thread gets to read them); nothing per request does.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import type { GuestMemoryHandle } from "../memory/guest_memory.ts";
import { siblingModule, startThread, type Thread } from "../runtime/thread.ts";
import { PoolWord } from "./pool_layout.ts";
import { RequestPool } from "./request_pool.ts";
import {
  openWakeSignal,
  type WakeSignal,
  type WakeSignalFactory,
  type WakeSignalHandle,
} from "../sync/wake_signal.ts";
import type { DeviceSettings, Dispatch } from "./server.ts";
import type { BackendSpec } from "../backend/backend.ts";
import type { ControlMessage, DeviceHandles, WorkerInit, WorkerMessage } from "./worker_init.ts";

export type { DeviceHandles };

/** ACRN's number of blockif threads per device. */
export const DEFAULT_WORKERS = 8;
/** ACRN's number of request elements (BLOCKIF_MAXREQ). */
export const DEFAULT_POOL_SIZE = 64;

/**
 * Default polling window cap: off. Measured on the 2-core machines this
 * project runs on (docs/bench): with a guest that polls for completions
 * too, `poll_us=32` doubles 4 KiB reads at QD1 (p50 +2.4 µs over a raw
 * read); with a guest that sleeps on interrupts it gains nothing, spins a
 * core while requests trickle in, and costs randread QD32 with 8 workers up
 * to a quarter (2026-12-07, 8 rounds each: 287k-297k IOPS against
 * 381k-387k without in the faster of this machine's two modes, the same
 * 253k-281k in the slower one).
 */
export const DEFAULT_POLL_US = 0;

/** How long close() waits for threads to leave their loop before terminating them. */
const CLOSE_GRACE_MS = 5000;

/** How a group is sized and who drains the rings. */
export interface BlockifThreadsOptions {
  /** Worker threads (default 8). */
  readonly workers?: number;
  /** Request elements in the pool (default 64). */
  readonly poolSize?: number;
  /**
   * Most data segments or ranges of a request of any device attached (the
   * pool's record size; `VirtioBlkDevice.recordSlots`).
   */
  readonly segMax: number;
  /** `"worker"` (default): a woken worker drains the rings; `"device"`: the device thread does. */
  readonly dispatch?: Dispatch;
  /**
   * Longest adaptive polling window of an idle worker, in microseconds
   * (QEMU's poll-max-ns); 0 turns polling off. Default {@linkcode DEFAULT_POLL_US}.
   */
  readonly pollUs?: number;
  /** Where the threads report medium failures (default: console.error). */
  readonly log?: (message: string) => void;
  /**
   * Makes the wake signal of threads that sleep in the kernel (io_uring):
   * every wake-up rings it besides the pool's words. The group makes it for
   * its threads and closes it when it closes. Without it, devices whose
   * media need one cannot attach.
   */
  readonly wake?: WakeSignalFactory;
}

/** The settings a group runs with, defaults filled in. */
export interface BlockifThreadsSettings {
  /** Worker threads. */
  readonly workers: number;
  /** Request elements in the pool. */
  readonly poolSize: number;
  /** Who drains the rings. */
  readonly dispatch: Dispatch;
  /** Longest adaptive polling window of an idle worker, in microseconds. */
  readonly pollUs: number;
  /** The wake signal its threads ring and wait on, if they sleep in the kernel. */
  readonly wake?: WakeSignalHandle;
}

/** A started group of blockif threads and their pool. */
export class BlockifThreads {
  /** The request pool every attached device's requests wait and run in. */
  readonly pool: RequestPool;
  /** The settings in effect. */
  readonly settings: BlockifThreadsSettings;
  readonly #log: (message: string) => void;
  readonly #threads: Promise<Thread[]>;
  readonly #ready: Promise<void>;
  readonly #closed: Promise<void>[] = [];
  /** Answers awaited per control number, one per thread. */
  readonly #answers = new Map<
    number,
    { readonly waitingFor: Set<number>; readonly errors: string[]; readonly done: () => void }
  >();
  readonly #devices = new Set<number>();
  /** Threads that have not died. */
  readonly #live = new Map<number, Thread>();
  #nextDevice = 0;
  readonly #wakeSignal: WakeSignal | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates the pool and starts the threads. Await
   * {@linkcode BlockifThreads.ready} before relying on them.
   *
   * @throws {VirtioBlkError} `INVALID_CONFIG` for a thread count, pool size
   *   or polling window out of range
   */
  constructor(options: BlockifThreadsOptions) {
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
    const dispatch = options.dispatch ?? "worker";
    const pollUs = options.pollUs ?? DEFAULT_POLL_US;
    if (!Number.isFinite(pollUs) || pollUs < 0 || pollUs > 1_000_000) {
      throw new VirtioBlkError("INVALID_CONFIG", `poll window ${pollUs} µs must be 0 to 1000000`);
    }
    const wake = options.wake?.(workers);
    this.settings = { workers, poolSize: elements, dispatch, pollUs, wake };
    this.#wakeSignal = wake && openWakeSignal(wake);
    this.#log = options.log ?? ((message) => console.error(message));
    this.pool = new RequestPool({ elements, segMax: options.segMax });
    const init: Omit<WorkerInit, "index"> = {
      type: "init",
      pool: { buffer: this.pool.buffer, dimensions: { elements, segMax: options.segMax } },
      settings: { dispatch, pollMaxNs: pollUs * 1000, wake, threads: workers },
      control: Atomics.load(this.pool.words, PoolWord.CONTROL),
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
          switch (message.type) {
            case "ready":
              readyResolve();
              return;
            case "done":
              this.#answered(message.control, index, message.error);
              return;
            case "log":
              this.#log(message.message);
              return;
            case "closed":
              closedResolve();
              return;
          }
        });
        thread.onError((error) => {
          readyReject(new VirtioBlkError("IO_ERROR", `blockif worker ${index} died: ${error}`));
          closedResolve();
          // It answers no control message again.
          this.#live.delete(index);
          for (const control of [...this.#answers.keys()]) {
            this.#answered(control, index, `blockif worker ${index} died: ${error}`);
          }
        });
      });
      this.#live.set(index, thread);
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

  /** Resolves once every thread runs. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Devices attached now. */
  get deviceCount(): number {
    return this.#devices.size;
  }

  /**
   * Attaches a device: every thread builds its views of it and opens its
   * own handle on its medium. Returns the device's id in the pool at once,
   * and a promise that resolves once every thread serves it (rejecting with
   * `BAD_BACKING_FILE` when a thread cannot open the medium).
   */
  attach(handles: DeviceHandles): { readonly device: number; readonly attached: Promise<void> } {
    const device = this.#nextDevice++;
    this.#devices.add(device);
    const attached = this.#control((control) => ({ type: "attach", control, device, handles }))
      .catch(async (error) => {
        await this.detach(device).catch(() => {});
        throw error;
      });
    return { device, attached };
  }

  /**
   * Gives device `device` new guest memory; its queues must be stopped (no
   * request of it in flight).
   */
  async attachMemory(device: number, memory: GuestMemoryHandle): Promise<void> {
    await this.#control((control) => ({ type: "memory", control, device, memory }));
  }

  /**
   * Gives device `device` a new medium: every thread finishes the I/O it
   * started on the old one, closes it, opens `backend` and checks requests
   * against `settings` from then on. Rejects (`BAD_BACKING_FILE`) when a
   * thread cannot open it; that thread's requests of the device then fail.
   */
  async changeMedium(
    device: number,
    backend: BackendSpec,
    settings: DeviceSettings,
  ): Promise<void> {
    await this.#control((control) => ({ type: "medium", control, device, backend, settings }));
  }

  /** Lets device `device` go: every thread closes its medium. */
  async detach(device: number): Promise<void> {
    if (!this.#devices.delete(device) || this.#closing) return;
    await this.#control((control) => ({ type: "detach", control, device }));
  }

  /** Stops the threads (whatever is attached) and releases their media. */
  close(): Promise<void> {
    // A second close() waits for the first to finish.
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /**
   * Posts a control message to every thread, then bumps CONTROL and wakes
   * them all so looping threads stop to read it; resolves once all answered.
   */
  async #control(make: (control: number) => ControlMessage): Promise<void> {
    await this.#ready;
    if (this.#closing) throw new VirtioBlkError("CLOSED", "the blockif threads are closed");
    await this.#threads;
    const threads = [...this.#live];
    if (threads.length === 0) throw new VirtioBlkError("IO_ERROR", "no blockif thread is running");
    const words = this.pool.words;
    const control = Atomics.load(words, PoolWord.CONTROL) + 1;
    const message = make(control);
    const answered = new Promise<string[]>((resolve) => {
      const errors: string[] = [];
      const waitingFor = new Set(threads.map(([index]) => index));
      this.#answers.set(control, { waitingFor, errors, done: () => resolve(errors) });
    });
    for (const [, thread] of threads) thread.postMessage(message);
    Atomics.store(words, PoolWord.CONTROL, control);
    this.wakeAll();
    const errors = await answered;
    if (errors.length > 0) throw new VirtioBlkError("BAD_BACKING_FILE", errors[0]);
  }

  #answered(control: number, thread: number, error: string | undefined): void {
    const waiting = this.#answers.get(control);
    if (waiting === undefined || !waiting.waitingFor.delete(thread)) return;
    if (error !== undefined) waiting.errors.push(error);
    if (waiting.waitingFor.size === 0) {
      this.#answers.delete(control);
      waiting.done();
    }
  }

  /** Wakes every thread, wherever it sleeps (the pool's words, or its ring). */
  wakeAll(): void {
    const words = this.pool.words;
    Atomics.add(words, PoolWord.WAKE, 1);
    Atomics.notify(words, PoolWord.WAKE);
    // Each thread through its own part: one that wakes first could take
    // another's share of a signal(workers).
    this.#wakeSignal?.signalAll();
  }

  async #close(): Promise<void> {
    const words = this.pool.words;
    Atomics.store(words, PoolWord.CLOSING, 1);
    this.wakeAll();
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
    // Nobody answers any more, and no thread waits on the signal.
    for (const waiting of this.#answers.values()) waiting.done();
    this.#answers.clear();
    this.#wakeSignal?.close();
  }
}
