/**
 * What a blockif thread does, on whichever thread runs it, for every device
 * attached to it: the notify path (take chains off a device's available
 * ring, parse each once, put it in a pool element on pendq) and the worker
 * path (take a runnable element into busyq, start it on the device's I/O
 * queue, and when the I/O finishes write the status, publish the used
 * element, interrupt, return the element to freeq). This is the one place
 * requests are drained, run and completed: the in-process engine, the
 * blockif worker threads and the device thread of the device-dispatch mode
 * all run this code, with synchronous media (which finish inside `submit`)
 * and asynchronous ones alike.
 *
 * Devices. The pool and the threads serving it may be shared by several
 * devices (I/O threads, QEMU's `-object iothread` model): each device is
 * attached under an id, which its pool elements carry, with its own guest
 * memory, queues, I/O queue on its medium, cache state and interrupts.
 *
 * Who sleeps where and who wakes whom:
 * - Workers sleep in `Atomics.wait` on the pool's WAKE word. A drainer that
 *   queued runnable requests, and a finishing worker that unblocked some,
 *   bump WAKE and notify that many sleepers.
 * - `dispatch: "worker"` (default): WAKE is also every queue's doorbell, so
 *   a kick wakes one worker, which drains the rings itself and runs the
 *   first request (one hand-off fewer than ACRN's model). While a worker
 *   polls (holds POLLER) a kick wakes nobody: the poller sees WAKE move
 *   (the doorbell's `spinner` word, `src/virtio/doorbell.ts`).
 * - `dispatch: "device"` (ACRN's model): the device thread drains on the
 *   KICK doorbell and workers only execute.
 * - When freeq runs dry the drainer stops and sets STARVED; the worker whose
 *   request finishes next sees it and drains again (or rings KICK), so a
 *   chain is never dropped and never waits for another kick.
 * - A thread leaves its loop when CLOSING is set, or when CONTROL changes:
 *   the engine posted it a message (see `worker.ts`).
 * - A thread whose I/O queues complete on its event loop (a network disk:
 *   an `"event-loop"` {@linkcode IoWaiter}) must not block at all: where
 *   others sleep, its loop returns `"yield"`, and the thread awaits
 *   {@linkcode BlockifServer.idle} (WAKE through `Atomics.waitAsync`, or a
 *   completion) on its event loop, then loops again. It never polls:
 *   spinning would hold up the very loop its completions come from.
 *
 * @module
 */

import type { BlockBackend, ThreadIo } from "../backend/backend.ts";
import type { BlkState } from "../blk/blk_state.ts";
import {
  completeRequest,
  type ExecutionContext,
  finishRequest,
  ioRequestFor,
  PENDING,
  returnRequest,
  startRequest,
} from "../blk/execute.ts";
import { MediumErrors } from "../blk/medium_errors.ts";
import { BlkRequest, parseRequest, recordSlots, type RequestLimits } from "../blk/request.ts";
import { RequestStatus, type RequestStatusCode } from "../blk/spec.ts";
import type { IoQueue, IoRequest, IoWaiter, KernelIoWaiter } from "../io/io_queue.ts";
import { SyncIoQueue } from "../io/sync_io_queue.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { AdaptivePoll } from "../sync/adaptive_poll.ts";
import { tryLock, unlock } from "../sync/mutex.ts";
import { openWakeSignal, type WakeSignal, type WakeSignalHandle } from "../sync/wake_signal.ts";
import { DescriptorChain } from "../virtio/descriptor_chain.ts";
import { Pop, QueueFault, type SplitQueue } from "../virtio/split_queue.ts";
import type { InterruptSink } from "../virtio/transport_state.ts";
import { ElementState, PoolWord } from "./pool_layout.ts";
import type { RequestPool } from "./request_pool.ts";

/** Who drains the available ring. */
export type Dispatch = "worker" | "device";

/** A device's plain settings: values any thread can receive as they are. */
export interface DeviceSettings {
  /** The device offers VIRTIO_BLK_F_RO, or its medium is read-only: writes fail. */
  readonly readOnly: boolean;
  /**
   * Capacity, seg_max and DISCARD/WRITE_ZEROES limits every parsed (and
   * started) request is checked against.
   */
  readonly limits: RequestLimits;
  /** The 20 GET_ID bytes. */
  readonly serial: Uint8Array;
  /** Most descriptors in one chain. */
  readonly maxChain: number;
  /** What logs call the device (`virtio-blk device on disk.img`). */
  readonly name: string;
  /**
   * Hold a request back while an earlier overlapping one is in flight and
   * one of them changes the medium (default true; ACRN's `no_bst_block`
   * turns it off). See `request_pool.ts`.
   */
  readonly orderOverlapping?: boolean;
}

