/**
 * An {@linkcode IoQueue} over an NBD connection (`src/nbd/`): each thread
 * that serves an NBD disk has one, on a connection of its own, with as
 * many requests in flight as the thread has pool elements. The client
 * completes requests from its socket's callbacks and timers, on this
 * thread's event loop: the queue collects the results for `reap` and
 * tells the thread's {@linkcode EventLoopWaiter}, which the thread awaits
 * instead of blocking (see `BlockifServer.idle`).
 *
 * - READ, WRITE and FLUSH become NBD_CMD_READ, WRITE and FLUSH, DISCARD
 *   and WRITE_ZEROES one NBD_CMD_TRIM or NBD_CMD_WRITE_ZEROES per range
 *   (NBD_CMD_FLAG_NO_HOLE where the guest did not allow unmapping); the
 *   seam's numbers are the client's. A durable (write-through) operation
 *   is a FUA one, or the operation and then a FLUSH where the export has
 *   no FUA: it completes only once the server said it is stable. An
 *   operation of several ranges completes when every range has, with the
 *   first failure as its result.
 * - A write completes only after the server's reply; a failure is -errno
 *   (`ECONNRESET` when the connection was lost with the request in flight,
 *   `ETIMEDOUT` past the request timeout, the server's own errors as
 *   errno), so the guest sees IOERR, never a success that was not one.
 * - The `range=` window is this queue's to enforce: a request outside it
 *   completes with {@linkcode IO_SHORT} without reaching the server.
 *
 * @module
 */

import type { ThreadIo } from "./backend.ts";
import { type EventLoopWaiter, eventLoopWaiterFor } from "../io/event_loop_waiter.ts";
import {
  IO_SHORT,
  IoOp,
  type IoOpCode,
  type IoQueue,
  type IoRequest,
  withinMedium,
} from "../io/io_queue.ts";
import { NbdClient, type NbdRequest } from "../nbd/client.ts";
import { NbdOp, type NbdOpCode } from "../nbd/operation.ts";
import type { NbdBackendSpec } from "./nbd_driver.ts";

/**
 * The NBD operation of each I/O operation (the spec's capabilities offer
 * DISCARD and WRITE_ZEROES only where the export has SEND_TRIM and
 * SEND_WRITE_ZEROES; the client refuses them otherwise).
 */
const NBD_OP_OF: Readonly<Record<IoOpCode, NbdOpCode>> = {
  [IoOp.READ]: NbdOp.READ,
  [IoOp.WRITE]: NbdOp.WRITE,
  [IoOp.FLUSH]: NbdOp.FLUSH,
  [IoOp.DISCARD]: NbdOp.TRIM,
  [IoOp.WRITE_ZEROES]: NbdOp.WRITE_ZEROES,
};

/** An operation sent as several NBD requests: how many are left, and its result so far. */
interface Parts {
  left: number;
  result: number;
}

/** Finished operations waiting for `reap`: tokens and results. */
class Finished {
  readonly tokens: Int32Array;
  readonly results: Int32Array;
  count = 0;

  constructor(capacity: number) {
    this.tokens = new Int32Array(capacity);
    this.results = new Int32Array(capacity);
  }
}

/** One thread's connection to an NBD export, as an I/O queue. */
export class NbdIoQueue implements IoQueue {
  readonly #client: NbdClient;
  readonly #waiter: EventLoopWaiter;
  /** Byte offset of the window in the export, and its size. */
  readonly #offset: number;
  readonly #size: number;
  readonly #capacity: number;
  /**
   * Two lists used in turn: `reap` hands one out while completions that
   * arrive meanwhile (a request refused inside `submit`) go to the other.
   */
  #finished: Finished;
  #spare: Finished;
  /** Operations submitted and not yet reaped. */
  #inFlight = 0;
  readonly #request: NbdRequest = { op: NbdOp.READ, offset: 0, length: 0, fua: false };
  /** Operations of several ranges in flight, by token (DISCARD, WRITE_ZEROES: rare). */
  readonly #parts = new Map<number, Parts>();
  #closed = false;

