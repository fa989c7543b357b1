/**
 * The blockif request pool: a fixed set of request elements, each in exactly
 * one of three queues — freeq, pendq, busyq — as in ACRN's block_if.c, kept
 * in a SharedArrayBuffer so the drainer and every I/O worker change it in
 * place. All queue changes happen under one Atomics-based mutex (PoolWord.LOCK):
 * each critical section is a few list-pointer updates and, at most, a scan
 * of the (at most 64-long) in-flight lists, and never does I/O.
 *
 * Ordering policy (ACRN's BLOCKED state, reworked). ACRN blocks a request
 * that starts where an in-flight one ends, to keep sequential streams in
 * order for a disk head. We block on what affects the data instead: a
 * request waits (BLOCKED) while an earlier request still in pendq or busyq
 * overlaps it and one of the two changes the medium. A read covers its one
 * byte range; a write covers its range and changes it; a DISCARD or
 * WRITE_ZEROES covers each of its ranges and changes them all (two
 * requests conflict when any range of one overlaps any range of the
 * other). Conflicting requests thus take effect in submission order, so a
 * guest that overlaps in-flight writes (or reads what it is writing) sees
 * one consistent order; non-conflicting requests run in parallel and
 * complete in any order. FLUSH blocks nothing and is blocked by nothing: it
 * must cover writes that completed before it was submitted (virtio 1.2
 * §5.2.6.2), and those are already out of busyq; its fdatasync starts after
 * they finished. A device may turn the policy off (`ordered` false at
 * enqueue: ACRN's `no_bst_block`): its requests then never wait, and
 * overlapping ones run in whatever order workers take them.
 *
 * Counters read without the lock. FREE_COUNT, RUNNABLE and BUSY_COUNT are
 * changed only under the lock but read outside it (a drainer checking for
 * free elements, a worker deciding whether to sleep or poll, quiesce()
 * waiting for busyq to empty). They are changed with Atomics read-modify-
 * writes, never plain stores: plain writes are not in the ECMAScript memory
 * model's order of sequentially consistent operations, so an `Atomics.load`
 * that does not also take the lock may read a stale value (on x86 V8 happens
 * to fence them; the model does not promise it). The STARVED handshake
 * needs the promise: the drainer stores STARVED then loads FREE_COUNT, a
 * finishing worker adds to FREE_COUNT then loads STARVED; with all four
 * sequentially consistent, at least one of them sees the other's write, so
 * a chain left on the ring for want of an element is always drained again.
 * RUNNABLE also moves once per critical section, straight from its old
 * value to its new one: a reader never sees an intermediate value (0 while
 * requests stay runnable would let a worker go to sleep).
 *
 * @module
 */

import { BlkRequest, changesMedium, RequestField } from "../blk/request.ts";
import { SECTOR_SIZE } from "../blk/spec.ts";
import { lock, unlock } from "../sync/mutex.ts";
import {
  ElementState,
  type ElementStateCode,
  ElementWord,
  NIL,
  type PoolDimensions,
  type PoolLayout,
  poolLayout,
  PoolWord,
} from "./pool_layout.ts";

/** Counts of elements per queue and state, for diagnostics and tests. */
export interface PoolCounts {
  /** Elements in freeq, ready to take a request. */
  readonly free: number;
  /** Elements in pendq: `runnable` plus `blocked`. */
  readonly pending: number;
  /** Elements of pendq a worker may start now (PENDING). */
  readonly runnable: number;
  /** Elements of pendq waiting for an earlier request they overlap to finish (BLOCKED). */
  readonly blocked: number;
  /** Elements in busyq: a worker is running their request. */
  readonly busy: number;
}

/** A view of a request pool from one thread. */
export class RequestPool {
  /** Where the header, element blocks and records lie in {@linkcode RequestPool.buffer}. */
  readonly layout: PoolLayout;
  /** Header and element words. */
  readonly words: Int32Array;
  readonly #records: Float64Array;
  readonly #views: BlkRequest[];

