/**
 * The I/O-queue seam: how a thread hands block I/O to a medium and learns
 * that it finished, whether the medium completes at once (a file read with
 * pread, a RAM disk) or later (io_uring, a network disk). Modelled on
 * cloud-hypervisor's `AsyncIo`: operations go in with a token, completions
 * come out with that token and a result, and a synchronous medium is an
 * adapter that completes each operation as it is submitted
 * ({@linkcode SyncIoQueue}), so the code that runs requests exists once.
 *
 * - `submit` queues one operation; `commit` hands everything queued to the
 *   medium (one system call for a batch, for io_uring).
 * - `reap` hands every finished operation's token and result to a callback.
 * - DISCARD and WRITE_ZEROES carry ranges instead of guest memory: each
 *   range is given back (the medium may deallocate it) or made to read as
 *   zeros, all of them or the operation fails.
 * - Results are 0 (done, every byte moved) or negative: `-errno`, or
 *   {@linkcode IO_SHORT} when the medium ended before the last byte (a file
 *   shortened under the device). Partial transfers are the queue's to
 *   finish; a caller never sees one.
 *
 * The request record ({@linkcode IoRequest}) is the caller's and reused:
 * a queue copies what it keeps before `submit` returns. Browser-safe.
 *
 * @module
 */

import type { MemoryRegion } from "../memory/guest_memory.ts";

/** What an operation does. */
export const IoOp = {
  /** Read `length` bytes at `offset` into the vector. */
  READ: 0,
  /** Write the vector's `length` bytes at `offset`. */
  WRITE: 1,
  /** Make every write that completed before it stable (fdatasync). */
  FLUSH: 2,
  /** Give back each range (hole punching, BLKDISCARD); what they read afterwards is undefined. */
  DISCARD: 3,
  /** Make each range read as zeros; one marked unmap may be deallocated instead. */
  WRITE_ZEROES: 4,
} as const;

/** One of {@linkcode IoOp}'s values. */
export type IoOpCode = typeof IoOp[keyof typeof IoOp];

/** The result of an operation that ended before moving every byte (end of the medium). */
export const IO_SHORT: number = -4097;

/**
 * Whether the bytes `[offset, offset + length)` lie inside a medium (or a
 * `range=` window) of `size` bytes, compared without overflow. Every I/O
 * queue checks an operation with it before the medium sees it.
 */
export function withinMedium(offset: number, length: number, size: number): boolean {
  return offset >= 0 && length >= 0 && length <= size && offset <= size - length;
}

/** Names of the operations, for messages and counters. */
export const IO_OP_NAMES: Readonly<Record<IoOpCode, string>> = {
  [IoOp.READ]: "read",
  [IoOp.WRITE]: "write",
  [IoOp.FLUSH]: "flush",
  [IoOp.DISCARD]: "discard",
  [IoOp.WRITE_ZEROES]: "write-zeroes",
};

/**
 * The guest-memory pieces of one transfer, in order: `count` triples of a
 * region, an offset in it and a length. Filled by the caller per request,
 * reused; its capacity is the most segments a request may have.
 */
export class IoVector {
  /** Pieces in use. */
  count = 0;
  /** Total bytes of the pieces in use. */
  bytes = 0;
  /** The region of each piece. */
  readonly regions: MemoryRegion[];
  /** Offset of each piece in its region's bytes. */
  readonly offsets: Float64Array;
  /** Length of each piece. */
  readonly lengths: Float64Array;

  /** A vector of at most `capacity` pieces. */
  constructor(readonly capacity: number) {
    this.regions = new Array(capacity);
    this.offsets = new Float64Array(capacity);
    this.lengths = new Float64Array(capacity);
  }

  /** Empties the vector. */
  clear(): void {
    this.count = 0;
    this.bytes = 0;
  }

  /** Appends `length` bytes at `offset` of `region`. */
  push(region: MemoryRegion, offset: number, length: number): void {
    const i = this.count++;
    this.regions[i] = region;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.bytes += length;
  }
}

/**
 * The byte ranges of a DISCARD or WRITE_ZEROES: `count` of them, each an
 * offset and a length on the device, and whether it may be deallocated
 * (WRITE_ZEROES with unmap). Filled by the caller per request, reused.
 */
export class IoRanges {
  /** Ranges in use. */
  count = 0;
  /** Device byte offset of each range. */
  readonly offsets: Float64Array;
  /** Byte length of each range (never 0). */
  readonly lengths: Float64Array;
  /** 1 where a WRITE_ZEROES range may be deallocated rather than written. */
  readonly unmap: Uint8Array;

  /** Room for at most `capacity` ranges. */
  constructor(readonly capacity: number) {
    this.offsets = new Float64Array(capacity);
    this.lengths = new Float64Array(capacity);
    this.unmap = new Uint8Array(capacity);
  }

