/**
 * The transport's shared words: device status, the interrupt status (ISR)
 * and the interrupt line. The device model's register handlers and every
 * data-plane thread (which raise interrupts and may mark the device as
 * needing a reset) view the same SharedArrayBuffer; the guest's vCPU waits
 * on the interrupt word. This module owns the region's layout.
 *
 * The interrupt word is the device's own by default. A device model that
 * puts several devices on one vCPU gives them all the vCPU's word instead
 * (like functions sharing a legacy INTx line): the guest wakes on any of
 * them and reads each device's ISR to see whose interrupt it was.
 *
 * @module
 */

import { type PluginHandle, PluginRegistry } from "../runtime/plugins.ts";
import { DeviceStatus } from "./spec.ts";

/** Word indexes in the transport region. */
export const TransportWord = {
  /** Device status register (virtio 1.2 §2.1). */
  STATUS: 0,
  /** ISR status: bit 0 used-buffer interrupt, bit 1 configuration change (§4.1.4.5). */
  ISR: 1,
  /** The interrupt line: bumped and notified at every interrupt; the vCPU waits on it. */
  INTERRUPTS: 2,
  /** Words in the region. */
  COUNT: 3,
} as const;

/** ISR bit for a used-buffer notification. */
export const ISR_QUEUE = 1;
/** ISR bit for a configuration change. */
export const ISR_CONFIG = 2;

/** How the data plane tells the driver about completed work or a broken device. */
export interface InterruptSink {
  /** Buffers were returned on queue `queueIndex`'s used ring. */
  usedBuffers(queueIndex: number): void;
  /** The device needs a reset (a queue is broken): DEVICE_NEEDS_RESET and a config interrupt. */
  needsReset(queueIndex: number): void;
}

/**
 * How any thread reaches a device's interrupt sink (structured-cloneable):
 * the module of its kind, which registered an opener in
 * {@linkcode interruptSinks}, and the kind's own fields.
 */
export interface InterruptHandle extends PluginHandle {
  /** The kind of sink, for messages. */
  readonly kind: string;
}

/** How each kind of interrupt sink is opened from its handle, by module. */
export const interruptSinks: PluginRegistry<(handle: InterruptHandle) => InterruptSink> =
  new PluginRegistry("interrupt sink");

/** Rebuilds an interrupt sink from its handle on this thread (its module loaded here). */
export function openInterruptSink(handle: InterruptHandle): InterruptSink {
  return interruptSinks.get(handle)(handle);
}

/** The handle of a legacy transport's sink: its region and interrupt line. */
export interface TransportInterruptHandle extends InterruptHandle {
  /** Tells this kind of handle apart. */
  readonly kind: "transport";
  /** The transport region ({@linkcode TransportState.buffer}). */
  readonly buffer: SharedArrayBuffer;
  /** The interrupt word to pulse. */
  readonly line: InterruptLineHandle;
}

/** Where an interrupt line's counter word lives (structured-cloneable). */
export interface InterruptLineHandle {
  /** The buffer holding the counter: a transport region or a vCPU's interrupt words. */
  readonly buffer: SharedArrayBuffer;
  /** Int32 index of the counter in `buffer`. */
  readonly index: number;
}

/** The transport region and the legacy interrupt sink over it. */
export class TransportState implements InterruptSink {
  /** The shared words. */
  readonly words: Int32Array;
  readonly #line: Int32Array;
  readonly #lineIndex: number;

