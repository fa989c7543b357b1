/**
 * Registered I/O events: the port accesses a vCPU completes by itself,
 * without a round trip through the device model's mailbox. A table in a
 * SharedArrayBuffer that the device model fills and every vCPU thread reads
 * on each port access; entry `i` acts on target `i` of the list the vCPU was
 * started with (a word of some SharedArrayBuffer). Two kinds:
 *
 * - `DOORBELL`: a write (port, size and, if set, the value) rings the target
 *   word — KVM's ioeventfd, used for virtio's QUEUE_NOTIFY, so a kick wakes
 *   the queue's server directly.
 * - `READ_CLEAR`: a read returns the target word and clears it atomically —
 *   the legacy ISR register, whose only effect is exactly that (virtio 1.2
 *   §4.1.4.5), so acknowledging an interrupt costs no round trip.
 *
 * This module owns the table's layout.
 *
 * @module
 */

/** Words of one entry. */
export const IoEventWord = {
  /** Port, or -1 when the entry is not armed. */
  PORT: 0,
  SIZE: 1,
  /** Value a DOORBELL write must carry (datamatch), or -1 for any. */
  VALUE: 2,
  /** {@linkcode IoEventKind}. */
  KIND: 3,
  COUNT: 4,
} as const;

/** What an armed entry does. */
export const IoEventKind = {
  /** A write rings the target word (add one, notify one waiter). */
  DOORBELL: 1,
  /** A read returns the target word and sets it to 0. */
  READ_CLEAR: 2,
} as const;

/** One of {@linkcode IoEventKind}'s values. */
export type IoEventKindCode = typeof IoEventKind[keyof typeof IoEventKind];

const UNARMED = -1;
const ANY_VALUE = -1;

/** A view of an I/O event table. */
export class IoEventTable {
  readonly #words: Int32Array;
  readonly entries: number;

  /** @param buffer an existing table to view */
  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Int32Array(buffer);
    this.entries = this.#words.length / IoEventWord.COUNT;
  }

  /** A new table of `entries` unarmed entries. */
  static create(entries: number): IoEventTable {
    const table = new IoEventTable(new SharedArrayBuffer(4 * IoEventWord.COUNT * entries));
    for (let i = 0; i < entries; i++) table.disarm(i);
    return table;
  }

  get buffer(): SharedArrayBuffer {
    return this.#words.buffer as SharedArrayBuffer;
  }

  /** Arms entry `i` for accesses of `size` bytes at `port` (writes carrying `value`, if given). */
  arm(i: number, kind: IoEventKindCode, port: number, size: number, value?: number): void {
    const at = i * IoEventWord.COUNT;
    Atomics.store(this.#words, at + IoEventWord.PORT, UNARMED);
    Atomics.store(this.#words, at + IoEventWord.SIZE, size);
    Atomics.store(this.#words, at + IoEventWord.VALUE, value ?? ANY_VALUE);
    Atomics.store(this.#words, at + IoEventWord.KIND, kind);
    Atomics.store(this.#words, at + IoEventWord.PORT, port);
  }

  /** Disarms entry `i`: its accesses go through the mailbox again. */
  disarm(i: number): void {
    Atomics.store(this.#words, i * IoEventWord.COUNT + IoEventWord.PORT, UNARMED);
  }

  /** The DOORBELL entry a write matches, or -1. */
  matchWrite(port: number, size: number, value: number): number {
    return this.#match(IoEventKind.DOORBELL, port, size, value);
  }

  /** The READ_CLEAR entry a read matches, or -1. */
  matchRead(port: number, size: number): number {
    return this.#match(IoEventKind.READ_CLEAR, port, size, ANY_VALUE);
  }

  #match(kind: number, port: number, size: number, value: number): number {
    const w = this.#words;
    for (let i = 0, at = 0; i < this.entries; i++, at += IoEventWord.COUNT) {
      if (Atomics.load(w, at + IoEventWord.PORT) !== port) continue;
      if (Atomics.load(w, at + IoEventWord.SIZE) !== size) continue;
      if (Atomics.load(w, at + IoEventWord.KIND) !== kind) continue;
      const match = Atomics.load(w, at + IoEventWord.VALUE);
      if (match === ANY_VALUE || match === value) return i;
    }
    return -1;
  }
}
