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
}

/** A view of one doorbell word. */
export class Doorbell {
  readonly #words: Int32Array;
  readonly #index: number;
  readonly #wake: WakeSignal | undefined;

  /** Views the doorbell `handle` names (its wake signal's module loaded on this thread). */
  constructor(handle: DoorbellHandle) {
    this.#words = new Int32Array(handle.buffer);
    this.#index = handle.index;
    this.#wake = handle.wake && openWakeSignal(handle.wake);
  }

  /** Counts a kick and wakes one thread waiting on the doorbell. */
  ring(): void {
    Atomics.add(this.#words, this.#index, 1);
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
