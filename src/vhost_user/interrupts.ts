/**
 * Interrupts of a vhost-user device: a used-buffer notification is a write
 * to the queue's call eventfd, "needs reset" a write to its err eventfd
 * (vhost-user SET_VRING_CALL / SET_VRING_ERR). The numbers in the handle are
 * the session's stable fds ({@linkcode StableEventFd}), valid for as long as
 * the device exists, so any thread (a blockif Worker included: Deno's FFI
 * works there) builds its own sink from the handle and signals them.
 *
 * A signal never waits: the front end owns these eventfds and may make a
 * write to them block (O_NONBLOCK cleared, counter full), so they are
 * signalled through the kernel ({@linkcode EventFdSignaller}); a signal the
 * eventfd cannot take is dropped, as a full counter already says "look at
 * the ring".
 *
 * @module
 */

import {
  type InterruptHandle,
  type InterruptSink,
  interruptSinks,
} from "../virtio/transport_state.ts";
import { EventFdSignaller, type KernelSignalHandle } from "./kernel_signal.ts";

/**
 * vhost-user's interrupt handle: one call and one err eventfd per queue,
 * whose numbers stay valid while the device exists, and the process's
 * Linux AIO context that signals them without ever waiting.
 */
export interface EventFdInterruptHandle extends InterruptHandle {
  readonly kind: "eventfd";
  readonly call: readonly number[];
  readonly err: readonly number[];
  readonly signal: KernelSignalHandle;
}

/** The handle of a sink that signals `call` and `err` (one fd of each per queue). */
export function eventFdInterruptHandle(
  call: readonly number[],
  err: readonly number[],
  signal: KernelSignalHandle,
): EventFdInterruptHandle {
  return { module: import.meta.url, kind: "eventfd", call, err, signal };
}

/** An {@linkcode InterruptSink} that writes to per-queue eventfds. */
export class EventFdInterruptSink implements InterruptSink {
  readonly #call: readonly number[];
  readonly #err: readonly number[];
  readonly #signaller: EventFdSignaller;

  /** @param handle the stable call and err fds, one of each per queue, and the AIO context */
  constructor(handle: EventFdInterruptHandle) {
    this.#call = [...handle.call];
    this.#err = [...handle.err];
    this.#signaller = new EventFdSignaller(handle.signal);
  }

  usedBuffers(queueIndex: number): void {
    const fd = this.#call[queueIndex];
    if (fd !== undefined) this.#signaller.signal(fd);
  }

  needsReset(queueIndex: number): void {
    const fd = this.#err[queueIndex];
    if (fd !== undefined) this.#signaller.signal(fd);
  }
}

/**
 * Builds the interrupt sink of an eventfd handle on the calling thread.
 *
 * @example In a worker that received the handle
 * ```ts
 * const sink = eventFdInterruptSink(init.interrupts);
 * sink.usedBuffers(0); // the guest gets its interrupt
 * ```
 */
export function eventFdInterruptSink(handle: EventFdInterruptHandle): InterruptSink {
  return new EventFdInterruptSink(handle);
}

interruptSinks.register(
  import.meta.url,
  (handle) => new EventFdInterruptSink(handle as EventFdInterruptHandle),
);
