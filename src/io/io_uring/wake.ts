/**
 * The wake signal of threads that sleep in their io_uring: eventfds their
 * rings have 8-byte reads pending on.
 *
 * - One shared eventfd in semaphore mode, for work: a write of `n` completes
 *   up to `n` reads (each takes one from the counter), so `signal(n)` wakes
 *   up to `n` threads, as `Atomics.notify(…, n)` would. Whoever reads first
 *   takes one, though: a thread that wakes and waits again before a slower
 *   one's read runs may take that one's too (measured: three threads, two
 *   saw a control message, one slept on). Work is not lost that way — the
 *   thread that took it looks for work before it waits again.
 * - One eventfd per thread, for news every thread must hear (a control
 *   message, closing): `signalAll()` writes each.
 *
 * Threads count themselves as waiting before they sleep in their rings, and
 * a signal while none is counted writes nothing: the pool's words, which
 * every waker bumps and notifies first, reach threads sleeping anywhere
 * else. A signal nobody takes stays counted and makes a later wait return
 * at once: a spurious wake-up, never a lost one. Deno on Linux only.
 *
 * @module
 */

import { type WakeSignalHandle, wakeSignals } from "../../sync/wake_signal.ts";
import { errno, ioUringSys, Linux, SyscallError } from "./sys.ts";

/** Linux's EFD_SEMAPHORE: each read takes one from the counter. */
const EFD_SEMAPHORE = 1;

/** The handle of an eventfd wake signal (its fds are process-wide, so valid on every thread). */
export interface EventFdWakeHandle extends WakeSignalHandle {
  /** Tells this kind of handle apart. */
  readonly kind: "eventfd";
  /** The shared eventfd, in semaphore mode. */
  readonly fd: number;
  /** Each thread's own eventfd, by its index in the group. */
  readonly threadFds: readonly number[];
  /** One Int32: the threads waiting in their rings now (no write while it is 0). */
  readonly waiters: SharedArrayBuffer;
}

/**
 * Creates the eventfds of a new wake signal for `threads` threads (closed
 * through its `WakeSignal.close` once no thread waits on them).
 *
 * @throws {SyscallError} when eventfd fails (none is left open)
 */
export function createEventFdWake(threads: number): EventFdWakeHandle {
  const fds: number[] = [];
  for (let i = 0; i <= threads; i++) {
    // Blocking: io_uring answers a read of a nonblocking eventfd with EAGAIN
    // at once instead of waiting for it (the sleeping thread would spin).
    // Writes never block: the counter would have to reach 2^64 - 2.
    const fd = ioUringSys().eventfd(0, (i === 0 ? EFD_SEMAPHORE : 0) | Linux.EFD_CLOEXEC);
    if (fd < 0) {
      const code = errno();
      for (const open of fds) ioUringSys().close(open);
      throw new SyscallError("eventfd", code);
    }
    fds.push(fd);
  }
  return {
    module: import.meta.url,
    kind: "eventfd",
    fd: fds[0],
    threadFds: fds.slice(1),
    waiters: new SharedArrayBuffer(4),
  };
}

/** The 8 bytes a signal writes (reused: this thread's only). */
const increment = new BigUint64Array(1);

/** Adds `count` to the eventfd. Never blocks: the counter cannot come near its limit. */
export function signalEventFd(fd: number, count: number): void {
  if (count <= 0) return;
  increment[0] = BigInt(count);
  ioUringSys().write(fd, increment, 8n);
}

wakeSignals.register(import.meta.url, (handle) => {
  const { fd, threadFds, waiters } = handle as EventFdWakeHandle;
  const waiting = new Int32Array(waiters);
  // Nobody in a ring: the pool's words, bumped and notified before this, wake everyone.
  const anyoneWaits = () => Atomics.load(waiting, 0) > 0;
  return {
    signal: (count) => {
      if (anyoneWaits()) signalEventFd(fd, Math.min(count, Atomics.load(waiting, 0)));
    },
    signalAll: () => {
      if (!anyoneWaits()) return;
      for (const own of threadFds) signalEventFd(own, 1);
    },
    beginWait: () => void Atomics.add(waiting, 0, 1),
    endWait: () => void Atomics.sub(waiting, 0, 1),
    close: () => {
      for (const open of [fd, ...threadFds]) ioUringSys().close(open);
    },
  };
});