  /** Empties the list. */
  clear(): void {
    this.count = 0;
  }

  /** Appends `length` bytes at device offset `offset`. */
  push(offset: number, length: number, unmap: boolean): void {
    const i = this.count++;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.unmap[i] = unmap ? 1 : 0;
  }
}

/** One operation, as a queue receives it (the caller's record, reused). */
export interface IoRequest {
  /** What to do. */
  op: IoOpCode;
  /** Device byte offset (READ, WRITE; the lowest range's for DISCARD and WRITE_ZEROES). */
  offset: number;
  /** Where the data lives in guest memory (READ, WRITE); `bytes` is the length. */
  readonly vector: IoVector;
  /** What DISCARD and WRITE_ZEROES act on. */
  readonly ranges: IoRanges;
  /**
   * WRITE, DISCARD, WRITE_ZEROES: what it changed must be stable before the
   * operation completes (write-through).
   */
  durable: boolean;
  /**
   * The submitting thread may wait for this operation: none of its own I/O
   * waits to be reaped, and no request waits for it to run (none waits, or
   * other threads of its group can take it). A queue may then block the
   * thread and finish the operation inside `submit` where that is quicker
   * than handing it over (io_uring's durable writes). Work as short as a
   * copy to or from the page cache may run inside `submit` regardless, as
   * a cached read does inside `io_uring_enter`.
   */
  mayBlock: boolean;
}

/** A queue of I/O operations on one medium, used by one thread. */
export interface IoQueue {
  /**
   * Queues `request`; its completion carries `token`. Returns false when
   * the queue holds as many operations as it can: reap some, then retry.
   */
  submit(request: IoRequest, token: number): boolean;
  /** Hands what was submitted to the medium (a no-op where submit already did). */
  commit(): void;
  /**
   * Hands every finished operation to `done` (its token, then 0 or a
   * negative result); returns how many. Never blocks.
   */
  reap(done: (token: number, result: number) => void): number;
  /**
   * Blocks until an operation finished (returns at once when one has, or
   * when nothing is in flight). A thread that also waits for other events
   * waits on its own terms instead (see the engine's I/O threads). A queue
   * whose operations complete on the thread's event loop cannot block: its
   * `wait` returns at once, and callers wait through its `waiter`.
   */
  wait(): void;
  /** Operations submitted and not yet reaped. */
  readonly inFlight: number;
  /**
   * Where a thread whose queue completes asynchronously sleeps instead of
   * `Atomics.wait` (absent for queues that finish inside `submit`).
   */
  readonly waiter?: IoWaiter;
  /**
   * Ends every operation in flight at once: each completes (with a
   * failure) before this returns, and none touches its memory afterwards.
   * Only a queue whose operations complete on the thread's event loop has
   * it: a thread that cannot wait for them (it would block the loop that
   * completes them) abandons them instead, when a reset must be sure no
   * started request touches guest memory again.
   */
  abandon?(): void;
  /**
   * Releases the medium (operations still in flight are abandoned); a
   * promise when releasing takes a conversation with it (a network disk
   * says goodbye), resolving once done.
   */
  close(): void | Promise<void>;
}

/**
 * How a thread sleeps when its I/O completes asynchronously. One per
 * thread, shared by its queues; of one of two kinds:
 *
 * - `"kernel"` (io_uring): the thread blocks in the kernel until an
 *   operation finishes or its wake signal is signalled (a kick, work
 *   queued by another thread, a control message; `src/sync/wake_signal.ts`).
 * - `"event-loop"` (a network disk): completions arrive through callbacks
 *   on the thread's own event loop, so the thread must not block at all: it
 *   returns to its event loop while it has nothing runnable, and comes back
 *   when an operation finished ({@linkcode EventLoopIoWaiter.completion}) or
 *   the pool's WAKE word moved (`Atomics.waitAsync`).
 */
export type IoWaiter = KernelIoWaiter | EventLoopIoWaiter;

/** A thread that sleeps in the kernel until its I/O or its wake signal wakes it (io_uring). */
export interface KernelIoWaiter {
  /** Tells the kinds apart. */
  readonly kind: "kernel";
  /** Whether a completion or a wake-up is there already (no system call). */
  readonly ready: boolean;
  /** Blocks until an operation finishes or the wake signal is signalled. */
  sleep(): void;
}

/** A thread whose I/O completes on its own event loop (callbacks of sockets and timers). */
export interface EventLoopIoWaiter {
  /** Tells the kinds apart. */
  readonly kind: "event-loop";
  /** Whether an operation finished and waits to be reaped. */
  readonly ready: boolean;
  /** Resolves once an operation finished (at once if one has and was not reaped). */
  completion(): Promise<void>;
}
