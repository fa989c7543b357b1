/**
 * What a blockif thread does, on whichever thread runs it: the notify path
 * (take chains off the available ring, parse each once, put it in a pool
 * element on pendq) and the worker path (take a runnable element into busyq,
 * run it against the medium, write the status, publish the used element,
 * interrupt, return the element to freeq).
 *
 * Who sleeps where and who wakes whom:
 * - Workers sleep in `Atomics.wait` on the pool's WAKE word. A drainer that
 *   queued runnable requests, and a finishing worker that unblocked some,
 *   bump WAKE and notify that many sleepers.
 * - `dispatch: "worker"` (default): WAKE is also the queue's doorbell, so a
 *   kick wakes one worker, which drains the ring itself and runs the first
 *   request (one hand-off fewer than ACRN's model).
 * - `dispatch: "device"` (ACRN's model): the device thread drains on the
 *   KICK doorbell and workers only execute.
 * - When freeq runs dry the drainer stops and sets STARVED; the worker whose
 *   request finishes next sees it and drains again (or rings KICK), so a
 *   chain is never dropped and never waits for another kick.
 *
 * @module
 */

import type { BlockBackend } from "../backend/backend.ts";
import type { BlkState } from "../blk/blk_state.ts";
import {
  completeRequest,
  executeRequest,
  type ExecutionContext,
  type ExecutionStats,
} from "../blk/execute.ts";
import { BlkRequest, parseRequest, type RequestLimits } from "../blk/request.ts";
import { RequestStatus } from "../blk/spec.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { DescriptorChain } from "../virtio/descriptor_chain.ts";
import { Pop, QueueFault, type SplitQueue } from "../virtio/split_queue.ts";
import type { InterruptSink } from "../virtio/transport_state.ts";
import { AdaptivePoll } from "../sync/adaptive_poll.ts";
import { tryLock, unlock } from "../sync/mutex.ts";
import { ElementState, PoolWord } from "./pool_layout.ts";
import type { RequestPool } from "./request_pool.ts";

/** Who drains the available ring. */
export type Dispatch = "worker" | "device";

/** A server's plain settings: values any thread can receive as they are. */
export interface ServerSettings {
  /** The device offers VIRTIO_BLK_F_RO: writes fail. */
  readonly readOnly: boolean;
  readonly limits: RequestLimits;
  /** The 20 GET_ID bytes. */
  readonly serial: Uint8Array;
  readonly dispatch: Dispatch;
  /** Most descriptors in one chain. */
  readonly maxChain: number;
  /** Adaptive polling cap of an idle worker, in nanoseconds (0: never poll). */
  readonly pollMaxNs: number;
}

/** The live objects a server works on (built from handles in a worker), and its settings. */
export interface ServerParts extends ServerSettings {
  readonly memory: GuestMemory;
  readonly queues: readonly SplitQueue[];
  readonly pool: RequestPool;
  readonly state: BlkState;
  readonly interrupts: InterruptSink;
  /** The medium; absent on a device thread that only drains. */
  readonly backend?: BlockBackend;
}

