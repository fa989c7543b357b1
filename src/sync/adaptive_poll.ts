/**
 * Adaptive polling in the manner of QEMU's iothread `poll-max-ns`: before a
 * thread goes to sleep waiting for work, it may spin for a while checking
 * whether work arrived, because waking a sleeping thread on another CPU
 * costs tens of microseconds. How long it spins adapts to how long it
 * actually had to sleep:
 *
 * - a sleep shorter than the maximum means spinning would have caught the
 *   work: the window grows (doubling from {@linkcode POLL_START_NS});
 * - a sleep longer than the maximum means the thread is idle: the window
 *   halves, down to nothing, so an idle device never spins.
 *
 * @module
 */

/** First non-zero window, as QEMU's poll_grow starting point (4 µs). */
export const POLL_START_NS = 4000;

/** How many times {@linkcode AdaptivePoll.spin} checks for work between two clock reads. */
const CHECKS_PER_CLOCK_READ = 16;

/** One thread's polling window. Not shared: each thread keeps its own. */
export class AdaptivePoll {
  /** Current window in nanoseconds (0: go straight to sleep). */
  windowNs = 0;

  /** @param maxNs the largest window (0 disables polling) */
  constructor(readonly maxNs: number) {}

  /**
   * Spins until `ready()` is true or the window passes. Returns whether work
   * arrived while spinning.
   */
  spin(ready: () => boolean): boolean {
    if (this.windowNs === 0) return false;
    const deadline = performance.now() + this.windowNs / 1e6;
    do {
      // Reading the clock costs more than a look at shared memory: look often, read it rarely.
      for (let i = 0; i < CHECKS_PER_CLOCK_READ; i++) if (ready()) return true;
    } while (performance.now() < deadline);
    return ready();
  }

  /** Adapts the window to a sleep that lasted `sleptNs`. */
  slept(sleptNs: number): void {
    if (this.maxNs === 0) return;
    if (sleptNs < this.maxNs) {
      this.windowNs = Math.min(this.maxNs, this.windowNs === 0 ? POLL_START_NS : this.windowNs * 2);
    } else {
      this.windowNs = this.windowNs <= POLL_START_NS ? 0 : this.windowNs / 2;
    }
  }
}
