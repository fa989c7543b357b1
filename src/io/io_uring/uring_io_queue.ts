/**
 * I/O queues on io_uring (ACRN's `aio=io_uring`). One {@linkcode UringContext}
 * per I/O thread owns the ring, the iovec arrays and the state of every
 * operation in flight; each medium the thread serves gets a
 * {@linkcode UringIoQueue} on it (its own file descriptor, the `range=`
 * window). All of a thread's queues share the ring, so one wait covers
 * every completion and the thread's wake-ups, and one `io_uring_enter`
 * submits what was prepared for every medium (the blockif server commits
 * each request as it starts it: on cached pages the kernel copies inside
 * that call, which must run on the thread that took the request).
 *
 * - Reads and writes go straight between the file and guest memory: one
 *   segment as READ/WRITE, several as READV/WRITEV whose iovecs point into
 *   guest memory (shared memory, or a vhost-user region's mapping).
 * - A durable (write-through) write carries RWF_DSYNC: stable when it
 *   completes, with one system call instead of a write and an fdatasync.
 * - A write to the page cache (not `nocache`) is a `pwritev2` on the
 *   thread, not an entry of the ring. The kernel does not complete a
 *   buffered write inside `io_uring_enter` here (ext4, Linux 6.18): it hands
 *   it to an io-wq thread (`iou-wrk-*`), which runs one file's buffered
 *   writes one at a time, and wakes the ring's thread when it is done.
 *   Through the ring, randwrite QD32 write-back ran at 61k IOPS, on the
 *   thread at 111k; a 4 KiB write-through write at QD1 spent 60 µs of its
 *   190 µs on the hop there and back. A durable one blocks the thread for
 *   its sync, so it runs there only when the server says the thread may
 *   block (`IoRequest.mayBlock`), and otherwise goes through the ring, as
 *   does every O_DIRECT write. A write that moves less than asked goes on
 *   through the ring from where it stopped.
 *   FLUSH is an fdatasync (IORING_OP_FSYNC, DATASYNC); the writes it must
 *   cover completed before it was submitted, so no ordering flag is needed.
 * - DISCARD and WRITE_ZEROES run their ranges one after another, each an
 *   IORING_OP_FALLOCATE (`src/io/space.ts`: a punched hole, a zeroed range;
 *   on a block device the kernel turns these into its zero-out); a zeroing
 *   mode the file system refuses (EOPNOTSUPP) falls back to the next, and
 *   at last to WRITEs from a buffer of zeros. io_uring has no discard of a
 *   block device: BLKDISCARD runs on the thread (ACRN runs every discard
 *   that way). A durable one ends with an fdatasync before it completes.
 * - A short transfer continues from where it stopped (the iovecs are moved
 *   past what was done); one that moves nothing (end of file) completes
 *   with {@linkcode IO_SHORT}; an error with `-errno`.
 * - Tokens are the thread's request-pool element indexes: `capacity`
 *   bounds them, and bounds the operations in flight, so the completion
 *   queue (twice the submission queue) can never overflow.
 *
 * @module
 */

import type { MemoryRegion } from "../../memory/guest_memory.ts";
import type { ThreadIo } from "../../backend/backend.ts";
import { VirtioBlkError } from "../../errors.ts";
import { ERRNO } from "../errno.ts";
import {
  IO_SHORT,
  IoOp,
  type IoQueue,
  type IoRequest,
  type IoWaiter,
  type KernelIoWaiter,
  withinMedium,
} from "../io_queue.ts";
import {
  BlockIoctl,
  discardResult,
  fallocateMode,
  firstZeroMethod,
  nextZeroMethod,
  refused,
  zeroChunk,
  ZeroMethod,
  type ZeroMethodCode,
} from "../space.ts";
import { IOVEC_SIZE, Op, RwFlag } from "./abi.ts";
import { IoUring } from "./ring.ts";
import { address, cString, errno, ioUringSys, Linux, SyscallError } from "./sys.ts";
import type { EventFdWakeHandle } from "./wake.ts";