/** One device's live objects on a thread. */
export interface ServedDevice {
  readonly settings: DeviceSettings;
  readonly memory: GuestMemory;
  /** This thread's views of the device's queues (over `memory`). */
  readonly queues: readonly SplitQueue[];
  readonly state: BlkState;
  readonly interrupts: InterruptSink;
  readonly errors: MediumErrors;
  /** This thread's I/O queue on the medium; absent on a thread that only drains. */
  readonly io?: IoQueue;
}

/** A thread's own settings. */
export interface ThreadSettings {
  /** Who drains the rings. */
  readonly dispatch: Dispatch;
  /** Adaptive polling cap of an idle worker, in nanoseconds (0: never poll). */
  readonly pollMaxNs: number;
  /** Where medium failures are reported (default: console.error). */
  readonly log?: (message: string) => void;
  /**
   * The group's wake signal, for threads that sleep in the kernel (io_uring):
   * rung with every wake-up of this thread's making (its module loaded here).
   */
  readonly wake?: WakeSignalHandle;
  /** This thread's index in its group (which part of `wake` is its own). */
  readonly thread?: number;
  /** Threads in this thread's group, serving the same pool (default 1: this one alone). */
  readonly threads?: number;
}

/** A server's plain settings for one device on one thread (the common case, and tests'). */
export interface ServerSettings extends Omit<DeviceSettings, "name">, ThreadSettings {
  readonly name?: string;
}

/** The live objects of a one-device server, and its settings. */
export interface ServerParts extends ServerSettings {
  readonly memory: GuestMemory;
  readonly queues: readonly SplitQueue[];
  readonly pool: RequestPool;
  readonly state: BlkState;
  readonly interrupts: InterruptSink;
  /** The medium; absent on a device thread that only drains. */
  readonly backend?: BlockBackend;
  /** The device's medium-error counters (default: a region of this server's own). */
  readonly errors?: MediumErrors;
}

/** A device as this thread serves it: its objects and the per-device scratch records. */
interface Attached {
  readonly device: ServedDevice;
  readonly execution: ExecutionContext | undefined;
  readonly chain: DescriptorChain;
  readonly scratch: BlkRequest;
  readonly ioRequest: IoRequest;
}

