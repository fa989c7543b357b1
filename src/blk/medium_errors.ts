/**
 * What the medium did wrong, per device: every failed read, write or flush
 * counted by its kind (the operation and the errno), with the last failure's
 * offset, in a SharedArrayBuffer every I/O thread of the device records
 * into. The guest only ever sees IOERR (virtio 1.2 §5.2.6); this is where
 * the cause stays, for the user (logged once per kind, then at every tenfold
 * count, so a failing disk cannot flood the log) and for diagnostics. This
 * module owns the region's layout.
 *
 * @module
 */

import { errnoName } from "../io/errno.ts";
import { IO_OP_NAMES, IO_SHORT, IoOp, type IoOpCode } from "../io/io_queue.ts";
import { lock, unlock } from "../sync/mutex.ts";

/** Word indexes of the region. */
const Word = {
  LOCK: 0,
  TOTAL: 1,
  LAST_OP: 2,
  LAST_RESULT: 3,
  /** The last failure's device offset, low and high 32 bits. */
  LAST_OFFSET_LOW: 4,
  LAST_OFFSET_HIGH: 5,
  /** Kinds seen beyond the table's slots (counted in TOTAL only). */
  UNTRACKED: 6,
  /** First slot: pairs of (key, count); key 0 is free. */
  SLOTS: 8,
} as const;

/** Distinct kinds (operation × errno) one device keeps apart. */
const SLOT_COUNT = 16;
const WORDS = Word.SLOTS + 2 * SLOT_COUNT;
const TWO_POW_32 = 0x1_0000_0000;

/** One kind of failure and how often it happened. */
export interface MediumErrorKind {
  /** The operation that failed. */
  readonly op: IoOpCode;
  /** Its result: `-errno`, or {@linkcode IO_SHORT} (the medium ended early). */
  readonly result: number;
  /** How many times. */
  readonly count: number;
}

/** A device's failures so far. */
export interface MediumErrorSummary {
  /** Every failure. */
  readonly total: number;
  /** By kind, most frequent first. */
  readonly kinds: readonly MediumErrorKind[];
  /** The most recent failure, with its device offset. */
  readonly last?: { readonly op: IoOpCode; readonly result: number; readonly offset: number };
}

/** `write at offset 4096: ENOSPC` — one failure, as a log line says it. */
export function describeFailure(op: IoOpCode, result: number, offset?: number): string {
  const cause = result === IO_SHORT ? "the medium ended before the last byte" : errnoName(-result);
  return `${IO_OP_NAMES[op]}${offset === undefined ? "" : ` at offset ${offset}`} failed: ${cause}`;
}

/**
 * One line for a device's failures so far: `3 medium errors: write ENOSPC
 * ×2, flush EIO ×1; last: write at offset 4096 failed: ENOSPC`.
 */
export function describeSummary(summary: MediumErrorSummary): string {
  const kinds = summary.kinds.map(({ op, result, count }) =>
    `${IO_OP_NAMES[op]} ${result === IO_SHORT ? "short" : errnoName(-result)} ×${count}`
  );
  const last = summary.last;
  const lastText = last === undefined
    ? ""
    : `; last: ${
      describeFailure(last.op, last.result, last.op === IoOp.FLUSH ? undefined : last.offset)
    }`;
  return `${summary.total} medium error${summary.total === 1 ? "" : "s"}: ${
    kinds.join(", ")
  }${lastText}`;
}

/** Whether the `count`th failure of a kind is logged: the 1st, 10th, 100th, … */
export function logsAt(count: number): boolean {
  for (let n = 1; n <= count; n *= 10) if (n === count) return true;
  return false;
}

/** A device's medium-error counters, viewed from one thread. */
export class MediumErrors {
  /** The region's words (this module owns their layout). */
  readonly words: Int32Array;

  /** Views a region made by another thread ({@linkcode MediumErrors.buffer}), or makes one. */
  constructor(buffer?: SharedArrayBuffer) {
    const bytes = WORDS * Int32Array.BYTES_PER_ELEMENT;
    const sab = buffer ?? new SharedArrayBuffer(bytes);
    if (sab.byteLength !== bytes) {
      throw new RangeError(`medium error region must be ${bytes} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(sab);
  }

  /** The region, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Failures so far. */
  get total(): number {
    return Atomics.load(this.words, Word.TOTAL);
  }

  /**
   * Counts one failure of `op` with `result` (< 0) at device `offset`, and
   * returns how many of its kind there have been (0 when the table is full).
   */
  record(op: IoOpCode, result: number, offset: number): number {
    const w = this.words;
    lock(w, Word.LOCK);
    try {
      w[Word.TOTAL]++;
      w[Word.LAST_OP] = op;
      w[Word.LAST_RESULT] = result;
      w[Word.LAST_OFFSET_LOW] = offset % TWO_POW_32;
      w[Word.LAST_OFFSET_HIGH] = Math.floor(offset / TWO_POW_32);
      const key = kindKey(op, result);
      for (let slot = 0; slot < SLOT_COUNT; slot++) {
        const at = Word.SLOTS + 2 * slot;
        if (w[at] === 0) w[at] = key;
        if (w[at] === key) return ++w[at + 1];
      }
      w[Word.UNTRACKED]++;
      return 0;
    } finally {
      unlock(w, Word.LOCK);
    }
  }

  /** The counts, most frequent kind first. */
  summary(): MediumErrorSummary {
    const w = this.words;
    lock(w, Word.LOCK);
    try {
      const kinds: MediumErrorKind[] = [];
      for (let slot = 0; slot < SLOT_COUNT; slot++) {
        const at = Word.SLOTS + 2 * slot;
        if (w[at] === 0) break;
        kinds.push({ ...fromKey(w[at]), count: w[at + 1] });
      }
      kinds.sort((a, b) => b.count - a.count);
      const total = w[Word.TOTAL];
      if (total === 0) return { total, kinds };
      return {
        total,
        kinds,
        last: {
          op: w[Word.LAST_OP] as IoOpCode,
          result: w[Word.LAST_RESULT],
          offset: (w[Word.LAST_OFFSET_LOW] >>> 0) + (w[Word.LAST_OFFSET_HIGH] >>> 0) * TWO_POW_32,
        },
      };
    } finally {
      unlock(w, Word.LOCK);
    }
  }
}

// A kind is packed into one non-zero word: the operation (+1) in the top byte, -result below.
function kindKey(op: IoOpCode, result: number): number {
  return ((op + 1) << 24) | (-result & 0xff_ffff);
}

function fromKey(key: number): { op: IoOpCode; result: number } {
  return { op: ((key >>> 24) - 1) as IoOpCode, result: -(key & 0xff_ffff) };
}
