/**
 * Waking a thread that sleeps somewhere `Atomics.notify` cannot reach. V8's
 * `Atomics.wait` keeps its own wait lists: a thread blocked in the kernel
 * (in `io_uring_enter`, waiting for completions) is not woken by a notify on
 * a shared word. Such a thread also waits on a wake signal (an eventfd its
 * ring reads), and everyone who would notify it — a doorbell's ring, another
 * worker that queued work for it, the engine posting a control message —
 * signals that too. A wake signal reaches other threads as a handle naming
 * the module that opens it (`src/runtime/plugins.ts`); this module is the
 * registry. Browser-safe.
 *
 * @module
 */

import { type PluginHandle, PluginRegistry } from "../runtime/plugins.ts";

/** A structured-cloneable reference to a wake signal. */
export interface WakeSignalHandle extends PluginHandle {
  /** The kind of signal, for messages. */
  readonly kind: string;
}

/** A wake signal, opened on one thread. */
export interface WakeSignal {
  /**
   * Wakes up to `count` threads waiting on the signal (each takes one). A
   * thread about to wait again may take one meant for another: fine for
   * work, which whoever wakes picks up, not for news every thread must hear.
   */
  signal(count: number): void;
  /** Wakes every thread of the group, each through its own part of the signal (control, close). */
  signalAll(): void;
  /**
   * Counts this thread as waiting on the signal from now on (until
   * {@linkcode endWait}). A signal may cost nothing while nobody is counted:
   * a thread must count itself before its last look for work, and every
   * waker must make its work visible before it signals.
   */
  beginWait(): void;
  /** Counts this thread as no longer waiting. */
  endWait(): void;
  /** Releases what the signal holds (an fd), once no thread waits on it any more. */
  close(): void;
}

/** Makes the wake signal of a group of `threads` threads (each gets its own part). */
export type WakeSignalFactory = (threads: number) => WakeSignalHandle;

/** How each kind of wake signal is opened from its handle, by module. */
export const wakeSignals: PluginRegistry<(handle: WakeSignalHandle) => WakeSignal> =
  new PluginRegistry("wake signal");

/** Opens `handle` on this thread (its module loaded here). */
export function openWakeSignal(handle: WakeSignalHandle): WakeSignal {
  return wakeSignals.get(handle)(handle);
}
