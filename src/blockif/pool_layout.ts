/**
 * Layout of the blockif request pool: one SharedArrayBuffer holding the
 * pool's header words, one small block of words per request element, and
 * one request record per element (the typed request of
 * `src/blk/request.ts`, written by the drainer, read by the worker that
 * runs it). This module owns every offset of that buffer.
 *
 * ```
 * [ header: HEADER_WORDS × Int32 ][ elements × ELEMENT_WORDS × Int32 ][ pad to 8 ][ elements × record × Float64 ]
 * ```
 *
 * @module
 */

import { requestRecordWords } from "../blk/request.ts";

/** Header word indexes. */
export const PoolWord = {
  /** Mutex guarding the three queues and element states (src/sync/mutex.ts). */
  LOCK: 0,
  /** freeq: a stack linked through NEXT; -1 when empty. */
  FREE_HEAD: 1,
  FREE_COUNT: 2,
  /** pendq: a doubly linked list in submission order (blocked and pending elements). */
  PEND_HEAD: 3,
  PEND_TAIL: 4,
  PEND_COUNT: 5,
  /** Elements of pendq in state PENDING (runnable now). */
  RUNNABLE: 6,
  /** Elements of pendq in state BLOCKED (waiting for a conflicting request). */
  BLOCKED: 7,
  /** busyq: a doubly linked list of elements a worker is running. */
  BUSY_HEAD: 8,
  BUSY_TAIL: 9,
  BUSY_COUNT: 10,
  /**
   * Requests that change the medium (WRITE, DISCARD, WRITE_ZEROES) in pendq
   * or busyq (lets a READ skip the conflict scan when 0).
   */
  WRITES_IN_FLIGHT: 11,
  /** Submission counter: each enqueued element gets the next value. */
  SEQUENCE: 12,
  /** Workers sleep on this word; it is bumped when work may be waiting. */
  WAKE: 13,
  /** Bumped whenever an element leaves busyq; a quiescing thread waits on it. */
  SETTLED: 14,
  /** The doorbell of the device-dispatch mode (the device thread drains on it). */
  KICK: 15,
  /** 1 once the drainer stopped because freeq was empty; the next finish drains again. */
  STARVED: 16,
  /** 1 when the engine is closing: workers leave their loop. */
  CLOSING: 17,
  /** Workers currently asleep on WAKE. */
  IDLE: 18,
  /** Requests completed by workers (statistics). */
  COMPLETED: 19,
  /**
   * Bumped (with WAKE) when the engine posted a control message to its
   * threads (a device attached or detached, new guest memory): a thread that
   * sees it change leaves its loop to read the message, then comes back.
   */
  CONTROL: 20,
  /** Mutex word: held by the one worker that polls for work instead of sleeping. */
  POLLER: 21,
  /** Threads waiting in quiesce(); finish() notifies SETTLED only when non-zero. */
  QUIESCING: 22,
  /** Header size in words. */
  COUNT: 24,
} as const;

/** Word indexes inside an element's block. */
export const ElementWord = {
  STATE: 0,
  /** Next element in the element's queue, or -1. */
  NEXT: 1,
  /** Previous element in pendq/busyq, or -1. */
  PREV: 2,
  /** Index of the virtqueue the request came from. */
  QUEUE: 3,
  /** The queue's generation when the chain was popped. */
  GENERATION: 4,
  /** Submission order (PoolWord.SEQUENCE at enqueue). */
  SEQUENCE: 5,
  /**
   * The device the request belongs to, when devices share the pool's
   * threads (its index among the devices attached to them).
   */
  DEVICE: 6,
  /** Words per element. */
  COUNT: 8,
} as const;

/** Element states. An element is in freeq (FREE), pendq (BLOCKED, PENDING) or busyq (BUSY). */
export const ElementState = {
  FREE: 0,
  /** In pendq behind a conflicting earlier request (the ordering policy). */
  BLOCKED: 1,
  /** In pendq, runnable. */
  PENDING: 2,
  /** In busyq: a worker is running it. */
  BUSY: 3,
} as const;

/** One of {@linkcode ElementState}'s values. */
export type ElementStateCode = typeof ElementState[keyof typeof ElementState];

/** The list terminator. */
export const NIL = -1;

/** Sizes that define a pool's layout. */
export interface PoolDimensions {
  /** Request elements (ACRN: 64). */
  readonly elements: number;
  /** Data segments or ranges one request record holds (`recordSlots`: seg_max, or more). */
  readonly segMax: number;
}

/** Where everything of a pool with `dimensions` lies. */
export interface PoolLayout extends PoolDimensions {
  /** Int32 index of element 0's block. */
  readonly elementBase: number;
  /** Float64 index of element 0's record. */
  readonly recordBase: number;
  /** Float64 words per record. */
  readonly recordWords: number;
  /** Total bytes. */
  readonly bytes: number;
}

/** Computes the layout of a pool. */
export function poolLayout(dimensions: PoolDimensions): PoolLayout {
  const { elements, segMax } = dimensions;
  if (!Number.isInteger(elements) || elements < 1 || elements > 65536) {
    throw new RangeError(`pool of ${elements} elements: must be 1 to 65536`);
  }
  const intWords = PoolWord.COUNT + elements * ElementWord.COUNT;
  const recordByteOffset = Math.ceil((intWords * 4) / 8) * 8;
  const recordWords = requestRecordWords(segMax);
  return {
    elements,
    segMax,
    elementBase: PoolWord.COUNT,
    recordBase: recordByteOffset / 8,
    recordWords,
    bytes: recordByteOffset + elements * recordWords * 8,
  };
}