const TWO_POW_32 = 0x1_0000_0000;
/** User data of the thread's wake-up reads: the first is 0xffff_ffff, down (never pool element indexes). */
const WAKE_TOKEN = 0xffff_ffff;

/** What a token's operation is, when it runs over ranges. */
const RangeOp = { NONE: 0, DISCARD: 1, ZERO: 2 } as const;

/** The eventfds a thread's ring waits on besides its I/O (see `wake.ts`). */
export interface UringWakeFds {
  /** The group's shared eventfd (semaphore mode): wakes for work. */
  readonly shared: number;
  /** This thread's own eventfd: wakes every thread must hear. */
  readonly own: number;
}

/** An eventfd the ring keeps a read pending on while the thread sleeps. */
interface WakeRead {
  readonly fd: number;
  readonly buffer: BigUint64Array;
  readonly address: number;
  armed: boolean;
}

/** Per-thread state of the ring and of every operation in flight. */
export class UringContext implements KernelIoWaiter {
  /** The thread sleeps in its ring (`io_uring_enter`). */
  readonly kind = "kernel";
  /** The ring. */
  readonly ring: IoUring;
  /** Most segments of one operation. */
  readonly maxSegments: number;
  /** Pool elements (tokens) this context can track. */
  readonly capacity: number;
  // The iovec arrays, one run of maxSegments per token, in shared memory (never moved by GC).
  readonly #iovecs: Uint32Array;
  readonly #iovecBase: number;
  /** Each token's first iovec address as a BigInt, made on first use (`pwritev2`). */
  readonly #iovecAddresses: (bigint | undefined)[] = [];
  // State of each token's operation.
  readonly #opcode: Uint8Array;
  readonly #fd: Int32Array;
  readonly #position: Float64Array;
  readonly #remaining: Float64Array;
  readonly #first: Int32Array;
  readonly #last: Int32Array;
  readonly #rwFlags: Int32Array;
  readonly #active: Uint8Array;
  // DISCARD and WRITE_ZEROES: each token's ranges (file positions), which one runs, and how.
  readonly #rangeOp: Uint8Array;
  readonly #rangeStart: Float64Array;
  readonly #rangeLength: Float64Array;
  readonly #rangeUnmap: Uint8Array;
  readonly #rangeIndex: Int32Array;
  readonly #rangeCount: Int32Array;
  readonly #zeroMethod: Uint8Array;
  readonly #durable: Uint8Array;
  /** Host address of the buffer of zeros WRITE_ZEROES falls back to writing from. */
  #zerosAddress = 0;
  #inFlight = 0;
  /** Operations finished without the kernel (refused), waiting for reap. */
  readonly #immediateTokens: Int32Array;
  readonly #immediateResults: Int32Array;
  #immediateCount = 0;
  /** Region → host address of its first byte. */
  readonly #addresses = new Map<MemoryRegion, number>();
  // Wake-ups: eventfds the ring has reads pending on while the thread sleeps.
  readonly #wakeReads: WakeRead[];
  /** An eventfd of the context's own, when no group's was given (closed with it). */
  readonly #ownWakeFd: number | undefined;
  /** Queues open on this context; the last one to close closes it. */
  #queues = 0;
  #closed = false;