/** The notify and worker paths of one thread. */
export class BlockifServer {
  readonly #parts: ServerParts;
  readonly #words: Int32Array;
  readonly #chain: DescriptorChain;
  readonly #scratch: BlkRequest;
  readonly #execution: ExecutionContext | undefined;
  readonly #stats: ExecutionStats = { mediumErrors: 0 };
  readonly #poll: AdaptivePoll;
  /** WAKE as it was when this worker last looked for work (read by #workArrived). */
  #seen = 0;
  readonly #workArrived = (): boolean =>
    Atomics.load(this.#words, PoolWord.WAKE) !== this.#seen || this.#parts.pool.runnableCount > 0 ||
    (this.#parts.dispatch === "worker" && this.#parts.pool.freeCount > 0 && this.#anyAvailable());

  constructor(parts: ServerParts) {
    this.#parts = parts;
    this.#words = parts.pool.words;
    this.#poll = new AdaptivePoll(parts.pollMaxNs);
    this.#chain = new DescriptorChain(parts.maxChain);
    this.#scratch = new BlkRequest(parts.limits.segMax);
    this.#execution = parts.backend && {
      memory: parts.memory,
      backend: parts.backend,
      readOnly: parts.readOnly,
      state: parts.state,
      serial: parts.serial,
    };
  }

  /**
   * The notify path: moves every available chain of queue `index` into the
   * pool, waking workers for them. Gives up at once if another thread is
   * draining (it re-checks the ring when it is done). Returns how many
   * requests it queued.
   *
   * Who runs what it queued: a draining worker (worker dispatch) runs one
   * request itself once it returns, so it wakes a worker for every other
   * runnable request it queued, over all its passes; the device thread
   * (device dispatch) runs none and wakes one for each. Counting per pass
   * instead would keep one request back in every pass: a guest that
   * trickles requests, one per pass, would have them all run one after
   * another by the drainer while the other workers sleep.
   */
  drain(index: number): number {
    const { pool, queues, memory, limits, interrupts } = this.#parts;
    const queue = queues[index];
    const chain = this.#chain;
    const scratch = this.#scratch;
    let queued = 0;
    /** Requests still to keep for this thread to run: one for a draining worker. */
    let ownShare = this.#parts.dispatch === "worker" ? 1 : 0;
    for (;;) {
      if (!queue.beginDrain(false)) break;
      let starved = false;
      let runnable = 0;
      try {
        for (;;) {
          if (pool.freeCount === 0) {
            // Announce the shortage first, then look again: either a finishing
            // worker sees STARVED, or this thread sees its freed element.
            Atomics.store(this.#words, PoolWord.STARVED, 1);
            if (pool.freeCount === 0) {
              starved = true;
              break;
            }
          }
          if (queue.pop(chain) !== Pop.CHAIN) break;
          const generation = queue.generation;
          parseRequest(chain, memory, limits, scratch);
          const state = pool.enqueue(scratch, index, generation);
          if (state < 0) {
            // Cannot happen while one thread drains a pool; never drop the chain.
            completeRequest(
              queue,
              index,
              memory,
              scratch,
              RequestStatus.IOERR,
              generation,
              interrupts,
            );
            continue;
          }
          queued++;
          if (state === ElementState.PENDING) runnable++;
        }
      } finally {
        // Never leave AVAIL_LOCK held, whatever happened.
        queue.endDrain();
      }
      // Wake others for every runnable request but the one this worker keeps.
      const kept = Math.min(ownShare, runnable);
      ownShare -= kept;
      this.#wake(runnable - kept);
      if (starved ? pool.freeCount === 0 : !queue.hasAvailable) break;
    }
    if (queue.fault !== QueueFault.NONE) this.#reportBroken(queue, index);
    return queued;
  }

  /**
   * Tells the driver the device needs a reset, if queue `index` is still
   * broken. Only a reset clears the fault, under USED_LOCK (disable): looking
   * again under that lock keeps a stale report from landing on the device
   * after the guest reset it (it would then refuse the guest's new ring).
   */
  #reportBroken(queue: SplitQueue, index: number): void {
    queue.lockUsed();
    try {
      if (queue.fault !== QueueFault.NONE) this.#parts.interrupts.needsReset(index);
    } finally {
      queue.unlockUsed();
    }
  }

  /**
   * The worker path for one request: takes a runnable element, runs it and
   * returns it to freeq. Returns false when nothing was runnable.
   */
  runOne(): boolean {
    const { pool, queues, memory, interrupts } = this.#parts;
    const element = pool.takeRunnable();
    if (element < 0) return false;
    const request = pool.record(element);
    const index = pool.queueOf(element);
    const generation = pool.generationOf(element);
    const queue = queues[index];
    // A request popped before a reset is dropped without touching guest memory.
    if (generation === queue.generation) {
      const status = executeRequest(request, this.#execution!, this.#stats);
      completeRequest(queue, index, memory, request, status, generation, interrupts);
    }
    this.#wake(pool.finish(element));
    Atomics.add(this.#words, PoolWord.COMPLETED, 1);
    if (this.#stats.mediumErrors > 0) {
      Atomics.add(this.#words, PoolWord.MEDIUM_ERRORS, this.#stats.mediumErrors);
      this.#stats.mediumErrors = 0;
    }
    if (
      Atomics.load(this.#words, PoolWord.STARVED) === 1 &&
      Atomics.exchange(this.#words, PoolWord.STARVED, 0) === 1
    ) {
      if (this.#parts.dispatch === "worker") this.drain(index);
      else this.#ringKick();
    }
    return true;
  }

  /**
   * A worker's life: run what is runnable, drain when the ring has chains
   * (worker dispatch), otherwise poll for a while (one worker at a time, for
   * an adaptive window) and then sleep on WAKE; until the pool is closing.
   */
  loop(): void {
    const { pool, queues, dispatch } = this.#parts;
    const words = this.#words;
    for (;;) {
      // WAKE before CLOSING: close() sets CLOSING, then bumps WAKE, so a
      // close this look misses makes the sleep below return at once.
      const seen = Atomics.load(words, PoolWord.WAKE);
      if (Atomics.load(words, PoolWord.CLOSING) !== 0) return;
      if (this.runOne()) continue;
      if (dispatch === "worker" && pool.freeCount > 0 && this.#drainAny(queues)) continue;
      // Poll only while no other worker runs a request: spinning next to busy
      // workers takes the CPU they need (measured: −33 % at QD32 on 2 cores).
      if (this.#poll.windowNs > 0 && pool.busyCount === 0 && tryLock(words, PoolWord.POLLER)) {
        this.#seen = seen;
        const arrived = this.#poll.spin(this.#workArrived);
        unlock(words, PoolWord.POLLER);
        if (arrived) continue;
      }
      Atomics.add(words, PoolWord.IDLE, 1);
      const asleep = performance.now();
      Atomics.wait(words, PoolWord.WAKE, seen);
      this.#poll.slept((performance.now() - asleep) * 1e6);
      Atomics.sub(words, PoolWord.IDLE, 1);
    }
  }

  #anyAvailable(): boolean {
    const queues = this.#parts.queues;
    for (let i = 0; i < queues.length; i++) if (queues[i].hasAvailable) return true;
    return false;
  }

  #drainAny(queues: readonly SplitQueue[]): boolean {
    for (let i = 0; i < queues.length; i++) {
      if (queues[i].hasAvailable && this.drain(i) > 0) return true;
    }
    return false;
  }

  #wake(count: number): void {
    this.#parts.pool.wake(count);
  }

  #ringKick(): void {
    Atomics.add(this.#words, PoolWord.KICK, 1);
    Atomics.notify(this.#words, PoolWord.KICK, 1);
  }
}