/** The notify and worker paths of one thread, for every device attached to it. */
export class BlockifServer {
  readonly #pool: RequestPool;
  readonly #words: Int32Array;
  readonly #settings: ThreadSettings;
  readonly #log: (message: string) => void;
  readonly #devices: (Attached | undefined)[] = [];
  /** Each distinct I/O queue of the attached devices once (several may share one ring). */
  #ioQueues: IoQueue[] = [];
  /**
   * Where this thread sleeps when its I/O completes asynchronously: in the
   * kernel (one ring per thread) or on its event loop.
   */
  #waiter: IoWaiter | undefined;
  /**
   * The one `Atomics.waitAsync` on WAKE this thread has pending (see
   * {@linkcode idle}); cleared once it resolves.
   */
  #wakeWait: Promise<void> | undefined;
  readonly #wakeSignal: WakeSignal | undefined;
  #threadIo: ThreadIo | undefined;
  readonly #poll: AdaptivePoll;
  /**
   * Requests finished and not yet returned to the driver: pool elements,
   * each followed by its status. {@linkcode #returnFinished} returns them per
   * queue under one USED_LOCK, with one interrupt per queue.
   */
  readonly #finished: Int32Array;
  #finishedCount = 0;
  /**
   * Of each element this thread started: its device, queue and generation
   * (three words per element), read from the pool once when it was taken.
   * The thread that starts a request finishes it (its I/O queue is the
   * thread's own), so its completion needs no further look at shared memory.
   */
  readonly #started: Int32Array;
  /** CONTROL as this thread last handled it. */
  #control: number;
  /** WAKE as it was when this worker last looked for work (read by #workArrived). */
  #seen = 0;
  readonly #finish = (token: number, result: number) => this.#finishElement(token, result);
  readonly #workArrived = (): boolean =>
    Atomics.load(this.#words, PoolWord.WAKE) !== this.#seen || this.#pool.runnableCount > 0 ||
    (this.#waiter?.ready ?? false) ||
    (this.#settings.dispatch === "worker" && this.#pool.freeCount > 0 && this.#anyAvailable());

  /**
   * A server over `pool`. Given a one-device `ServerParts` (tests, the
   * in-process engine), that device is attached as device 0, its backend
   * wrapped in a synchronous I/O queue.
   */
  constructor(parts: ServerParts);
  constructor(pool: RequestPool, settings: ThreadSettings);
  constructor(first: ServerParts | RequestPool, second?: ThreadSettings) {
    const parts = second === undefined ? first as ServerParts : undefined;
    this.#pool = parts ? parts.pool : first as RequestPool;
    this.#settings = parts ?? second!;
    this.#log = this.#settings.log ?? ((message) => console.error(message));
    this.#words = this.#pool.words;
    this.#wakeSignal = this.#settings.wake && openWakeSignal(this.#settings.wake);
    this.#control = Atomics.load(this.#words, PoolWord.CONTROL);
    this.#poll = new AdaptivePoll(this.#settings.pollMaxNs);
    this.#finished = new Int32Array(2 * this.#pool.layout.elements);
    this.#started = new Int32Array(3 * this.#pool.layout.elements);
    if (parts) {
      this.attach(0, {
        settings: { ...parts, name: parts.name ?? "virtio-blk device" },
        memory: parts.memory,
        queues: parts.queues,
        state: parts.state,
        interrupts: parts.interrupts,
        errors: parts.errors ?? new MediumErrors(),
        io: parts.backend && new SyncIoQueue(parts.backend, this.#pool.layout.elements),
      });
    }
  }

  /** The pool this server takes requests from. */
  get pool(): RequestPool {
    return this.#pool;
  }

  /**
   * What this thread gives the I/O queues it opens: one object for the
   * thread's life, so queues that share a ring per thread find the same one.
   */
  get threadIo(): ThreadIo {
    return this.#threadIo ??= {
      capacity: this.#pool.layout.elements,
      segMax: this.#pool.layout.segMax,
      wake: this.#settings.wake,
      thread: this.#settings.thread,
      log: this.#log,
    };
  }

  /**
   * Serves `device` under `id` (replacing what was attached under it).
   *
   * @throws {RangeError} for a seg_max beyond the pool's, or a medium that
   *   waits in another way than the media this thread serves (io_uring and
   *   a network disk cannot share a thread)
   */
  attach(id: number, device: ServedDevice): void {
    const slots = recordSlots(device.settings.limits);
    if (slots > this.#pool.layout.segMax) {
      throw new RangeError(
        `a device whose requests hold ${slots} segments or ranges cannot use a pool of ` +
          `${this.#pool.layout.segMax}`,
      );
    }
    const previous = this.#devices[id];
    this.#devices[id] = {
      device,
      execution: device.io && {
        memory: device.memory,
        io: device.io,
        readOnly: device.settings.readOnly,
        capacity: device.settings.limits.capacity,
        state: device.state,
        serial: device.settings.serial,
        errors: device.errors,
        log: this.#log,
        name: device.settings.name,
      },
      chain: new DescriptorChain(device.settings.maxChain),
      scratch: new BlkRequest(slots),
      ioRequest: ioRequestFor(slots),
    };
    try {
      this.#collectIoQueues();
    } catch (error) {
      this.#devices[id] = previous;
      this.#collectIoQueues();
      throw error;
    }
  }

  /** Stops serving device `id`; returns what was attached. */
  detach(id: number): ServedDevice | undefined {
    const attached = this.#devices[id];
    this.#devices[id] = undefined;
    this.#collectIoQueues();
    return attached?.device;
  }

  /** The device attached under `id`. */
  device(id: number): ServedDevice | undefined {
    return this.#devices[id]?.device;
  }

  /**
   * The notify path: moves every available chain of `device`'s queue
   * `index` into the pool, waking workers for them. Gives up at once if
   * another thread is draining (it re-checks the ring when it is done).
   * Returns how many requests it queued.
   *
   * Who runs what it queued: a draining worker (worker dispatch) runs one
   * request itself once it returns, so it wakes a worker for every other
   * runnable request it queued, over all its passes; the device thread
   * (device dispatch) runs none and wakes one for each. Counting per pass
   * instead would keep one request back in every pass: a guest that
   * trickles requests, one per pass, would have them all run one after
   * another by the drainer while the other workers sleep. A worker whose
   * I/O on the device completes on its event loop (a network disk) keeps
   * them all: it sends the batch in one socket write, cheaper than waking a
   * thread per request. An io_uring worker does not: on a file in the page
   * cache the kernel completes a read or write inside the submitting call,
   * so one thread keeping the batch did all of its copying alone (randread
   * QD32 83k IOPS against 200k with the batch spread; scripts/bench).
   *
   * `limit` caps the chains taken (the in-process engine takes one at a
   * time, so a chain completes before the next is popped). `keep` false: a
   * draining worker keeps none of these for itself, because it already kept
   * one from another queue in the same look for work.
   */
  drain(index: number, device = 0, limit = Infinity, keep = true): number {
    const attached = this.#devices[device];
    if (attached === undefined) return 0;
    const { memory, queues, interrupts, settings } = attached.device;
    const pool = this.#pool;
    const queue = queues[index];
    const { chain, scratch } = attached;
    const ordered = settings.orderOverlapping ?? true;
    let queued = 0;
    /** Requests still to keep for this thread to run: one for a draining worker. */
    let ownShare = this.#settings.dispatch !== "worker"
      ? 0
      : attached.device.io?.waiter?.kind === "event-loop"
      ? Infinity
      : keep
      ? 1
      : 0;
    for (;;) {
      if (!queue.beginDrain(false)) break;
      let starved = false;
      let runnable = 0;
      try {
        while (queued < limit) {
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
          parseRequest(chain, memory, settings.limits, scratch);
          const state = pool.enqueue(scratch, index, generation, device, ordered);
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
      if (queued >= limit || (starved ? pool.freeCount === 0 : !queue.hasAvailable)) break;
    }
    if (queue.fault !== QueueFault.NONE) this.#reportBroken(queue, index, interrupts);
    return queued;
  }

  /**
   * Tells the driver the device needs a reset, if queue `index` is still
   * broken. Only a reset clears the fault, under USED_LOCK (disable): looking
   * again under that lock keeps a stale report from landing on the device
   * after the guest reset it (it would then refuse the guest's new ring).
   */
  #reportBroken(queue: SplitQueue, index: number, interrupts: InterruptSink): void {
    queue.lockUsed();
    try {
      if (queue.fault !== QueueFault.NONE) interrupts.needsReset(index);
    } finally {
      queue.unlockUsed();
    }
  }

  /**
   * The worker path for one request: takes a runnable element and starts
   * it. A request that needs no medium, or whose medium finished inside
   * `submit` (a synchronous one), is completed and its element returned to
   * freeq before this returns; an asynchronous one completes when
   * {@linkcode reap} finds its I/O done. Returns false when nothing was
   * runnable.
   */
  runOne(): boolean {
    const pool = this.#pool;
    const element = pool.takeRunnable();
    if (element < 0) return false;
    const device = pool.deviceOf(element);
    const index = pool.queueOf(element);
    const generation = pool.generationOf(element);
    const attached = this.#devices[device];
    const queue = attached?.device.queues[index];
    // A request popped before a reset (or of a device no longer here) is
    // dropped without touching guest memory.
    if (attached === undefined || queue === undefined || generation !== queue.generation) {
      this.#release(element);
    } else {
      const started = this.#started;
      started[3 * element] = device;
      started[3 * element + 1] = index;
      started[3 * element + 2] = generation;
      const execution = attached.execution!;
      const ioRequest = attached.ioRequest;
      // A queue may block this thread on the request (io_uring's durable
      // writes, which the kernel would otherwise hand to its io-wq) when none
      // of the thread's I/O waits for it to reap, and no waiting request
      // needs this thread: none waits, or other threads of the group can run
      // it. Measured with io_uring, randwrite QD32 write-through: 8 threads
      // 17.6k IOPS through the ring, 23.3k blocking (the threads engine
      // 24.5k); 2 threads 10.1-11.1k and 12.4-12.5k; one thread 8.7k
      // through the ring, 7.7k blocking. The ring is no deeper than the
      // threads: the kernel runs a file's buffered writes one at a time in
      // its io-wq.
      ioRequest.mayBlock = this.inFlight === 0 &&
        ((this.#settings.threads ?? 1) > 1 || pool.runnableCount === 0);
      const status = startRequest(pool.record(element), execution, element, ioRequest);
      if (status !== PENDING) {
        this.#complete(element, status);
      } else if (this.#waiter?.kind === "kernel") {
        // A ring starts its I/O only when submitted, and on a file in the page
        // cache the kernel does the copy inside that call. Submitted at once, the
        // copy runs on this thread now. Held back for one submission per pass, a
        // worker would take the next runnable request too and do every copy of
        // its batch alone, while the workers woken for them find nothing to run
        // (randread QD32 237k -> 335k IOPS, 1 MiB reads 8.7k -> 14.4k; with
        // O_DIRECT 48k -> 61k: the device starts each read sooner). A thread
        // that polls has so handed over all it waits for (QD1 with poll_us=32:
        // p50 38 µs when it spun on a read still in its ring, 4 µs submitted).
        execution.io.commit();
      }
    }
    this.reap();
    this.#returnFinished();
    return true;
  }

  /**
   * Completes every request whose I/O finished (on every attached medium),
   * then interrupts once per queue that got used buffers. Returns how many.
   */
  reap(): number {
    let finished = 0;
    for (let i = 0; i < this.#ioQueues.length; i++) {
      finished += this.#ioQueues[i].reap(this.#finish);
    }
    if (finished > 0) this.#returnFinished();
    return finished;
  }

  /** Operations this thread's I/O queues still have in flight. */
  get inFlight(): number {
    let count = 0;
    for (let i = 0; i < this.#ioQueues.length; i++) count += this.#ioQueues[i].inFlight;
    return count;
  }

  /**
   * Completes every request whose I/O this thread has in flight, waiting
   * for the medium as long as it takes: before a medium is closed under
   * the requests started on it (a medium change).
   */
  finishIo(): void {
    for (;;) {
      this.reap();
      if (this.inFlight === 0 || !this.sleepOnIo()) return;
    }
  }

  /**
   * Blocks until this thread's I/O finishes or it is woken; returns false at
   * once when its queues complete inside `submit` (nothing to wait for) or
   * on its event loop (which blocking would stop).
   */
  sleepOnIo(): boolean {
    if (this.#waiter?.kind !== "kernel") return false;
    this.#waiter.sleep();
    return true;
  }

  /**
   * Where a thread whose I/O completes on its event loop waits after
   * {@linkcode loop} returned `"yield"`: resolves once WAKE moved from what
   * the loop last saw (a kick, work queued by another thread, a control
   * message, closing) or an operation finished. Resolves at once for other
   * threads.
   *
   * One `Atomics.waitAsync` at a time: when a completion wins, the wait on
   * WAKE stays pending and is awaited again next time instead of adding
   * another. V8 wakes waiters oldest first, so a stale second wait of this
   * thread could take a notify meant for a thread that really sleeps.
   */
  async idle(): Promise<void> {
    const waiter = this.#waiter;
    if (waiter?.kind !== "event-loop") return;
    const words = this.#words;
    if (waiter.ready || Atomics.load(words, PoolWord.WAKE) !== this.#seen) return;
    if (this.#wakeWait === undefined) {
      const wait = Atomics.waitAsync(words, PoolWord.WAKE, this.#seen);
      if (!wait.async) return;
      this.#wakeWait = wait.value.then(() => {
        this.#wakeWait = undefined;
      });
    }
    Atomics.add(words, PoolWord.IDLE, 1);
    try {
      await Promise.race([this.#wakeWait, waiter.completion()]);
    } finally {
      Atomics.sub(words, PoolWord.IDLE, 1);
    }
  }

  /**
   * A worker's sleep while it has I/O in flight in the kernel: in its ring,
   * counted as a waiter of the group's wake signal, which only then costs
   * a system call to ring. Counted before the last look at WAKE, which
   * every waker bumps before it signals: either the waker sees this thread
   * counted and signals, or this thread sees WAKE moved and does not sleep.
   */
  #sleepInRing(waiter: KernelIoWaiter, seen: number): void {
    const signal = this.#wakeSignal;
    signal?.beginWait();
    try {
      if (Atomics.load(this.#words, PoolWord.WAKE) === seen) waiter.sleep();
    } finally {
      signal?.endWait();
    }
  }

  /**
   * A worker's life: complete finished I/O, run what is runnable, drain
   * when a ring has chains (worker dispatch), otherwise poll for a while
   * (one worker at a time, for an adaptive window) and then sleep on WAKE;
   * until the pool is closing or the engine posted a control message.
   * Returns `"closing"` or `"control"`; or `"yield"` where a thread whose
   * I/O completes on its event loop would sleep (await {@linkcode idle},
   * then loop again).
   */
  loop(): "closing" | "control" | "yield" {
    const pool = this.#pool;
    const dispatch = this.#settings.dispatch;
    const words = this.#words;
    for (;;) {
      // WAKE before CLOSING and CONTROL: close() and control messages set
      // theirs, then bump WAKE, so one this look misses makes the sleep
      // below return at once.
      const seen = Atomics.load(words, PoolWord.WAKE);
      if (Atomics.load(words, PoolWord.CLOSING) !== 0) return "closing";
      if (Atomics.load(words, PoolWord.CONTROL) !== this.#control) return "control";
      if (this.reap() > 0) continue;
      if (this.runOne()) continue;
      if (dispatch === "worker" && pool.freeCount > 0 && this.#drainEvery()) continue;
      if (this.#waiter?.kind === "event-loop") {
        this.#seen = seen;
        return "yield";
      }
      // Poll only while no other worker runs a request: spinning next to busy
      // workers takes the CPU they need (measured: −33 % at QD32 on 2 cores).
      // A thread whose I/O completes in the kernel polls its ring too, and may
      // poll with others busy (they share no CPU with its I/O).
      if (
        this.#poll.windowNs > 0 && (pool.busyCount === 0 || this.#waiter) &&
        tryLock(words, PoolWord.POLLER)
      ) {
        this.#seen = seen;
        // Everything started was submitted as it started, unless that
        // submission failed (EINTR, EBUSY): try again, or the poll would
        // spin on I/O never handed over. Nothing to do otherwise.
        this.#commit();
        const arrived = this.#poll.spin(this.#workArrived);
        unlock(words, PoolWord.POLLER);
        if (arrived) continue;
      }
      Atomics.add(words, PoolWord.IDLE, 1);
      const asleep = performance.now();
      // With I/O in flight in the kernel, a thread sleeps in its ring (which
      // the wake signal reaches); otherwise on WAKE, where a notify is cheaper
      // to send and to wake from than an eventfd.
      const waiter = this.#waiter;
      if (waiter?.kind === "kernel" && this.inFlight > 0) this.#sleepInRing(waiter, seen);
      else Atomics.wait(words, PoolWord.WAKE, seen);
      this.#poll.slept((performance.now() - asleep) * 1e6);
      Atomics.sub(words, PoolWord.IDLE, 1);
    }
  }

  /** Records that control messages up to `control` were handled (the loop may run again). */
  handledControl(control: number): void {
    this.#control = control;
  }

  /** CONTROL as it is now (what the engine has posted so far). */
  get control(): number {
    return Atomics.load(this.#words, PoolWord.CONTROL);
  }

  #finishElement(element: number, result: number): void {
    const attached = this.#devices[this.#started[3 * element]];
    if (attached === undefined) {
      this.#release(element);
      return;
    }
    const status = finishRequest(this.#pool.record(element), attached.execution!, result);
    this.#complete(element, status);
  }

  /** Queues `element`'s request to be returned with `status` by {@linkcode #returnFinished}. */
  #complete(element: number, status: RequestStatusCode): void {
    const at = 2 * this.#finishedCount++;
    this.#finished[at] = element;
    this.#finished[at + 1] = status;
  }

  /**
   * Returns every finished request to the driver, a queue at a time: one
   * USED_LOCK for all of a queue's requests, then one interrupt if the
   * driver wants one (virtio 1.2 §2.7.10). Only then are the elements
   * released: a request's record is read until it is published.
   */
  #returnFinished(): void {
    const count = this.#finishedCount;
    if (count === 0) return;
    const pool = this.#pool;
    const finished = this.#finished;
    const started = this.#started;
    // Entries already returned are marked by turning their element negative (-1 - element).
    for (let i = 0; i < count; i++) {
      const first = finished[2 * i];
      if (first < 0) continue;
      const device = started[3 * first];
      const index = started[3 * first + 1];
      const attached = this.#devices[device];
      const queue = attached?.device.queues[index];
      if (attached === undefined || queue === undefined) {
        finished[2 * i] = -1 - first;
        continue;
      }
      const memory = attached.device.memory;
      let notify = false;
      queue.lockUsed();
      try {
        let published = false;
        for (let j = i; j < count; j++) {
          const element = finished[2 * j];
          if (
            element < 0 || started[3 * element] !== device || started[3 * element + 1] !== index
          ) continue;
          const status = finished[2 * j + 1] as RequestStatusCode;
          const generation = started[3 * element + 2];
          if (returnRequest(queue, memory, pool.record(element), status, generation)) {
            published = true;
          }
          finished[2 * j] = -1 - element;
        }
        notify = published && queue.needsInterrupt();
      } finally {
        queue.unlockUsed();
      }
      if (notify) attached.device.interrupts.usedBuffers(index);
    }
    // Taken before releasing: a release may drain (STARVED), which finishes nothing itself.
    this.#finishedCount = 0;
    for (let i = 0; i < count; i++) this.#release(-1 - finished[2 * i]);
  }

  /**
   * Returns `element` to freeq, wakes what it unblocked, and drains again if
   * the pool starved. STARVED is the pool's, not a queue's: the chains left
   * waiting may be another device's, so every ring with chains is drained.
   */
  #release(element: number): void {
    const pool = this.#pool;
    this.#wake(pool.finish(element));
    Atomics.add(this.#words, PoolWord.COMPLETED, 1);
    if (
      Atomics.load(this.#words, PoolWord.STARVED) === 1 &&
      Atomics.exchange(this.#words, PoolWord.STARVED, 0) === 1
    ) {
      if (this.#settings.dispatch === "worker") this.#drainEvery();
      else this.#ringKick();
    }
  }

  /**
   * Drains every ring of every attached device that has chains; returns
   * whether it queued anything. Every ring, not the first with chains: a
   * kick that came while a worker polled woke nobody (the poller sees WAKE
   * move, `src/virtio/doorbell.ts`), so kicks on several queues during one
   * spin are the poller's to hand out. It keeps one request for itself and
   * wakes a worker for each other runnable one, whichever queue it came
   * from; stopping at the first queue would leave another queue's chains
   * waiting behind the request it then runs.
   */
  #drainEvery(): boolean {
    let queued = 0;
    for (let device = 0; device < this.#devices.length; device++) {
      const queues = this.#devices[device]?.device.queues;
      if (queues === undefined) continue;
      for (let i = 0; i < queues.length; i++) {
        if (queues[i].hasAvailable) queued += this.drain(i, device, Infinity, queued === 0);
      }
    }
    return queued > 0;
  }

  /** Hands what was submitted on each I/O queue to its medium. */
  #commit(): void {
    for (let i = 0; i < this.#ioQueues.length; i++) this.#ioQueues[i].commit();
  }

  #collectIoQueues(): void {
    const queues = new Set<IoQueue>();
    for (const attached of this.#devices) if (attached?.device.io) queues.add(attached.device.io);
    const waiters = new Set<IoWaiter>();
    for (const queue of queues) if (queue.waiter) waiters.add(queue.waiter);
    // A thread sleeps in one place: its ring, or its event loop.
    if (waiters.size > 1) {
      throw new RangeError(
        `one thread cannot serve media that wait in different ways (${
          [...waiters].map((waiter) => waiter.kind).join(", ")
        }): give them threads of their own`,
      );
    }
    this.#ioQueues = [...queues];
    this.#waiter = waiters.values().next().value;
  }

  #anyAvailable(): boolean {
    for (const attached of this.#devices) {
      if (attached === undefined) continue;
      const queues = attached.device.queues;
      for (let i = 0; i < queues.length; i++) if (queues[i].hasAvailable) return true;
    }
    return false;
  }

  #wake(count: number): void {
    if (count <= 0) return;
    this.#pool.wake(count);
    this.#wakeSignal?.signal(count);
  }

  #ringKick(): void {
    Atomics.add(this.#words, PoolWord.KICK, 1);
    Atomics.notify(this.#words, PoolWord.KICK, 1);
  }
}