  /**
   * @param capacity tokens (request-pool elements) the thread may have in flight
   * @param maxSegments most data segments of one operation (seg_max)
   * @param wake the eventfds of the thread group's wake signal (default: one of its own)
   */
  constructor(capacity: number, maxSegments: number, wake?: UringWakeFds) {
    this.capacity = capacity;
    this.maxSegments = maxSegments;
    // One entry per operation in flight, the wake-up reads, and room for resubmits.
    let entries = 8;
    while (entries < capacity + 3) entries *= 2;
    this.ring = new IoUring(Math.min(entries, 4096));
    const iovecBuffer = new SharedArrayBuffer(Math.max(1, capacity * maxSegments) * IOVEC_SIZE);
    this.#iovecs = new Uint32Array(iovecBuffer);
    this.#iovecBase = address(Deno.UnsafePointer.of(this.#iovecs));
    this.#opcode = new Uint8Array(capacity);
    this.#fd = new Int32Array(capacity);
    this.#position = new Float64Array(capacity);
    this.#remaining = new Float64Array(capacity);
    this.#first = new Int32Array(capacity);
    this.#last = new Int32Array(capacity);
    this.#rwFlags = new Int32Array(capacity);
    this.#active = new Uint8Array(capacity);
    this.#rangeOp = new Uint8Array(capacity);
    this.#rangeStart = new Float64Array(capacity * maxSegments);
    this.#rangeLength = new Float64Array(capacity * maxSegments);
    this.#rangeUnmap = new Uint8Array(capacity * maxSegments);
    this.#rangeIndex = new Int32Array(capacity);
    this.#rangeCount = new Int32Array(capacity);
    this.#zeroMethod = new Uint8Array(capacity);
    this.#durable = new Uint8Array(capacity);
    this.#immediateTokens = new Int32Array(capacity);
    this.#immediateResults = new Int32Array(capacity);
    if (wake === undefined) {
      // Blocking, as in wake.ts: io_uring would answer a nonblocking one's read with EAGAIN.
      const fd = ioUringSys().eventfd(0, Linux.EFD_CLOEXEC);
      if (fd < 0) {
        this.ring.close();
        throw new SyscallError("eventfd", errno());
      }
      this.#ownWakeFd = fd;
    }
    const fds = wake === undefined ? [this.#ownWakeFd!] : [wake.shared, wake.own];
    this.#wakeReads = fds.map((fd) => {
      const buffer = new BigUint64Array(new SharedArrayBuffer(8));
      return { fd, buffer, address: address(Deno.UnsafePointer.of(buffer)), armed: false };
    });
  }

  /** Operations submitted and not yet reaped. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Starts a transfer or flush of `request` on `fd` for `token`, at file
   * offset `windowStart + request.offset`. False when the ring is full.
   */
  start(
    request: IoRequest,
    token: number,
    fd: number,
    windowStart: number,
    writeOnThread = false,
  ): boolean {
    this.#check(token);
    const vector = request.vector;
    // A transfer of no bytes moves nothing; the kernel would answer it with
    // 0, which reads as the end of the file. A durable one is a sync, as on
    // the synchronous queues.
    const empty = request.op !== IoOp.FLUSH && vector.bytes === 0;
    if (empty && !(request.op === IoOp.WRITE && request.durable)) return this.finishNow(token, 0);
    if (request.op === IoOp.FLUSH || empty) {
      if (!this.#roomFor(1)) return false;
      this.#opcode[token] = Op.FSYNC;
      this.ring.prepareFsync(fd, true, token);
    } else {
      if (vector.count > this.maxSegments) {
        throw new RangeError(`${vector.count} segments exceed this ring's ${this.maxSegments}`);
      }
      if (!this.#roomFor(1)) return false;
      const base = token * this.maxSegments;
      for (let i = 0; i < vector.count; i++) {
        this.#setIovec(
          base + i,
          this.#regionAddress(vector.regions[i]) + vector.offsets[i],
          vector.lengths[i],
        );
      }
      const write = request.op === IoOp.WRITE;
      this.#opcode[token] = write ? Op.WRITEV : Op.READV;
      this.#fd[token] = fd;
      this.#position[token] = windowStart + request.offset;
      this.#remaining[token] = vector.bytes;
      this.#first[token] = base;
      this.#last[token] = base + vector.count;
      this.#rwFlags[token] = write && request.durable ? RwFlag.DSYNC : 0;
      if (write && writeOnThread) {
        const finished = this.#writeNow(token);
        if (finished) {
          this.#rangeOp[token] = RangeOp.NONE;
          return true;
        }
      }
      this.#prepareTransfer(token);
    }
    this.#rangeOp[token] = RangeOp.NONE;
    this.#claim(token);
    return true;
  }

  /**
   * Starts a DISCARD or WRITE_ZEROES of `request` on `fd` for `token`: its
   * ranges at file position `windowStart + offset`, one after another. A
   * block device's DISCARD runs here (BLKDISCARD: io_uring has no such
   * operation). False when the ring is full.
   */
  startRanges(
    request: IoRequest,
    token: number,
    fd: number,
    windowStart: number,
    blockDevice: boolean,
  ): boolean {
    this.#check(token);
    const { ranges } = request;
    if (ranges.count > this.maxSegments) {
      throw new RangeError(`${ranges.count} ranges exceed this ring's ${this.maxSegments}`);
    }
    if (!this.#roomFor(1)) return false;
    const discard = request.op === IoOp.DISCARD;
    const base = token * this.maxSegments;
    for (let i = 0; i < ranges.count; i++) {
      this.#rangeStart[base + i] = windowStart + ranges.offsets[i];
      this.#rangeLength[base + i] = ranges.lengths[i];
      this.#rangeUnmap[base + i] = ranges.unmap[i];
    }
    this.#fd[token] = fd;
    this.#rangeOp[token] = discard ? RangeOp.DISCARD : RangeOp.ZERO;
    this.#rangeCount[token] = ranges.count;
    this.#durable[token] = request.durable ? 1 : 0;
    this.#rangeIndex[token] = 0;
    if (discard && blockDevice) {
      const result = this.#blockDiscard(fd, base, ranges.count);
      if (result < 0) {
        this.#rangeOp[token] = RangeOp.NONE;
        return this.finishNow(token, result);
      }
      this.#rangeIndex[token] = ranges.count;
    }
    const result = this.#startRange(token);
    if (result !== undefined) {
      this.#rangeOp[token] = RangeOp.NONE;
      return this.finishNow(token, result);
    }
    this.#claim(token);
    return true;
  }

  /** Finishes `token` with `result` without the kernel; reaped like any completion. */
  finishNow(token: number, result: number): boolean {
    this.#claim(token);
    this.#immediateTokens[this.#immediateCount] = token;
    this.#immediateResults[this.#immediateCount] = result;
    this.#immediateCount++;
    return true;
  }

  /** Hands the prepared entries to the kernel. */
  commit(): void {
    if (this.ring.unsubmitted > 0) this.ring.submit(0);
  }

  /**
   * Hands every finished operation to `done`; continues short transfers;
   * notes a wake-up. Returns how many operations finished.
   */
  reap(done: (token: number, result: number) => void): number {
    this.#done = done;
    this.#finished = 0;
    this.#resubmitted = false;
    try {
      while (this.#immediateCount > 0) {
        const i = --this.#immediateCount;
        this.#release(this.#immediateTokens[i]);
        this.#finished++;
        done(this.#immediateTokens[i], this.#immediateResults[i]);
      }
      this.ring.reap(this.#onCompletion);
    } finally {
      this.#done = undefined;
    }
    if (this.#resubmitted) this.commit();
    return this.#finished;
  }

  /**
   * What {@linkcode reap} does with one completion. One function made once,
   * not a closure per reap: a closure per call is garbage on every pass, and
   * young-generation collections wake V8's helper threads on these 2 cores.
   */
  readonly #onCompletion = (token: number, result: number): void => {
    const done = this.#done!;
    if (token > WAKE_TOKEN - this.#wakeReads.length) {
      this.#wakeReads[WAKE_TOKEN - token].armed = false;
      return;
    }
    if (this.#active[token] !== 1) return; // a cancelled operation of a closed queue
    if (this.#rangeOp[token] !== RangeOp.NONE) {
      const final = this.#rangeStep(token, result);
      if (final === undefined) {
        this.#resubmitted = true;
        return;
      }
      this.#rangeOp[token] = RangeOp.NONE;
      this.#release(token);
      this.#finished++;
      done(token, final);
      return;
    }
    const opcode = this.#opcode[token];
    if (result >= 0 && opcode !== Op.FSYNC) {
      if (result === 0) {
        result = IO_SHORT;
      } else if (result < this.#remaining[token]) {
        this.#advance(token, result);
        this.#prepareTransfer(token);
        this.#resubmitted = true;
        return;
      } else {
        result = 0;
      }
    }
    this.#release(token);
    this.#finished++;
    done(token, result < 0 ? result : 0);
  };

  // The state of the reap in progress, for #onCompletion.
  #done: ((token: number, result: number) => void) | undefined;
  #finished = 0;
  #resubmitted = false;

  /** Whether a completion (or a wake-up) is there already. */
  get ready(): boolean {
    return this.ring.ready > 0 || this.#immediateCount > 0;
  }

  /**
   * Blocks until a completion or a wake-up arrives (after submitting what
   * is prepared). Returns at once if one is already there.
   */
  sleep(): void {
    this.#armWake();
    if (this.ready) {
      this.commit();
      return;
    }
    this.ring.submit(1);
  }

  /** Whether the last queue closed the context (its ring is gone). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Counts a queue opened on this context. */
  retain(): void {
    this.#queues++;
  }

  /** Counts a queue closed; the last one closes the context. */
  release(): void {
    if (--this.#queues === 0) this.close();
  }

  /** Closes the ring (abandoning what is in flight) and its own wake-up eventfd. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.ring.close();
    if (this.#ownWakeFd !== undefined) ioUringSys().close(this.#ownWakeFd);
    this.#active.fill(0);
    this.#inFlight = 0;
    this.#immediateCount = 0;
  }

  #check(token: number): void {
    if (!(token >= 0 && token < this.capacity) || this.#active[token] === 1) {
      throw new RangeError(`io_uring token ${token} is out of range or already in flight`);
    }
  }

  #claim(token: number): void {
    this.#check(token);
    this.#active[token] = 1;
    this.#inFlight++;
  }

  #release(token: number): void {
    this.#active[token] = 0;
    this.#inFlight--;
  }

  #armWake(): void {
    for (let i = 0; i < this.#wakeReads.length; i++) {
      const read = this.#wakeReads[i];
      if (read.armed) continue;
      read.armed = this.ring.prepareTransfer(
        Op.READ,
        read.fd,
        read.address,
        8,
        0,
        0,
        WAKE_TOKEN - i,
      );
    }
  }

  /** Whether `count` more entries fit (submitting what is prepared to make room). */
  #roomFor(count: number): boolean {
    if (this.ring.sqSpace >= count) return true;
    this.ring.submit(0);
    return this.ring.sqSpace >= count;
  }

  /**
   * A write as one `pwritev2` on this thread, RWF_DSYNC when durable (see
   * the module doc for when and why not through the ring). Returns true
   * when that finished it (done, or failed: completed with `-errno`); false
   * when it moved only part (or was interrupted), which the caller
   * continues through the ring.
   * Only ever from a token's first iovec (a continuation goes through the
   * ring), whose address is made a BigInt once per token.
   */
  #writeNow(token: number): boolean {
    const first = this.#first[token];
    const moved = ioUringSys().pwritev2(
      this.#fd[token],
      this.#iovecAddress(token),
      this.#last[token] - first,
      BigInt(this.#position[token]),
      this.#rwFlags[token],
    );
    if (moved < 0) {
      const code = errno();
      // Interrupted before it moved anything: the whole write through the ring instead.
      if (code === Linux.EINTR) return false;
      // Never -0 (which reads as success) if errno was somehow left at 0.
      return this.finishNow(token, code > 0 ? -code : -ERRNO.EIO);
    }
    if (moved >= this.#remaining[token]) return this.finishNow(token, 0);
    // Less than asked (a full disk, a signal): the rest as a ring entry, with the same flags.
    this.#advance(token, moved);
    return false;
  }

  /** The address of `token`'s first iovec, as the BigInt a 64-bit FFI argument takes. */
  #iovecAddress(token: number): bigint {
    return this.#iovecAddresses[token] ??= BigInt(
      this.#iovecBase + token * this.maxSegments * IOVEC_SIZE,
    );
  }

  #prepareTransfer(token: number): void {
    const first = this.#first[token];
    const count = this.#last[token] - first;
    const write = this.#opcode[token] === Op.WRITEV;
    const w = first * (IOVEC_SIZE / 4);
    if (count === 1) {
      const buffer = this.#iovecs[w] + this.#iovecs[w + 1] * TWO_POW_32;
      this.ring.prepareTransfer(
        write ? Op.WRITE : Op.READ,
        this.#fd[token],
        buffer,
        this.#iovecs[w + 2],
        this.#position[token],
        this.#rwFlags[token],
        token,
      );
    } else {
      this.ring.prepareTransfer(
        write ? Op.WRITEV : Op.READV,
        this.#fd[token],
        this.#iovecBase + first * IOVEC_SIZE,
        count,
        this.#position[token],
        this.#rwFlags[token],
        token,
      );
    }
  }

  /**
   * A step of `token`'s DISCARD or WRITE_ZEROES finished with `result`:
   * prepares the next step and returns undefined, or returns the result of
   * the whole operation (0 or negative).
   */
  #rangeStep(token: number, result: number): number | undefined {
    const opcode = this.#opcode[token];
    if (opcode === Op.FSYNC) return result < 0 ? result : 0;
    if (opcode === Op.FALLOCATE) {
      if (this.#rangeOp[token] === RangeOp.DISCARD) {
        result = discardResult(result);
      } else if (refused(result)) {
        // The file system cannot zero this way: the next method, for the same range.
        const method = nextZeroMethod(this.#zeroMethod[token] as ZeroMethodCode);
        this.#zeroMethod[token] = method;
        if (method === ZeroMethod.WRITE) this.#startZeroWrite(token);
        else this.#prepareFallocate(token);
        return undefined;
      }
      if (result < 0) return result;
    } else {
      // A WRITE of zeros.
      if (result < 0) return result;
      if (result === 0) return IO_SHORT;
      this.#position[token] += result;
      this.#remaining[token] -= result;
      if (this.#remaining[token] > 0) {
        this.#prepareZeroWrite(token);
        return undefined;
      }
    }
    this.#rangeIndex[token]++;
    return this.#startRange(token);
  }

  /**
   * Prepares the first step of `token`'s current range, or, past the last
   * one, the closing fdatasync of a durable operation; returns 0 when
   * nothing is left to do (undefined when a step was prepared).
   */
  #startRange(token: number): number | undefined {
    const index = this.#rangeIndex[token];
    if (index >= this.#rangeCount[token]) {
      if (this.#durable[token] === 0) return 0;
      this.#durable[token] = 0;
      this.#opcode[token] = Op.FSYNC;
      this.ring.prepareFsync(this.#fd[token], true, token);
      return undefined;
    }
    const unmap = this.#rangeUnmap[token * this.maxSegments + index] === 1;
    this.#zeroMethod[token] = this.#rangeOp[token] === RangeOp.DISCARD
      ? ZeroMethod.PUNCH_HOLE
      : firstZeroMethod(unmap);
    this.#prepareFallocate(token);
    return undefined;
  }

  #prepareFallocate(token: number): void {
    const at = token * this.maxSegments + this.#rangeIndex[token];
    this.#opcode[token] = Op.FALLOCATE;
    this.ring.prepareFallocate(
      this.#fd[token],
      fallocateMode(this.#zeroMethod[token] as ZeroMethodCode),
      this.#rangeStart[at],
      this.#rangeLength[at],
      token,
    );
  }

  #startZeroWrite(token: number): void {
    const at = token * this.maxSegments + this.#rangeIndex[token];
    this.#position[token] = this.#rangeStart[at];
    this.#remaining[token] = this.#rangeLength[at];
    this.#prepareZeroWrite(token);
  }

  #prepareZeroWrite(token: number): void {
    const zeros = zeroChunk();
    if (this.#zerosAddress === 0) this.#zerosAddress = address(Deno.UnsafePointer.of(zeros));
    this.#opcode[token] = Op.WRITE;
    this.ring.prepareTransfer(
      Op.WRITE,
      this.#fd[token],
      this.#zerosAddress,
      Math.min(zeros.length, this.#remaining[token]),
      this.#position[token],
      0,
      token,
    );
  }

  /** BLKDISCARD of `count` ranges from `base` on block device `fd`, here; 0 or −errno. */
  #blockDiscard(fd: number, base: number, count: number): number {
    const range = new BigUint64Array(2);
    for (let i = 0; i < count; i++) {
      range[0] = BigInt(this.#rangeStart[base + i]);
      range[1] = BigInt(this.#rangeLength[base + i]);
      const failed = ioUringSys().ioctl(fd, BigInt(BlockIoctl.BLKDISCARD), range) < 0;
      const result = discardResult(failed ? -errno() : 0);
      if (result < 0) return result;
    }
    return 0;
  }

  /** Moves `token`'s iovecs past `done` bytes. */
  #advance(token: number, done: number): void {
    this.#position[token] += done;
    this.#remaining[token] -= done;
    let i = this.#first[token];
    for (;;) {
      const w = i * (IOVEC_SIZE / 4);
      const length = this.#iovecs[w + 2];
      if (done < length) {
        const base = this.#iovecs[w] + this.#iovecs[w + 1] * TWO_POW_32 + done;
        this.#setIovec(i, base, length - done);
        break;
      }
      done -= length;
      i++;
    }
    this.#first[token] = i;
  }

  #setIovec(index: number, base: number, length: number): void {
    const w = index * (IOVEC_SIZE / 4);
    this.#iovecs[w] = base % TWO_POW_32;
    this.#iovecs[w + 1] = Math.floor(base / TWO_POW_32);
    this.#iovecs[w + 2] = length;
    this.#iovecs[w + 3] = 0;
  }

  #regionAddress(region: MemoryRegion): number {
    let base = this.#addresses.get(region);
    if (base === undefined) {
      base = address(Deno.UnsafePointer.of(region.bytes));
      this.#addresses.set(region, base);
    }
    return base;
  }
}

/** Each thread's rings, by the server (its pool) they serve: tokens are that pool's elements. */
const contexts = new WeakMap<ThreadIo, UringContext>();

/**
 * The ring of the server `thread` describes (one per server, shared by its
 * io_uring queues; its tokens are the server's pool elements), made on
 * first use. Its sleeps also end on `thread.wake` when that is an eventfd.
 */
export function threadUringContext(thread: ThreadIo): UringContext {
  let context = contexts.get(thread);
  // The last queue of a thread's ring closed it (its medium detached or changed): a new one.
  if (context === undefined || context.closed) {
    context = new UringContext(thread.capacity, thread.segMax, groupWakeFds(thread));
    contexts.set(thread, context);
  }
  return context;
}

/** The eventfds of `thread`'s group wake signal, if it has one. */
function groupWakeFds(thread: ThreadIo): UringWakeFds | undefined {
  const wake = thread.wake as Partial<EventFdWakeHandle> | undefined;
  if (wake?.kind !== "eventfd") return undefined;
  const own = thread.thread === undefined ? undefined : wake.threadFds?.[thread.thread];
  if (own === undefined || wake.fd === undefined) {
    // Control messages and closing would never reach this thread.
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `thread ${thread.thread} has no part of its group's wake signal`,
    );
  }
  return { shared: wake.fd, own };
}