  /**
   * Opens this thread's connection to `spec`'s export (in the background:
   * requests submitted before it is up wait for it, within their timeout).
   */
  constructor(spec: NbdBackendSpec, thread: ThreadIo) {
    this.#waiter = eventLoopWaiterFor(thread);
    this.#offset = spec.offset;
    this.#size = spec.size;
    this.#capacity = thread.capacity;
    this.#finished = new Finished(thread.capacity);
    this.#spare = new Finished(thread.capacity);
    const log = thread.log ?? ((line: string) => console.error(line));
    this.#client = NbdClient.open(spec.uri, spec.export, {
      ...spec.connection,
      // One of several connections: each must keep offering CAN_MULTI_CONN.
      multiConn: spec.capabilities.handles === "async",
      onComplete: (token, result) => this.#partDone(token, result),
      log,
    });
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get waiter(): EventLoopWaiter {
    return this.#waiter;
  }

  submit(request: IoRequest, token: number): boolean {
    if (this.#inFlight === this.#capacity) return false;
    this.#inFlight++;
    const nbd = this.#request;
    const op = request.op;
    if (op === IoOp.DISCARD || op === IoOp.WRITE_ZEROES) {
      this.#submitRanges(request, token);
      return true;
    }
    if (op === IoOp.FLUSH) {
      nbd.offset = 0;
      nbd.length = 0;
      nbd.vector = undefined;
      nbd.fua = false;
    } else {
      const { offset, vector } = request;
      if (!withinMedium(offset, vector.bytes, this.#size)) {
        this.#complete(token, IO_SHORT);
        return true;
      }
      nbd.offset = this.#offset + offset;
      nbd.length = vector.bytes;
      nbd.vector = vector;
      nbd.fua = op === IoOp.WRITE && request.durable;
    }
    nbd.op = NBD_OP_OF[op];
    this.#client.submit(nbd, token);
    return true;
  }

  commit(): void {
    this.#client.commit();
  }

  reap(done: (token: number, result: number) => void): number {
    const finished = this.#finished;
    const count = finished.count;
    if (count === 0) return 0;
    this.#finished = this.#spare;
    this.#spare = finished;
    this.#inFlight -= count;
    this.#waiter.taken(count);
    for (let i = 0; i < count; i++) done(finished.tokens[i], finished.results[i]);
    finished.count = 0;
    return count;
  }

  wait(): void {
    // Completions arrive on this thread's event loop, which blocking would stop.
  }

  abandon(): void {
    this.#client.abort("abandoned: the device stopped the queue");
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#waiter.taken(this.#finished.count);
      this.#finished.count = 0;
    }
    return this.#client.close();
  }

  /**
   * One NBD request per range, all with `token`; nothing is sent unless
   * every range lies inside the window.
   */
  #submitRanges(request: IoRequest, token: number): void {
    const { ranges } = request;
    const count = ranges.count;
    for (let i = 0; i < count; i++) {
      const offset = ranges.offsets[i], length = ranges.lengths[i];
      if (!withinMedium(offset, length, this.#size)) {
        this.#complete(token, IO_SHORT);
        return;
      }
    }
    if (count === 0) {
      this.#complete(token, 0);
      return;
    }
    if (count > 1) this.#parts.set(token, { left: count, result: 0 });
    const nbd = this.#request;
    nbd.op = NBD_OP_OF[request.op];
    nbd.vector = undefined;
    nbd.fua = request.durable;
    for (let i = 0; i < count; i++) {
      nbd.offset = this.#offset + ranges.offsets[i];
      nbd.length = ranges.lengths[i];
      nbd.noHole = request.op === IoOp.WRITE_ZEROES && ranges.unmap[i] === 0;
      this.#client.submit(nbd, token);
    }
    nbd.noHole = false;
  }

  /** A reply to one NBD request: the operation's, or one part of it. */
  #partDone(token: number, result: number): void {
    const parts = this.#parts.get(token);
    if (parts !== undefined) {
      if (parts.result === 0) parts.result = result;
      if (--parts.left > 0) return;
      this.#parts.delete(token);
      result = parts.result;
    }
    this.#complete(token, result);
  }

  #complete(token: number, result: number): void {
    // After close, completions of what was in flight have nobody to go to.
    if (this.#closed) return;
    const finished = this.#finished;
    finished.tokens[finished.count] = token;
    finished.results[finished.count] = result;
    finished.count++;
    this.#waiter.arrived();
  }
}
