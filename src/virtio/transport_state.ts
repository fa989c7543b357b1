/**
 * The transport's shared words: device status, the interrupt status (ISR)
 * and the interrupt line. The device model's register handlers and every
 * data-plane thread (which raise interrupts and may mark the device as
 * needing a reset) view the same SharedArrayBuffer; the guest's vCPU waits
 * on the interrupt word. This module owns the region's layout.
 *
 * @module
 */

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

/** The transport region and the legacy interrupt sink over it. */
export class TransportState implements InterruptSink {
  /** The shared words. */
  readonly words: Int32Array;

  /** @param buffer an existing region to view (default: a new one) */
  constructor(buffer?: SharedArrayBuffer) {
    const bytes = TransportWord.COUNT * Int32Array.BYTES_PER_ELEMENT;
    const sab = buffer ?? new SharedArrayBuffer(bytes);
    if (sab.byteLength !== bytes) {
      throw new RangeError(`transport region must be ${bytes} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(sab);
  }

  /** The region, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  get status(): number {
    return Atomics.load(this.words, TransportWord.STATUS);
  }

  set status(value: number) {
    Atomics.store(this.words, TransportWord.STATUS, value & 0xff);
  }

  /** Reads and clears the ISR, like a legacy driver's read of the ISR register. */
  takeIsr(): number {
    return Atomics.exchange(this.words, TransportWord.ISR, 0);
  }

  /** The interrupt counter (the vCPU waits for it to change). */
  get interrupts(): number {
    return Atomics.load(this.words, TransportWord.INTERRUPTS);
  }

  /** Sets ISR bits and pulses the interrupt line. */
  raise(isrBits: number): void {
    Atomics.or(this.words, TransportWord.ISR, isrBits);
    Atomics.add(this.words, TransportWord.INTERRUPTS, 1);
    Atomics.notify(this.words, TransportWord.INTERRUPTS);
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

  /** Back to the power-on state: status 0, ISR 0. The interrupt counter keeps counting. */
  reset(): void {
    Atomics.store(this.words, TransportWord.STATUS, 0);
    Atomics.store(this.words, TransportWord.ISR, 0);
  }
}
