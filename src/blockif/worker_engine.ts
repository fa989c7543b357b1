/**
 * The blockif engine: a device's requests run on a group of Web Workers
 * (`threads.ts`), 8 of its own by default as ACRN's blockif, or threads
 * shared with other devices. Each worker has its own handle on the medium.
 * Set-up, new guest memory and shutdown go through postMessage; nothing
 * per request does.
 *
 * @module
 */

import { wakeSignalFor } from "../backend/backend.ts";
import type { EngineContext, EngineFactory, MediumChange, RequestEngine } from "../blk/engine.ts";
import { VirtioBlkError } from "../errors.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { Doorbell, type DoorbellHandle } from "../virtio/doorbell.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import { waitFor } from "../sync/wait.ts";
import { PoolWord } from "./pool_layout.ts";
import type { RequestPool } from "./request_pool.ts";
import { recordSlots } from "../blk/request.ts";
import { BlockifServer, type DeviceSettings, type Dispatch } from "./server.ts";
import type { WakeSignalFactory } from "../sync/wake_signal.ts";
import {
  BlockifThreads,
  type BlockifThreadsSettings,
  DEFAULT_POLL_US,
  DEFAULT_POOL_SIZE,
  DEFAULT_WORKERS,
} from "./threads.ts";
import type { DeviceHandles } from "./worker_init.ts";

export { DEFAULT_POLL_US, DEFAULT_POOL_SIZE, DEFAULT_WORKERS };

/** How quiesce() and settle() sleep between looks at busyq. */
const QUIESCE_POLL_MS = 50;

/** How the engine is sized and who drains the ring. */
export interface WorkerEngineOptions {
  /** Worker threads of the device's own group (default 8). */
  readonly workers?: number;
  /** Request elements in its own group's pool (default 64). */
  readonly poolSize?: number;
  /** `"worker"` (default): a woken worker drains the ring; `"device"`: the device thread does. */
  readonly dispatch?: Dispatch;
  /**
   * Longest adaptive polling window of an idle worker, in microseconds
   * (QEMU's poll-max-ns); 0 turns polling off. Default {@linkcode DEFAULT_POLL_US}.
   */
  readonly pollUs?: number;
  /**
   * Threads to share with other devices instead of a group of the device's
   * own (whose size, pool and dispatch then apply; the options above do not).
   */
  readonly threads?: BlockifThreads;
  /**
   * The wake signal of the device's own group when a medium inserted later
   * sleeps in the kernel (an empty `nodisk,aio=io_uring` drive); by default
   * the first medium's driver says whether one is needed.
   */
  readonly wake?: WakeSignalFactory;
}

/** An {@linkcode EngineFactory} for the worker engine. */
export function workerEngine(options: WorkerEngineOptions = {}): EngineFactory {
  return (context) => new WorkerEngine(context, options);
}

/** Runs a device's requests on a group of worker threads. */
export class WorkerEngine implements RequestEngine {
  /** The threads serving the device. */
  readonly threads: BlockifThreads;
  /** The device's id among those the threads serve. */
  readonly deviceId: number;
  readonly #context: EngineContext;
  readonly #ownThreads: boolean;
  readonly #attached: Promise<void>;
  readonly #ready: Promise<void>;
  /** This thread's views of the device's queues (quiesce, device dispatch). */
  #queues: SplitQueue[];
  readonly #deviceServer: BlockifServer | undefined;
  #closing: Promise<void> | undefined;
  /** The doorbell notify() rings (every queue's is the pool's WAKE word). */
  #kick: Doorbell | undefined;
  /** The device's settings as its threads have them (the medium's mode and capacity). */
  #settings: DeviceSettings;
  /** The guest memory the device is served over now. */
  #memory: GuestMemory;