  /**
   * Views a pool that another thread created, or creates one.
   *
   * @param dimensions the pool's size
   * @param buffer an existing pool (from {@linkcode RequestPool.buffer}) to view;
   *   without one, a new pool is created with every element in freeq
   */
  constructor(dimensions: PoolDimensions, buffer?: SharedArrayBuffer) {
    this.layout = poolLayout(dimensions);
    const sab = buffer ?? new SharedArrayBuffer(this.layout.bytes);
    if (sab.byteLength !== this.layout.bytes) {
      throw new RangeError(`pool buffer must be ${this.layout.bytes} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(
      sab,
      0,
      this.layout.elementBase + dimensions.elements * ElementWord.COUNT,
    );
    this.#records = new Float64Array(
      sab,
      this.layout.recordBase * 8,
      dimensions.elements * this.layout.recordWords,
    );
    this.#views = [];
    for (let i = 0; i < dimensions.elements; i++) {
      this.#views.push(
        new BlkRequest(dimensions.segMax, this.#records, i * this.layout.recordWords),
      );
    }
    if (buffer === undefined) this.#initialise();
  }

  /** The pool's buffer, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** The request record of element `index`. */
  record(index: number): BlkRequest {
    return this.#views[index];
  }

  /** Which queue element `index` is in: FREE (freeq), BLOCKED or PENDING (pendq), BUSY (busyq). */
  state(index: number): ElementStateCode {
    return Atomics.load(this.words, this.#at(index, ElementWord.STATE)) as ElementStateCode;
  }

  // deviceOf, queueOf and generationOf are read by the thread that took the
  // element (takeRunnable): enqueue wrote them under the lock that thread
  // took since, and nobody writes them while the element is busy, so plain
  // reads see them (an Atomics.load is a builtin call, 5 ns here, per field).

  /** The device element `index`'s request belongs to (by the thread that took it). */
  deviceOf(index: number): number {
    return this.words[this.#at(index, ElementWord.DEVICE)];
  }

  /** The virtqueue element `index`'s request came from (by the thread that took it). */
  queueOf(index: number): number {
    return this.words[this.#at(index, ElementWord.QUEUE)];
  }

  /** The queue generation element `index` was popped in (by the thread that took it). */
  generationOf(index: number): number {
    return this.words[this.#at(index, ElementWord.GENERATION)];
  }

  /** Elements in freeq (read without the lock: a hint that only grows under a single drainer). */
  get freeCount(): number {
    return Atomics.load(this.words, PoolWord.FREE_COUNT);
  }

  /** Elements a worker could take now. */
  get runnableCount(): number {
    return Atomics.load(this.words, PoolWord.RUNNABLE);
  }

  /** Elements workers are running. */
  get busyCount(): number {
    return Atomics.load(this.words, PoolWord.BUSY_COUNT);
  }

  /** Elements of `device`'s queue `queueIndex` that workers are running (a scan of busyq). */
  busyFor(device: number, queueIndex: number): number {
    const w = this.words;
    if (Atomics.load(w, PoolWord.BUSY_COUNT) === 0) return 0;
    lock(w, PoolWord.LOCK);
    let count = 0;
    for (let i = w[PoolWord.BUSY_HEAD]; i !== NIL; i = w[this.#at(i, ElementWord.NEXT)]) {
      if (
        w[this.#at(i, ElementWord.DEVICE)] === device &&
        w[this.#at(i, ElementWord.QUEUE)] === queueIndex
      ) count++;
    }
    unlock(w, PoolWord.LOCK);
    return count;
  }

  /** A consistent snapshot of the queue sizes. */
  counts(): PoolCounts {
    const w = this.words;
    lock(w, PoolWord.LOCK);
    const counts = {
      free: w[PoolWord.FREE_COUNT],
      pending: w[PoolWord.PEND_COUNT],
      runnable: w[PoolWord.RUNNABLE],
      blocked: w[PoolWord.BLOCKED],
      busy: w[PoolWord.BUSY_COUNT],
    };
    unlock(w, PoolWord.LOCK);
    return counts;
  }

  /**
   * Takes an element off freeq, copies `request` into it and appends it to
   * pendq, BLOCKED if it conflicts with an earlier in-flight request and
   * PENDING otherwise. Returns that state, or -1 when freeq is empty.
   * `device` tells apart the devices that share the pool (requests of two
   * devices never conflict); `ordered` false (the device's `no_bst_block`)
   * makes the request PENDING whatever it overlaps.
   */
  enqueue(
    request: BlkRequest,
    queueIndex: number,
    generation: number,
    device = 0,
    ordered = true,
  ): number {
    const w = this.words;
    lock(w, PoolWord.LOCK);
    const index = w[PoolWord.FREE_HEAD];
    if (index === NIL) {
      unlock(w, PoolWord.LOCK);
      return -1;
    }
    w[PoolWord.FREE_HEAD] = w[this.#at(index, ElementWord.NEXT)];
    Atomics.sub(w, PoolWord.FREE_COUNT, 1); // read without the lock (see the module doc)
    this.#views[index].copyFrom(request);
    w[this.#at(index, ElementWord.QUEUE)] = queueIndex;
    w[this.#at(index, ElementWord.DEVICE)] = device;
    w[this.#at(index, ElementWord.GENERATION)] = generation;
    w[this.#at(index, ElementWord.SEQUENCE)] = w[PoolWord.SEQUENCE];
    w[PoolWord.SEQUENCE] = (w[PoolWord.SEQUENCE] + 1) | 0;
    if (changesMedium(request.kind)) w[PoolWord.WRITES_IN_FLIGHT]++;
    const blocked = ordered && this.#conflictsWithEarlier(index);
    const state = blocked ? ElementState.BLOCKED : ElementState.PENDING;
    this.#append(index, PoolWord.PEND_HEAD, PoolWord.PEND_TAIL);
    w[PoolWord.PEND_COUNT]++;
    if (blocked) w[PoolWord.BLOCKED]++;
    else Atomics.add(w, PoolWord.RUNNABLE, 1);
    Atomics.store(w, this.#at(index, ElementWord.STATE), state);
    unlock(w, PoolWord.LOCK);
    return state;
  }

  /** Moves the first PENDING element of pendq to busyq and returns it, or -1. */
  takeRunnable(): number {
    const w = this.words;
    if (Atomics.load(w, PoolWord.RUNNABLE) === 0) return -1;
    lock(w, PoolWord.LOCK);
    let index = w[PoolWord.PEND_HEAD];
    while (index !== NIL && w[this.#at(index, ElementWord.STATE)] !== ElementState.PENDING) {
      index = w[this.#at(index, ElementWord.NEXT)];
    }
    if (index !== NIL) {
      this.#remove(index, PoolWord.PEND_HEAD, PoolWord.PEND_TAIL);
      w[PoolWord.PEND_COUNT]--;
      this.#append(index, PoolWord.BUSY_HEAD, PoolWord.BUSY_TAIL);
      // Busy before no longer runnable: a look without the lock never misses the request.
      Atomics.add(w, PoolWord.BUSY_COUNT, 1);
      Atomics.sub(w, PoolWord.RUNNABLE, 1);
      Atomics.store(w, this.#at(index, ElementWord.STATE), ElementState.BUSY);
    }
    unlock(w, PoolWord.LOCK);
    return index;
  }

  /**
   * Returns a BUSY element to freeq once its request is complete, lets
   * blocked requests that no longer conflict run, and wakes a quiescing
   * thread. Returns how many requests became runnable.
   */
  finish(index: number): number {
    const w = this.words;
    lock(w, PoolWord.LOCK);
    if (w[this.#at(index, ElementWord.STATE)] !== ElementState.BUSY) {
      unlock(w, PoolWord.LOCK);
      throw new Error(`internal error: element ${index} finished but not busy`);
    }
    this.#remove(index, PoolWord.BUSY_HEAD, PoolWord.BUSY_TAIL);
    Atomics.sub(w, PoolWord.BUSY_COUNT, 1);
    this.#free(index);
    const released = this.#unblock();
    if (released > 0) Atomics.add(w, PoolWord.RUNNABLE, released);
    unlock(w, PoolWord.LOCK);
    Atomics.add(w, PoolWord.SETTLED, 1);
    if (Atomics.load(w, PoolWord.QUIESCING) > 0) Atomics.notify(w, PoolWord.SETTLED);
    return released;
  }

  /**
   * Drops every element of queue `queueIndex` (of `device`) still in pendq whose
   * generation is not `generation` (the queue was reset): returned to freeq
   * without running. Requests of other queues that were BLOCKED behind a
   * dropped one become runnable, and workers are woken for them. Returns
   * how many were dropped.
   */
  abandon(queueIndex: number, generation: number, device = 0): number {
    const w = this.words;
    lock(w, PoolWord.LOCK);
    let dropped = 0;
    let droppedRunnable = 0;
    let index = w[PoolWord.PEND_HEAD];
    while (index !== NIL) {
      const next = w[this.#at(index, ElementWord.NEXT)];
      if (
        w[this.#at(index, ElementWord.QUEUE)] === queueIndex &&
        w[this.#at(index, ElementWord.DEVICE)] === device &&
        w[this.#at(index, ElementWord.GENERATION)] !== generation
      ) {
        const state = w[this.#at(index, ElementWord.STATE)];
        this.#remove(index, PoolWord.PEND_HEAD, PoolWord.PEND_TAIL);
        w[PoolWord.PEND_COUNT]--;
        if (state === ElementState.BLOCKED) w[PoolWord.BLOCKED]--;
        else droppedRunnable++;
        this.#free(index);
        dropped++;
      }
      index = next;
    }
    const released = this.#unblock();
    // One step from the old count to the new: dropping first and releasing
    // after would show RUNNABLE 0 for a moment while requests stay runnable.
    if (released !== droppedRunnable) Atomics.add(w, PoolWord.RUNNABLE, released - droppedRunnable);
    unlock(w, PoolWord.LOCK);
    // A worker that looked before the release may be going to sleep on WAKE.
    this.wake(released);
    return dropped;
  }

  /**
   * Wakes up to `count` workers sleeping on WAKE for requests that became
   * runnable. WAKE is bumped before the notify, so a worker that looked for
   * work before the change and is about to sleep on the value it saw does
   * not sleep (its `Atomics.wait` on the old value returns at once).
   */
  wake(count: number): void {
    if (count <= 0) return;
    Atomics.add(this.words, PoolWord.WAKE, 1);
    Atomics.notify(this.words, PoolWord.WAKE, count);
  }

  // ---------------------------------------------------------------------------

  #at(index: number, word: number): number {
    return this.layout.elementBase + index * ElementWord.COUNT + word;
  }

  #initialise(): void {
    const w = this.words;
    const n = this.layout.elements;
    for (let i = 0; i < n; i++) {
      w[this.#at(i, ElementWord.STATE)] = ElementState.FREE;
      w[this.#at(i, ElementWord.NEXT)] = i + 1 < n ? i + 1 : NIL;
      w[this.#at(i, ElementWord.PREV)] = NIL;
    }
    w[PoolWord.FREE_HEAD] = 0;
    w[PoolWord.FREE_COUNT] = n;
    for (
      const head of [PoolWord.PEND_HEAD, PoolWord.PEND_TAIL, PoolWord.BUSY_HEAD, PoolWord.BUSY_TAIL]
    ) {
      w[head] = NIL;
    }
  }

  /** Pushes an element (already off its list) onto freeq. Caller holds the lock. */
  #free(index: number): void {
    const w = this.words;
    if (changesMedium(this.#views[index].kind)) w[PoolWord.WRITES_IN_FLIGHT]--;
    w[this.#at(index, ElementWord.NEXT)] = w[PoolWord.FREE_HEAD];
    w[this.#at(index, ElementWord.PREV)] = NIL;
    w[PoolWord.FREE_HEAD] = index;
    Atomics.add(w, PoolWord.FREE_COUNT, 1); // read without the lock (see the module doc)
    Atomics.store(w, this.#at(index, ElementWord.STATE), ElementState.FREE);
  }

  #append(index: number, headWord: number, tailWord: number): void {
    const w = this.words;
    const tail = w[tailWord];
    w[this.#at(index, ElementWord.PREV)] = tail;
    w[this.#at(index, ElementWord.NEXT)] = NIL;
    if (tail === NIL) w[headWord] = index;
    else w[this.#at(tail, ElementWord.NEXT)] = index;
    w[tailWord] = index;
  }

  #remove(index: number, headWord: number, tailWord: number): void {
    const w = this.words;
    const prev = w[this.#at(index, ElementWord.PREV)];
    const next = w[this.#at(index, ElementWord.NEXT)];
    if (prev === NIL) w[headWord] = next;
    else w[this.#at(prev, ElementWord.NEXT)] = next;
    if (next === NIL) w[tailWord] = prev;
    else w[this.#at(next, ElementWord.PREV)] = prev;
  }

  /**
   * Makes PENDING every BLOCKED element that no earlier in-flight request
   * conflicts with, and returns how many: the caller adds them to RUNNABLE
   * (in one step with its own change of it). Caller holds the lock.
   */
  #unblock(): number {
    const w = this.words;
    if (w[PoolWord.BLOCKED] === 0) return 0;
    let released = 0;
    for (
      let index = w[PoolWord.PEND_HEAD];
      index !== NIL;
      index = w[this.#at(index, ElementWord.NEXT)]
    ) {
      if (w[this.#at(index, ElementWord.STATE)] !== ElementState.BLOCKED) continue;
      if (this.#conflictsWithEarlier(index)) continue;
      Atomics.store(w, this.#at(index, ElementWord.STATE), ElementState.PENDING);
      w[PoolWord.BLOCKED]--;
      released++;
    }
    return released;
  }

  /**
   * Whether element `index` conflicts with an element submitted before it
   * that is still in busyq or pendq: both touch the medium's bytes, a byte
   * range of one overlaps a byte range of the other, and at least one
   * changes them. Caller holds the lock.
   */
  #conflictsWithEarlier(index: number): boolean {
    const request = this.#views[index];
    if (request.extentCount === 0) return false;
    if (!changesMedium(request.kind) && this.words[PoolWord.WRITES_IN_FLIGHT] === 0) return false;
    return this.#conflictIn(PoolWord.BUSY_HEAD, index) ||
      this.#conflictIn(PoolWord.PEND_HEAD, index);
  }

  /** {@linkcode #conflictsWithEarlier} for the list starting at `headWord`. */
  #conflictIn(headWord: number, index: number): boolean {
    const w = this.words;
    const request = this.#views[index];
    const changes = changesMedium(request.kind);
    const sequence = w[this.#at(index, ElementWord.SEQUENCE)];
    const device = w[this.#at(index, ElementWord.DEVICE)];
    // The span every byte range of the request lies in (the one range of a read or write).
    const start = request.fields[request.base + RequestField.SECTOR] * SECTOR_SIZE;
    const end = start + request.fields[request.base + RequestField.DATA_LENGTH];
    for (let other = w[headWord]; other !== NIL; other = w[this.#at(other, ElementWord.NEXT)]) {
      // Only earlier submissions count; the difference wraps like the counter.
      if (((w[this.#at(other, ElementWord.SEQUENCE)] - sequence) | 0) >= 0) continue;
      // Requests of different devices share no medium.
      if (w[this.#at(other, ElementWord.DEVICE)] !== device) continue;
      const o = this.#views[other];
      if (o.extentCount === 0 || !(changes || changesMedium(o.kind))) continue;
      const otherStart = o.fields[o.base + RequestField.SECTOR] * SECTOR_SIZE;
      const otherEnd = otherStart + o.fields[o.base + RequestField.DATA_LENGTH];
      if (otherStart < end && start < otherEnd && extentsOverlap(request, o)) return true;
    }
    return false;
  }
}

/**
 * Whether a byte range of `a` overlaps a byte range of `b` (requests with
 * several ranges: DISCARD, WRITE_ZEROES). A pair of at most 256 ranges each
 * is compared range by range; the caller has already seen their spans overlap.
 */
function extentsOverlap(a: BlkRequest, b: BlkRequest): boolean {
  const countA = a.extentCount;
  const countB = b.extentCount;
  if (countA === 1 && countB === 1) return true; // the spans are the ranges
  for (let i = 0; i < countA; i++) {
    const start = a.extentStart(i);
    const end = a.extentEnd(i);
    for (let j = 0; j < countB; j++) {
      if (b.extentStart(j) < end && start < b.extentEnd(j)) return true;
    }
  }
  return false;
}
