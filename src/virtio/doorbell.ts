/**
 * A doorbell: one Int32 word in a SharedArrayBuffer that a driver's kick
 * adds one to and notifies, so the thread serving a queue wakes without a
 * message — the shared-memory counterpart of an ioeventfd. The engine that
 * serves a queue owns its doorbell; the device model wires QUEUE_NOTIFY
 * writes from a vCPU straight to it.
 *
 * @module
 */

import { openWakeSignal, type WakeSignal, type WakeSignalHandle } from "../sync/wake_signal.ts";

/** Where a doorbell word lives (structured-cloneable). */
export interface DoorbellHandle {
  /** The buffer holding the doorbell word (e.g. an engine's pool or doorbell words). */
  readonly buffer: SharedArrayBuffer;
  /** Int32 index of the word in `buffer`. */
  readonly index: number;
  /**
   * A wake signal rung with the word, for threads that sleep where a notify
   * cannot reach them (io_uring); the ringing thread must have loaded its
   * module (`wakeSignals.load`).
   */
  readonly wake?: WakeSignalHandle;
  /**
   * Int32 index of a word in `buffer` that is non-zero while a thread spins
   * on the doorbell word (a polling worker): that thread sees the ring by
   * itself, so the ring skips the notify and the wake signal. Without this,
   * each kick of a guest at queue depth 1 woke a sleeping worker (a futex
   * wake on the kicking vCPU, a context switch on the other core) that
   * found the request already taken by the poller.
   *
   * Why no kick is lost: the ringer adds to the doorbell word and then
   * reads the spinner word (both sequentially consistent). A thread counts
   * as spinning only from the moment it took the spinner word, and it read
   * the doorbell word before that and looked for work in between. So a
   * ring that sees it spinning either came after that read (the spin, or
   * the `Atomics.wait` on the value it read, returns at once) or before it
   * (then the work was published before the ring and that look found it).
   * Kicks on several queues during one spin reach only the poller: it
   * drains every ring with chains before it runs one, and wakes a worker
   * for each runnable request beyond its own (`src/blockif/server.ts`).
   */
  readonly spinner?: number;
}

/** A view of one doorbell word. */
export class Doorbell {
  readonly #words: Int32Array;
  readonly #index: number;
  readonly #wake: WakeSignal | undefined;
  readonly #spinner: number;

  /** Views the doorbell `handle` names (its wake signal's module loaded on this thread). */
  constructor(handle: DoorbellHandle) {
    this.#words = new Int32Array(handle.buffer);
    this.#index = handle.index;
    this.#wake = handle.wake && openWakeSignal(handle.wake);
    this.#spinner = handle.spinner ?? -1;
  }

  /** Counts a kick and wakes one thread waiting on the doorbell (unless one spins on it). */
  ring(): void {
    Atomics.add(this.#words, this.#index, 1);
    if (this.#spinner >= 0 && Atomics.load(this.#words, this.#spinner) !== 0) return;
    Atomics.notify(this.#words, this.#index, 1);
    this.#wake?.signal(1);
  }

  /** Kicks so far; read it before looking for work, then wait for it to change. */
  get count(): number {
    return Atomics.load(this.#words, this.#index);
  }

  /** Waits (without blocking the thread) until the count differs from `seen`. */
  async changed(seen: number): Promise<void> {
    const wait = Atomics.waitAsync(this.#words, this.#index, seen);
    if (wait.async) await wait.value;
  }
}