  /**
   * Attaches the device to its threads (starting a group of its own unless
   * `options.threads` is given); each thread opens its own handle on the
   * medium. Await {@linkcode WorkerEngine.ready} before relying on them: a
   * thread that cannot open the medium rejects it.
   *
   * @param context what the device shares with its engine
   * @param options how many workers and elements, and who drains the ring
   * @throws {VirtioBlkError} `INVALID_CONFIG` for a worker count, pool size
   *   or polling window out of range
   */
  constructor(context: EngineContext, options: WorkerEngineOptions = {}) {
    this.#context = context;
    this.#ownThreads = options.threads === undefined;
    // A medium only one handle may hold at a time is served by one thread.
    const exclusive = context.backend.capabilities.handles === "exclusive";
    if (exclusive && options.threads !== undefined && options.threads.settings.workers > 1) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `${context.name}: its medium takes one handle at a time; it cannot share ` +
          `${options.threads.settings.workers} blockif threads`,
      );
    }
    // A medium whose queues sleep in the kernel needs threads that ring a wake signal.
    const wake = wakeSignalFor(context.backend);
    if (wake !== undefined && options.threads !== undefined) {
      // Shared threads bring their own signal (or cannot serve this medium).
      if (options.threads.settings.wake === undefined) {
        throw new VirtioBlkError(
          "INVALID_CONFIG",
          `${context.name}: its I/O sleeps in the kernel (io_uring); it needs blockif threads ` +
            `made with a wake signal`,
        );
      }
    }
    this.threads = options.threads ?? new BlockifThreads({
      wake: options.threads === undefined ? wake ?? options.wake : undefined,
      workers: exclusive ? 1 : options.workers,
      poolSize: options.poolSize,
      dispatch: options.dispatch,
      pollUs: options.pollUs,
      segMax: recordSlots(context.limits),
      log: context.log,
    });
    this.#queues = context.queues.map((state) => new SplitQueue(context.memory, state));
    this.#memory = context.memory;
    this.#settings = {
      readOnly: context.readOnly,
      limits: context.limits,
      serial: context.serial,
      maxChain: context.maxChain,
      name: context.name,
      orderOverlapping: context.orderOverlapping,
    };
    const handles: DeviceHandles = {
      settings: this.#settings,
      memory: context.memory.handle(),
      queues: context.queues.map((q) => ({ buffer: q.buffer, maxQueueSize: q.maxQueueSize })),
      state: context.state.buffer,
      interrupts: context.interruptHandle,
      errors: context.errors.buffer,
      backend: context.backend,
    };
    const { device, attached } = this.threads.attach(handles);
    this.deviceId = device;
    this.#attached = attached;
    if (this.threads.settings.dispatch === "device") {
      // The device thread only drains; it never sleeps in the pool, so it never polls.
      this.#deviceServer = new BlockifServer(this.pool, {
        dispatch: "device",
        pollMaxNs: 0,
        // Workers that sleep in their rings hear the requests it queues.
        wake: this.threads.settings.wake,
      });
      this.#attachDeviceServer(context.memory);
      this.#watchKicks();
    }
    this.#ready = Promise.all([this.threads.ready(), attached]).then(() => {});
    // Callers that never await ready() must not see an unhandled rejection.
    this.#ready.catch(() => {});
  }

  /** The request pool the device's requests wait and run in; open for diagnostics and tests. */
  get pool(): RequestPool {
    return this.threads.pool;
  }

  /** The settings of the threads serving the device. */
  get settings(): BlockifThreadsSettings {
    return this.threads.settings;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  notify(index: number): void {
    if (this.#closing) return;
    if (this.#deviceServer) this.#deviceServer.drain(index, this.deviceId);
    else (this.#kick ??= new Doorbell(this.doorbell(index))).ring();
  }

  doorbell(_index: number): DoorbellHandle {
    const worker = this.settings.dispatch === "worker";
    return {
      buffer: this.pool.buffer,
      index: worker ? PoolWord.WAKE : PoolWord.KICK,
      // A worker that polls for work holds POLLER and watches WAKE itself.
      ...(worker ? { spinner: PoolWord.POLLER } : {}),
      // Threads that sleep in their rings hear a kick through the wake signal.
      ...(worker && this.settings.wake ? { wake: this.settings.wake } : {}),
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
      for (let seen = this.#unsettled(index); seen !== undefined; seen = this.#unsettled(index)) {
        waitFor(words, PoolWord.SETTLED, seen, QUIESCE_POLL_MS);
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
      for (let seen = this.#unsettled(index); seen !== undefined; seen = this.#unsettled(index)) {
        const wait = Atomics.waitAsync(words, PoolWord.SETTLED, seen, QUIESCE_POLL_MS);
        if (wait.async) await wait.value;
      }
    } finally {
      Atomics.sub(words, PoolWord.QUIESCING, 1);
    }
  }

  async attachMemory(memory: GuestMemory): Promise<void> {
    await this.#attached;
    this.#memory = memory;
    this.#queues = this.#context.queues.map((state) => new SplitQueue(memory, state));
    if (this.#deviceServer) this.#attachDeviceServer(memory);
    await this.threads.attachMemory(this.deviceId, memory.handle());
  }

  async changeMedium(change: MediumChange): Promise<void> {
    await this.#attached;
    const { backend } = change;
    if (wakeSignalFor(backend) !== undefined && this.settings.wake === undefined) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `${backend.name}: its I/O sleeps in the kernel (io_uring), and the threads serving ` +
          `${this.#context.name} were made without a wake signal`,
      );
    }
    if (backend.capabilities.handles === "exclusive" && this.settings.workers > 1) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `${backend.name} takes one handle at a time; ${this.#context.name} has ` +
          `${this.settings.workers} blockif threads`,
      );
    }
    this.#settings = {
      ...this.#settings,
      readOnly: change.readOnly,
      limits: { ...this.#settings.limits, capacity: change.capacity },
    };
    // The device thread parses with the new capacity at once; the workers once they read the message.
    if (this.#deviceServer) this.#attachDeviceServer(this.#memory);
    await this.threads.changeMedium(this.deviceId, backend, this.#settings);
  }

  close(): Promise<void> {
    // A second close() waits for the first to finish.
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#ownThreads) {
      await this.threads.close();
      return;
    }
    await this.#attached.catch(() => {});
    await this.threads.detach(this.deviceId);
  }

  /** Drops what no worker started, and counts a waiter (finish() then notifies SETTLED). */
  #beginQuiesce(index: number): Int32Array {
    this.pool.abandon(index, this.#queues[index].generation, this.deviceId);
    // abandon() notified the pool's sleepers of what it unblocked; the ring sleepers too.
    if (this.settings.wake) this.threads.wakeAll();
    Atomics.add(this.pool.words, PoolWord.QUIESCING, 1);
    return this.pool.words;
  }

  /** The SETTLED count to wait on while a worker runs a request of queue `index`; undefined once none does. */
  #unsettled(index: number): number | undefined {
    const seen = Atomics.load(this.pool.words, PoolWord.SETTLED);
    return this.pool.busyFor(this.deviceId, index) === 0 ? undefined : seen;
  }

  #attachDeviceServer(memory: GuestMemory): void {
    const context = this.#context;
    this.#deviceServer!.attach(this.deviceId, {
      settings: this.#settings,
      memory,
      queues: this.#queues,
      state: context.state,
      interrupts: context.interrupts,
      errors: context.errors,
    });
  }

  /** Device dispatch: the device thread drains when a vCPU rings KICK. */
  async #watchKicks(): Promise<void> {
    const doorbell = new Doorbell({ buffer: this.pool.buffer, index: PoolWord.KICK });
    let seen = doorbell.count;
    while (!this.#closing) {
      await doorbell.changed(seen);
      seen = doorbell.count;
      if (this.#closing) return;
      for (let i = 0; i < this.#queues.length; i++) this.#deviceServer!.drain(i, this.deviceId);
    }
  }
}
