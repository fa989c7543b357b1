/**
 * The wake signal of threads that sleep in their io_uring: an eventfd in
 * semaphore mode. Each sleeping thread's ring has one 8-byte read pending on
 * it; a write of `n` completes up to `n` of those reads, one per thread, so
 * `signal(n)` wakes up to `n` threads, as `Atomics.notify(…, n)` would. A
 * signal nobody waits for stays counted and makes a later wait return at
 * once: a spurious wake-up, never a lost one. Deno on Linux only.
 *
 * @module
 */

import { type WakeSignalHandle, wakeSignals } from "../../sync/wake_signal.ts";
import { errno, ioUringSys, Linux, SyscallError } from "./sys.ts";

/** Linux's EFD_SEMAPHORE: each read takes one from the counter. */
const EFD_SEMAPHORE = 1;

/** The handle of an eventfd wake signal. */
export interface EventFdWakeHandle extends WakeSignalHandle {
  /** Tells this kind of handle apart. */
  readonly kind: "eventfd";
  /** The eventfd (process-wide, so valid on every thread). */
  readonly fd: number;
}

/**
 * Creates the eventfd of a new wake signal (closed through its
 * `WakeSignal.close` once no thread waits on it).
 *
 * @throws {SyscallError} when eventfd fails
 */
export function createEventFdWake(): EventFdWakeHandle {
  const fd = ioUringSys().eventfd(0, EFD_SEMAPHORE | Linux.EFD_NONBLOCK | Linux.EFD_CLOEXEC);
  if (fd < 0) throw new SyscallError("eventfd", errno());
  return { module: import.meta.url, kind: "eventfd", fd };
}

/** The 8 bytes a signal writes (reused: this thread's only). */
const increment = new BigUint64Array(1);

/** Adds `count` to the eventfd: nonblocking, and a counter that is full already is left as it is. */
export function signalEventFd(fd: number, count: number): void {
  if (count <= 0) return;
  increment[0] = BigInt(count);
  ioUringSys().write(fd, increment, 8n);
}

wakeSignals.register(import.meta.url, (handle) => {
  const { fd } = handle as EventFdWakeHandle;
  return {
    signal: (count) => signalEventFd(fd, count),
    close: () => ioUringSys().close(fd),
  };
});