/** How a {@linkcode UringIoQueue} opens its file. */
export interface UringFile {
  /** Path of the file or block device. */
  readonly path: string;
  /** Byte offset of the device's first byte in the file (`range=`). */
  readonly offset: number;
  /** Bytes the device exposes. */
  readonly size: number;
  /** Opened read-only. */
  readonly readOnly: boolean;
  /** Opened with O_DIRECT (`nocache`). */
  readonly direct: boolean;
  /** A block device: DISCARD is BLKDISCARD, not a punched hole. */
  readonly blockDevice?: boolean;
}

/** One medium's queue on a thread's {@linkcode UringContext}. */
export class UringIoQueue implements IoQueue {
  readonly #context: UringContext;
  readonly #file: UringFile;
  readonly #fd: number;
  #closed = false;

  /**
   * Opens `file` on this thread (never creating or truncating it).
   *
   * @throws {VirtioBlkError} `BAD_BACKING_FILE` when it cannot be opened
   */
  constructor(context: UringContext, file: UringFile) {
    this.#context = context;
    this.#file = file;
    context.retain();
    const flags = (file.readOnly ? Linux.O_RDONLY : Linux.O_RDWR) | Linux.O_CLOEXEC |
      (file.direct ? Linux.O_DIRECT : 0);
    const fd = ioUringSys().open(cString(file.path), flags, 0);
    if (fd < 0) {
      context.release();
      const error = new SyscallError("open", errno());
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `cannot open backing file ${file.path}: ${error.message}`,
        { cause: error },
      );
    }
    this.#fd = fd;
  }

  get inFlight(): number {
    return this.#context.inFlight;
  }

  submit(request: IoRequest, token: number): boolean {
    if (this.#closed) {
      throw new VirtioBlkError("CLOSED", `io_uring queue of ${this.#file.path} is closed`);
    }
    const { op } = request;
    if (op === IoOp.DISCARD || op === IoOp.WRITE_ZEROES) {
      const { ranges } = request;
      for (let i = 0; i < ranges.count; i++) {
        if (!this.#inWindow(ranges.offsets[i], ranges.lengths[i])) {
          return this.#context.finishNow(token, IO_SHORT);
        }
      }
      if (this.#file.readOnly) return this.#context.finishNow(token, -ERRNO.EBADF);
      const { offset, blockDevice } = this.#file;
      return this.#context.startRanges(request, token, this.#fd, offset, blockDevice ?? false);
    }
    if (op !== IoOp.FLUSH) {
      if (!this.#inWindow(request.offset, request.vector.bytes)) {
        return this.#context.finishNow(token, IO_SHORT);
      }
      if (op === IoOp.WRITE && this.#file.readOnly) {
        return this.#context.finishNow(token, -ERRNO.EBADF);
      }
    }
    const writeOnThread = op === IoOp.WRITE && !this.#file.direct &&
      (!request.durable || request.mayBlock);
    return this.#context.start(request, token, this.#fd, this.#file.offset, writeOnThread);
  }

  /** The window is ours to enforce: the kernel knows only the file. */
  #inWindow(offset: number, length: number): boolean {
    return withinMedium(offset, length, this.#file.size);
  }

  commit(): void {
    this.#context.commit();
  }

  reap(done: (token: number, result: number) => void): number {
    return this.#context.reap(done);
  }

  wait(): void {
    if (this.#context.inFlight > 0) this.#context.sleep();
  }

  get waiter(): IoWaiter {
    return this.#context;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    ioUringSys().close(this.#fd);
    this.#context.release();
  }
}
