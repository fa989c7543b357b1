/**
 * Registered I/O events (the counterpart of KVM's ioeventfd): a table in a
 * SharedArrayBuffer that the device model fills and every vCPU thread reads
 * on each port write. A write that matches an entry (port, size and, if set,
 * the value) rings that entry's doorbell instead of going through the
 * mailbox, so a virtio QUEUE_NOTIFY wakes the queue's server directly.
 * Entry `i` rings doorbell `i` of the list the vCPU was started with. This
 * module owns the table's layout.
 *
 * @module
 */

/** Words of one entry. */
export const IoEventWord = {
  /** Port, or -1 when the entry is not armed. */
  PORT: 0,
  SIZE: 1,
  /** Value the write must carry (datamatch), or -1 for any. */
  VALUE: 2,
  COUNT: 4,
} as const;

const UNARMED = -1;
const ANY_VALUE = -1;

/** A view of an I/O event table. */
export class IoEventTable {
  readonly #words: Int32Array;
  readonly entries: number;

  /**
   * @param buffer an existing table to view
   */
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

  /** Arms entry `i` for writes of `size` bytes to `port` (carrying `value`, if given). */
  arm(i: number, port: number, size: number, value?: number): void {
    const at = i * IoEventWord.COUNT;
    Atomics.store(this.#words, at + IoEventWord.PORT, UNARMED);
    Atomics.store(this.#words, at + IoEventWord.SIZE, size);
    Atomics.store(this.#words, at + IoEventWord.VALUE, value ?? ANY_VALUE);
    Atomics.store(this.#words, at + IoEventWord.PORT, port);
  }

  /** Disarms entry `i`: its writes go through the mailbox again. */
  disarm(i: number): void {
    Atomics.store(this.#words, i * IoEventWord.COUNT + IoEventWord.PORT, UNARMED);
  }

  /** The entry a write matches, or -1. */
  match(port: number, size: number, value: number): number {
    const w = this.#words;
    for (let i = 0, at = 0; i < this.entries; i++, at += IoEventWord.COUNT) {
      if (Atomics.load(w, at + IoEventWord.PORT) !== port) continue;
      if (Atomics.load(w, at + IoEventWord.SIZE) !== size) continue;
      const match = Atomics.load(w, at + IoEventWord.VALUE);
      if (match === ANY_VALUE || match === value) return i;
    }
    return -1;
  }
}