  /**
   * Views a transport region that another thread created, or creates one
   * (status 0, ISR 0).
   *
   * @param buffer an existing region to view (default: a new one)
   * @param line the interrupt word to pulse (default: this region's INTERRUPTS word)
   */
  constructor(buffer?: SharedArrayBuffer, line?: InterruptLineHandle) {
    const bytes = TransportWord.COUNT * Int32Array.BYTES_PER_ELEMENT;
    const sab = buffer ?? new SharedArrayBuffer(bytes);
    if (sab.byteLength !== bytes) {
      throw new RangeError(`transport region must be ${bytes} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(sab);
    this.#line = line ? new Int32Array(line.buffer) : this.words;
    this.#lineIndex = line ? line.index : TransportWord.INTERRUPTS;
  }

  /** The region, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** The interrupt word this transport pulses. */
  /** How other threads reach this sink. */
  handle(): TransportInterruptHandle {
    return { module: import.meta.url, kind: "transport", buffer: this.buffer, line: this.line };
  }

  /** Where the interrupt word this sink pulses lives. */
  get line(): InterruptLineHandle {
    return { buffer: this.#line.buffer as SharedArrayBuffer, index: this.#lineIndex };
  }

  /**
   * The device status register (§2.1): the driver's ACKNOWLEDGE, DRIVER,
   * FEATURES_OK and DRIVER_OK bits, and the device's DEVICE_NEEDS_RESET.
   * The driver changes it with {@linkcode TransportState.writeByDriver}.
   */
  get status(): number {
    return Atomics.load(this.words, TransportWord.STATUS);
  }

  /**
   * The driver wrote `value` (not 0, which is a reset) to the status
   * register: its low 8 bits replace the status, except that a
   * DEVICE_NEEDS_RESET already set stays set — it is the device's to set
   * and only a reset clears it (§2.1.2).
   *
   * A compare-exchange loop, not a load and a store: a data-plane thread's
   * {@linkcode TransportState.needsReset} (an `Atomics.or` on the same
   * word) may land between the two, and a store computed from the old
   * value would wipe it. The config interrupt would then have been raised
   * for a bit STATUS no longer shows, and a broken queue reports nothing
   * again, so the guest's requests would hang.
   */
  writeByDriver(value: number): void {
    const words = this.words;
    let current = Atomics.load(words, TransportWord.STATUS);
    for (;;) {
      const next = (value & 0xff) | (current & DeviceStatus.DEVICE_NEEDS_RESET);
      const found = Atomics.compareExchange(words, TransportWord.STATUS, current, next);
      if (found === current) return;
      current = found; // changed since the look (a needsReset): again, from what is there now
    }
  }

  /** Reads and clears the ISR, like a legacy driver's read of the ISR register. */
  takeIsr(): number {
    return Atomics.exchange(this.words, TransportWord.ISR, 0);
  }

  /** The interrupt counter (the vCPU waits for it to change). */
  get interrupts(): number {
    return Atomics.load(this.#line, this.#lineIndex);
  }

  /** Sets ISR bits and pulses the interrupt line. */
  raise(isrBits: number): void {
    Atomics.or(this.words, TransportWord.ISR, isrBits);
    Atomics.add(this.#line, this.#lineIndex, 1);
    Atomics.notify(this.#line, this.#lineIndex);
  }

  usedBuffers(_queueIndex: number): void {
    this.raise(ISR_QUEUE);
  }

  needsReset(_queueIndex: number): void {
    const before = Atomics.or(this.words, TransportWord.STATUS, DeviceStatus.DEVICE_NEEDS_RESET);
    // §2.1.2: after DRIVER_OK the device notifies the driver with a config interrupt.
    if ((before & DeviceStatus.DEVICE_NEEDS_RESET) === 0 && (before & DeviceStatus.DRIVER_OK)) {
      this.raise(ISR_CONFIG);
    }
  }

  /**
   * The device's configuration changed (a new capacity): ISR bit 1 and an
   * interrupt (§4.1.4.5); the driver reads the ISR and then the config.
   */
  configChanged(): void {
    this.raise(ISR_CONFIG);
  }

  /** Back to the power-on state: status 0, ISR 0. The interrupt counter keeps counting. */
  reset(): void {
    Atomics.store(this.words, TransportWord.STATUS, 0);
    Atomics.store(this.words, TransportWord.ISR, 0);
  }
}

interruptSinks.register(import.meta.url, (handle) => {
  const { buffer, line } = handle as TransportInterruptHandle;
  return new TransportState(buffer, line);
});
