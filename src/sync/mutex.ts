/**
 * A small mutex over one Int32 word of a SharedArrayBuffer, after Drepper's
 * "Futexes Are Tricky" (mutex 3): 0 = unlocked, 1 = locked, 2 = locked with
 * possible waiters. Uncontended lock and unlock are one compare-exchange
 * each; a contended thread sleeps in `Atomics.wait` instead of spinning, which
 * matters on a 2-core machine where the holder may be descheduled (a web
 * page's main thread, which may not sleep, spins: `wait.ts`).
 *
 * Critical sections guarded by these locks are a few hundred instructions
 * (moving a ring index, a list link) and never do I/O or wait.
 *
 * @module
 */

import { waitFor } from "./wait.ts";

const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;

/** Brief spin before sleeping: enough to ride out a short critical section. */
const SPIN_ROUNDS = 64;

/** Takes the lock in `words[index]`, sleeping while another thread holds it. */
export function lock(words: Int32Array, index: number): void {
  let state = Atomics.compareExchange(words, index, UNLOCKED, LOCKED);
  if (state === UNLOCKED) return;
  for (let i = 0; i < SPIN_ROUNDS && state !== UNLOCKED; i++) {
    state = Atomics.load(words, index);
    if (state === UNLOCKED) {
      state = Atomics.compareExchange(words, index, UNLOCKED, LOCKED);
      if (state === UNLOCKED) return;
    }
  }
  if (state !== CONTENDED) state = Atomics.exchange(words, index, CONTENDED);
  while (state !== UNLOCKED) {
    waitFor(words, index, CONTENDED);
    state = Atomics.exchange(words, index, CONTENDED);
  }
}

/** Takes the lock if it is free; never waits. */
export function tryLock(words: Int32Array, index: number): boolean {
  return Atomics.compareExchange(words, index, UNLOCKED, LOCKED) === UNLOCKED;
}

/** Releases the lock in `words[index]` and wakes one waiter if there may be one. */
export function unlock(words: Int32Array, index: number): void {
  if (Atomics.sub(words, index, 1) !== LOCKED) {
    Atomics.store(words, index, UNLOCKED);
    Atomics.notify(words, index, 1);
  }
}
