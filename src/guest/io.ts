/**
 * How guest-side code reaches a device: register accesses to its BAR, and
 * waiting for its interrupt. In process these are direct calls; from a vCPU
 * Worker they go through the device model's I/O-request mailbox, and the
 * interrupt is an Atomics notification on the transport's interrupt word.
 *
 * @module
 */

import { TransportWord } from "../virtio/transport_state.ts";

/** Period of the timer that keeps the runtime alive during an async wait (it never fires). */
const KEEP_ALIVE_MS = 2 ** 30;

/** Accesses to one device's register block (offsets relative to its BAR). */
export interface RegisterAccess {
  /** What messages call the device, when the accessor knows (a driver's errors name it). */
  readonly name?: string;
  /** Reads `size` bytes at `offset` in the BAR (an IN); a bad access reads as all ones. */
  read(offset: number, size: 1 | 2 | 4): number;
  /** Writes the low `size` bytes of `value` at `offset` in the BAR (an OUT). */
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Register access by direct calls on the function object (same thread). */
export class DirectRegisters implements RegisterAccess {
  /**
   * Wraps a function object on the same thread, such as a `LegacyVirtioPci`.
   *
   * @param bar anything with the BAR's read and write handlers
   */
  constructor(
    readonly bar: {
      readonly name?: string;
      ioRead(offset: number, size: number): number;
      ioWrite(offset: number, size: number, value: number): void;
    },
  ) {}

  /** The function's name (`LegacyVirtioPci.name`), if it has one. */
  get name(): string | undefined {
    return this.bar.name;
  }

  /** Calls the BAR's read handler directly. */
  read(offset: number, size: 1 | 2 | 4): number {
    return this.bar.ioRead(offset, size);
  }

  /** Calls the BAR's write handler directly. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.bar.ioWrite(offset, size, value);
  }
}

/** The guest's end of a device's interrupt line: the transport's interrupt counter. */
export class InterruptLine {
  readonly #words: Int32Array;
  readonly #index: number;

  /**
   * Views an interrupt counter word; the device side pulses the same word.
   *
   * @param buffer the buffer of the interrupt word: a device's transport region
   *   (`TransportState.buffer`), or the vCPU's interrupt words
   * @param index the word (default: the transport region's INTERRUPTS word)
   */
  constructor(buffer: SharedArrayBuffer, index: number = TransportWord.INTERRUPTS) {
    this.#words = new Int32Array(buffer);
    this.#index = index;
  }

  /** The number of interrupts raised so far (read it before checking for work). */
  get count(): number {
    return Atomics.load(this.#words, this.#index);
  }

  /**
   * Sleeps until an interrupt after `seen` arrives or `timeoutMs` passes.
   * Returns false on timeout. Blocks the thread: use it in Workers.
   */
  waitSync(seen: number, timeoutMs = Infinity): boolean {
    return Atomics.wait(this.#words, this.#index, seen, timeoutMs) !== "timed-out";
  }

  /** Wakes the waits on this line without raising an interrupt (they look again and wait on). */
  wakeWaiters(): void {
    Atomics.notify(this.#words, this.#index);
  }

  /** Like {@linkcode waitSync} without blocking the thread. */
  async wait(seen: number, timeoutMs = Infinity): Promise<boolean> {
    const result = Atomics.waitAsync(this.#words, this.#index, seen, timeoutMs);
    if (!result.async) return result.value !== "timed-out";
    // Neither Deno nor Node counts a pending waitAsync as work that keeps the
    // program running: without a timer it would end (Node: exit 13) with the
    // wait unanswered, and Deno then also drops the wake-up of a notify made
    // on this same thread (an in-process device closing, or serving a kick).
    const keepAlive = setInterval(() => {}, KEEP_ALIVE_MS);
    try {
      return (await result.value) !== "timed-out";
    } finally {
      clearInterval(keepAlive);
    }
  }
}
