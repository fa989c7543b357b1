/**
 * The adapter that makes a synchronous medium an {@linkcode IoQueue}: each
 * operation runs to its end inside `submit` (pread/pwrite straight into
 * guest memory, fdatasync for FLUSH and for a durable write; each range of
 * a DISCARD or WRITE_ZEROES in turn, then fdatasync when durable) and its
 * completion waits in a small list for the next `reap`. So the thread that
 * runs requests has one path for every medium, and a synchronous medium
 * costs no more than the calls it makes.
 *
 * A medium's exception becomes a negative result that keeps its cause:
 * `-errno` (ENOSPC, EIO, …) or {@linkcode IO_SHORT}.
 *
 * @module
 */

import type { BlockBackend } from "../backend/backend.ts";
import { VirtioBlkError } from "../errors.ts";
import { ERRNO, errnoOf } from "./errno.ts";
import { IO_SHORT, IoOp, type IoQueue, type IoRequest, withinMedium } from "./io_queue.ts";

/** An {@linkcode IoQueue} over a synchronous {@linkcode BlockBackend}. */
export class SyncIoQueue implements IoQueue {
  readonly #backend: BlockBackend;
  readonly #tokens: Int32Array;
  readonly #results: Int32Array;
  #count = 0;

  /**
   * Serves `backend` (a synchronous handle on this thread).
   *
   * @param backend the medium, opened on this thread
   * @param capacity most completions waiting to be reaped at once
   */
  constructor(backend: BlockBackend, capacity: number) {
    this.#backend = backend;
    this.#tokens = new Int32Array(capacity);
    this.#results = new Int32Array(capacity);
  }

  get inFlight(): number {
    return this.#count;
  }

  submit(request: IoRequest, token: number): boolean {
    if (this.#count === this.#tokens.length) return false;
    this.#tokens[this.#count] = token;
    this.#results[this.#count] = this.#run(request);
    this.#count++;
    return true;
  }

  commit(): void {}

  wait(): void {
    // Every operation finished inside submit.
  }

  reap(done: (token: number, result: number) => void): number {
    const count = this.#count;
    // Taken first: `done` may submit again.
    this.#count = 0;
    for (let i = 0; i < count; i++) done(this.#tokens[i], this.#results[i]);
    return count;
  }

  close(): void {
    this.#backend.close();
  }

  #run(request: IoRequest): number {
    const backend = this.#backend;
    try {
      switch (request.op) {
        case IoOp.READ:
        case IoOp.WRITE: {
          const { vector } = request;
          const write = request.op === IoOp.WRITE;
          let offset = request.offset;
          for (let i = 0; i < vector.count; i++) {
            const length = vector.lengths[i];
            const bytes = vector.regions[i].bytes;
            if (write) backend.write(offset, bytes, vector.offsets[i], length);
            else backend.read(offset, bytes, vector.offsets[i], length);
            offset += length;
          }
          if (write && request.durable) backend.flush();
          return 0;
        }
        case IoOp.FLUSH:
          backend.flush();
          return 0;
        case IoOp.DISCARD:
        case IoOp.WRITE_ZEROES: {
          const { ranges } = request;
          const discard = request.op === IoOp.DISCARD;
          // A medium without the call never had the feature offered: refuse, as Linux would.
          if (discard ? !backend.discard : !backend.writeZeroes) return -ERRNO.EOPNOTSUPP;
          // Every range inside the medium before any runs: all of them or none.
          for (let i = 0; i < ranges.count; i++) {
            const offset = ranges.offsets[i];
            const length = ranges.lengths[i];
            if (!withinMedium(offset, length, backend.size)) return IO_SHORT;
          }
          for (let i = 0; i < ranges.count; i++) {
            if (discard) backend.discard!(ranges.offsets[i], ranges.lengths[i]);
            else backend.writeZeroes!(ranges.offsets[i], ranges.lengths[i], ranges.unmap[i] === 1);
          }
          if (request.durable) backend.flush();
          return 0;
        }
      }
    } catch (error) {
      if (error instanceof VirtioBlkError && error.code === "SHORT_TRANSFER") return IO_SHORT;
      return -errnoOf(error);
    }
    return -errnoOf(undefined);
  }
}
