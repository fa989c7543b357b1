/**
 * Layout of one virtqueue's shared state: the words every thread that serves
 * the queue (the device model, drainers, I/O workers) reads and changes with
 * Atomics. This module owns every offset of that region; {@linkcode
 * QueueStateBuffer} builds the views.
 *
 * Words are Int32. Ring indexes are kept free-running in 32 bits and masked
 * to 16 bits where the ring holds them (virtio 1.2 §2.7.6: indexes wrap at
 * 2^16).
 *
 * @module
 */

/** Word indexes in a queue's state region. */
export const QueueWord = {
  /** 1 while the ring is configured, valid and may be served. */
  READY: 0,
  /** Queue size N (a power of two). */
  SIZE: 1,
  /** Bumped at every activation, disable and reset; work of an older generation is abandoned. */
  GENERATION: 2,
  DESC_LOW: 3,
  DESC_HIGH: 4,
  AVAIL_LOW: 5,
  AVAIL_HIGH: 6,
  USED_LOW: 7,
  USED_HIGH: 8,
  /** The driver's accepted feature bits 0–31 (INDIRECT_DESC, EVENT_IDX matter here). */
  FEATURES: 9,
  /** Next available-ring index the device will take (last_avail_idx). */
  NEXT_AVAIL: 10,
  /** Next used-ring index the device will publish (shadow of used.idx). */
  NEXT_USED: 11,
  /** used.idx at the last interrupt, for EVENT_IDX (virtio 1.2 §2.7.10). */
  SIGNALLED_USED: 12,
  /** 1 when SIGNALLED_USED holds a value since the last reset. */
  SIGNALLED_VALID: 13,
  /** 1 once the guest has corrupted the queue; cleared only by reset. */
  BROKEN: 14,
  /** Mutex: one thread at a time takes chains off the available ring. */
  AVAIL_LOCK: 15,
  /** Mutex: one thread at a time publishes on the used ring. */
  USED_LOCK: 16,
  /** Chains popped and not yet returned on the used ring. */
  IN_FLIGHT: 17,
  /** Most descriptors one chain may have (direct and indirect together). */
  MAX_CHAIN: 18,
  /**
   * 1 while no chain may be taken off the available ring although the
   * queue is ready (a ring stop waiting for the chains taken to complete);
   * cleared by activation and disable.
   */
  PAUSED: 19,
  /** First of N words: 1 while that head index is in flight. */
  HEADS: 20,
} as const;

/** Int32 words needed for a queue of at most `maxQueueSize` entries. */
export function queueStateWords(maxQueueSize: number): number {
  return QueueWord.HEADS + maxQueueSize;
}

/** One queue's shared state, over a SharedArrayBuffer any thread can view. */
export class QueueStateBuffer {
  /** The state words. */
  readonly words: Int32Array;

  /**
   * Views a queue state region that another thread created, or creates one
   * (the queue not ready until activated).
   *
   * @param maxQueueSize the largest queue size the region must hold
   * @param buffer an existing region (from {@linkcode QueueStateBuffer.buffer}) to view
   */
  constructor(readonly maxQueueSize: number, buffer?: SharedArrayBuffer) {
    const bytes = queueStateWords(maxQueueSize) * Int32Array.BYTES_PER_ELEMENT;
    const sab = buffer ?? new SharedArrayBuffer(bytes);
    if (sab.byteLength !== bytes) {
      throw new RangeError(`queue state region must be ${bytes} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(sab);
  }

  /** The region, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }
}
