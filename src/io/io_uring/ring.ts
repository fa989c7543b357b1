/**
 * One io_uring instance: the submission and completion rings mapped into
 * this thread, and the few operations the block data path submits.
 *
 * Memory ordering. The rings are shared with the kernel, which may write
 * completions from another CPU while this thread reads them. The mapped
 * memory is a plain (non-shared) ArrayBuffer, on which `Atomics.load` and
 * `Atomics.store` still compile to ordered accesses that the JIT neither
 * drops nor moves past other memory accesses:
 * - Submission: the entry (and its iovecs) is written with plain stores,
 *   then the SQ tail with `Atomics.store` — the release the kernel's
 *   `smp_load_acquire` of the tail pairs with. This thread never polls with
 *   SQPOLL, so the kernel only reads the tail inside `io_uring_enter`, a
 *   full barrier anyway; the ordered store keeps it right without that.
 * - Completion: the CQ tail is read with `Atomics.load` (the acquire that
 *   pairs with the kernel's `smp_store_release` after it wrote the entry)
 *   before the entries up to it are read; x86-64 does not reorder loads
 *   with later loads. The CQ head is stored with `Atomics.store` only after
 *   the entries were read, so the kernel never reuses a slot still being read.
 * - The SQ head (which the kernel advances as it consumes entries) is read
 *   with `Atomics.load` to compute free slots.
 *
 * Each ring is used by one thread: none of these methods may be called
 * concurrently.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import {
  Cqe,
  CqOffset,
  EnterFlag,
  Feature,
  IORING_FSYNC_DATASYNC,
  MmapOffset,
  Op,
  Params,
  Sqe,
  SqOffset,
  Syscall,
} from "./abi.ts";
import { address, errno, ioUringSys, Linux, SyscallError } from "./sys.ts";

const TWO_POW_32 = 0x1_0000_0000;

/**
 * The arguments of io_uring_enter as BigInts, made once: Deno's FFI takes an
 * i64 fastest as a BigInt (0.12 µs a call here, 0.36 µs for a number), and a
 * BigInt made per call is garbage on every submit.
 */
const ENTER = BigInt(Syscall.IO_URING_ENTER);
const GETEVENTS = BigInt(EnterFlag.GETEVENTS);
const smallBigInts: bigint[] = [];

/** `BigInt(n)` for a count `n` (at most the ring's entries), from a cache. */
function countArgument(n: number): bigint {
  return smallBigInts[n] ??= BigInt(n);
}

interface Mapped {
  readonly pointer: Deno.PointerObject;
  readonly length: number;
}

function mapRing(fd: number, length: number, offset: bigint): Mapped {
  const pointer = ioUringSys().mmap(
    null,
    BigInt(length),
    Linux.PROT_READ | Linux.PROT_WRITE,
    Linux.MAP_SHARED | Linux.MAP_POPULATE,
    fd,
    offset,
  );
  // MAP_FAILED is (void *) -1, which Deno hands back as a pointer too.
  const value = pointer === null
    ? 0n
    : BigInt.asUintN(64, BigInt(Deno.UnsafePointer.value(pointer)));
  if (pointer === null || value === 0xffff_ffff_ffff_ffffn) throw new SyscallError("mmap", errno());
  return { pointer, length };
}

/** A completion as {@linkcode IoUring.reap} reports it. */
export type CompletionHandler = (userData: number, result: number) => void;

/** An io_uring instance owned by one thread. */
export class IoUring {
  /** The ring's file descriptor. */
  readonly fd: number;
  /** Submission queue entries. */
  readonly sqEntries: number;
  /** Completion queue entries (twice the SQ's by default). */
  readonly cqEntries: number;
  readonly #maps: Mapped[];
  // SQ ring words
  readonly #sqHead: Uint32Array;
  readonly #sqTail: Uint32Array;
  readonly #sqMask: number;
  // SQEs, as bytes and as u32 words
  readonly #sqes: Uint8Array;
  readonly #sqeWords: Uint32Array;
  // CQ ring
  readonly #cqHead: Uint32Array;
  readonly #cqTail: Uint32Array;
  readonly #cqMask: number;
  readonly #cqes: Int32Array;
  readonly #cqesOffset: number;
  /** Entries written since the last submit. */
  #pending = 0;
  /** `fd` as io_uring_enter's argument. */
  readonly #fdArgument: bigint;
  /** The SQ tail as this thread knows it (it is the only writer). */
  #tail: number;
  #closed = false;

  /**
   * Sets up a ring with `entries` submission entries (a power of two; the
   * kernel rounds up) and maps it.
   *
   * @throws {VirtioBlkError} `UNSUPPORTED` when the kernel refuses io_uring
   *   (too old, disabled by `kernel.io_uring_disabled`, seccomp) or FFI is missing
   */
  constructor(entries = 256) {
    const sys = ioUringSys();
    const params = new Uint8Array(Params.SIZE);
    const fd = Number(
      sys.syscall(
        BigInt(Syscall.IO_URING_SETUP),
        BigInt(entries),
        BigInt(address(Deno.UnsafePointer.of(params))),
        0n,
        0n,
        0n,
        0n,
      ),
    );
    if (fd < 0) {
      const error = new SyscallError("io_uring_setup", errno());
      throw new VirtioBlkError("UNSUPPORTED", `io_uring is not available: ${error.message}`, {
        cause: error,
      });
    }
    this.fd = fd;
    this.#fdArgument = BigInt(fd);
    const p = new DataView(params.buffer);
    const u32 = (at: number) => p.getUint32(at, true);
    this.sqEntries = u32(Params.SQ_ENTRIES);
    this.cqEntries = u32(Params.CQ_ENTRIES);
    const features = u32(Params.FEATURES);
    const sqOff = (field: number) => u32(Params.SQ_OFF + 4 * field);
    const cqOff = (field: number) => u32(Params.CQ_OFF + 4 * field);
    this.#maps = [];
    try {
      if ((features & Feature.NODROP) === 0) {
        throw new VirtioBlkError(
          "UNSUPPORTED",
          "io_uring without IORING_FEAT_NODROP (Linux < 5.5) could drop completions",
        );
      }
      const sqRingBytes = sqOff(SqOffset.ARRAY) + this.sqEntries * 4;
      const cqRingBytes = cqOff(CqOffset.CQES) + this.cqEntries * Cqe.SIZE;
      let sqRing: Mapped, cqRing: Mapped;
      if (features & Feature.SINGLE_MMAP) {
        sqRing = cqRing = mapRing(fd, Math.max(sqRingBytes, cqRingBytes), MmapOffset.SQ_RING);
        this.#maps.push(sqRing);
      } else {
        sqRing = mapRing(fd, sqRingBytes, MmapOffset.SQ_RING);
        this.#maps.push(sqRing);
        cqRing = mapRing(fd, cqRingBytes, MmapOffset.CQ_RING);
        this.#maps.push(cqRing);
      }
      const sqeArea = mapRing(fd, this.sqEntries * Sqe.SIZE, MmapOffset.SQES);
      this.#maps.push(sqeArea);

      const sqBuffer = Deno.UnsafePointerView.getArrayBuffer(sqRing.pointer, sqRing.length);
      const cqBuffer = Deno.UnsafePointerView.getArrayBuffer(cqRing.pointer, cqRing.length);
      const sqeBuffer = Deno.UnsafePointerView.getArrayBuffer(sqeArea.pointer, sqeArea.length);
      this.#sqHead = new Uint32Array(sqBuffer, sqOff(SqOffset.HEAD), 1);
      this.#sqTail = new Uint32Array(sqBuffer, sqOff(SqOffset.TAIL), 1);
      this.#sqMask = new Uint32Array(sqBuffer, sqOff(SqOffset.RING_MASK), 1)[0];
      // Entry i of the SQE array always sits in slot i of the index array.
      const array = new Uint32Array(sqBuffer, sqOff(SqOffset.ARRAY), this.sqEntries);
      for (let i = 0; i < this.sqEntries; i++) array[i] = i;
      this.#sqes = new Uint8Array(sqeBuffer);
      this.#sqeWords = new Uint32Array(sqeBuffer);
      this.#cqHead = new Uint32Array(cqBuffer, cqOff(CqOffset.HEAD), 1);
      this.#cqTail = new Uint32Array(cqBuffer, cqOff(CqOffset.TAIL), 1);
      this.#cqMask = new Uint32Array(cqBuffer, cqOff(CqOffset.RING_MASK), 1)[0];
      this.#cqes = new Int32Array(cqBuffer);
      this.#cqesOffset = cqOff(CqOffset.CQES) / 4;
      this.#tail = Atomics.load(this.#sqTail, 0);
    } catch (error) {
      this.#unmapAll();
      sys.close(fd);
      throw error;
    }
  }

  /** Submission entries free now (the kernel frees them as it consumes them). */
  get sqSpace(): number {
    return this.sqEntries - ((this.#tail - Atomics.load(this.#sqHead, 0)) >>> 0);
  }

  /** Entries prepared and not yet submitted. */
  get unsubmitted(): number {
    return this.#pending;
  }

  /**
   * Prepares a read (`Op.READ`/`Op.READV`) or write (`Op.WRITE`/`Op.WRITEV`)
   * of `length` bytes (or `length` iovecs for the vectored forms) at file
   * offset `offset` from/to host address `buffer`.
   *
   * @returns false when the submission queue is full (submit first)
   */
  prepareTransfer(
    opcode: number,
    fd: number,
    buffer: number,
    length: number,
    offset: number,
    rwFlags: number,
    userData: number,
  ): boolean {
    const at = this.#nextEntry();
    if (at < 0) return false;
    this.#fill(at, opcode, fd, offset, buffer, length, rwFlags, userData);
    return true;
  }

  /** Prepares an fdatasync of `fd` (or fsync when `dataOnly` is false). */
  prepareFsync(fd: number, dataOnly: boolean, userData: number): boolean {
    const at = this.#nextEntry();
    if (at < 0) return false;
    this.#fill(at, Op.FSYNC, fd, 0, 0, 0, dataOnly ? IORING_FSYNC_DATASYNC : 0, userData);
    return true;
  }

  /** Prepares `fallocate(fd, mode, offset, length)`. */
  prepareFallocate(
    fd: number,
    mode: number,
    offset: number,
    length: number,
    userData: number,
  ): boolean {
    const at = this.#nextEntry();
    if (at < 0) return false;
    // fallocate carries the length in `addr` and the mode in `len`.
    this.#fill(at, Op.FALLOCATE, fd, offset, length, mode, 0, userData);
    return true;
  }

  /**
   * Submits what was prepared and, with `waitFor` > 0, waits until at least
   * that many completions are ready. Returns how many entries the kernel took.
   * An interrupted wait (EINTR) returns normally: look at the completions.
   *
   * @throws {SyscallError} when io_uring_enter fails otherwise
   */
  submit(waitFor = 0): number {
    const toSubmit = this.#pending;
    if (toSubmit === 0 && waitFor === 0) return 0;
    const result = ioUringSys().enter(
      ENTER,
      this.#fdArgument,
      countArgument(toSubmit),
      countArgument(waitFor),
      waitFor > 0 ? GETEVENTS : 0n,
      0n,
      0n,
    );
    if (result < 0) {
      const code = errno();
      // EINTR: a signal; EBUSY/EAGAIN: completions must be reaped first. The
      // entries stay in the SQ and go with the next submit.
      if (code === Linux.EINTR || code === Linux.EBUSY || code === Linux.EAGAIN) return 0;
      throw new SyscallError("io_uring_enter", code);
    }
    this.#pending -= Math.min(result, toSubmit);
    return result;
  }

  /** Completions ready now (without a system call). */
  get ready(): number {
    return (Atomics.load(this.#cqTail, 0) - Atomics.load(this.#cqHead, 0)) >>> 0;
  }

  /**
   * Hands every ready completion to `handler` (user data, then the result:
   * bytes moved or −errno) and frees its slot. Returns how many.
   */
  reap(handler: CompletionHandler): number {
    let head = Atomics.load(this.#cqHead, 0);
    const tail = Atomics.load(this.#cqTail, 0);
    let count = 0;
    while (head !== tail) {
      const word = this.#cqesOffset + ((head & this.#cqMask) * Cqe.SIZE) / 4;
      // user_data is ours: only the low 32 bits are ever set.
      const userData = this.#cqes[word + Cqe.USER_DATA / 4] >>> 0;
      const result = this.#cqes[word + Cqe.RES / 4];
      head = (head + 1) >>> 0;
      count++;
      // Free the slot before the handler runs: it may prepare and submit more.
      Atomics.store(this.#cqHead, 0, head);
      handler(userData, result);
    }
    return count;
  }

  /** Unmaps the rings and closes the ring's fd (in-flight operations are cancelled). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unmapAll();
    ioUringSys().close(this.fd);
  }

  #nextEntry(): number {
    if (this.#closed) throw new VirtioBlkError("CLOSED", "io_uring is closed");
    if (this.sqSpace === 0) return -1;
    return (this.#tail & this.#sqMask) * Sqe.SIZE;
  }

  #fill(
    at: number,
    opcode: number,
    fd: number,
    offset: number,
    addr: number,
    len: number,
    opFlags: number,
    userData: number,
  ): void {
    const bytes = this.#sqes;
    const words = this.#sqeWords;
    const w = at >>> 2;
    // Clear the whole entry: fields we do not set (ioprio, buf_index, personality…) must be 0.
    bytes.fill(0, at, at + Sqe.SIZE);
    bytes[at + Sqe.OPCODE] = opcode;
    words[w + Sqe.FD / 4] = fd;
    words[w + Sqe.OFF / 4] = offset % TWO_POW_32;
    words[w + Sqe.OFF / 4 + 1] = Math.floor(offset / TWO_POW_32);
    words[w + Sqe.ADDR / 4] = addr % TWO_POW_32;
    words[w + Sqe.ADDR / 4 + 1] = Math.floor(addr / TWO_POW_32);
    words[w + Sqe.LEN / 4] = len;
    words[w + Sqe.OP_FLAGS / 4] = opFlags;
    words[w + Sqe.USER_DATA / 4] = userData;
    this.#tail = (this.#tail + 1) >>> 0;
    this.#pending++;
    // Release: the entry is complete before the kernel can see the new tail.
    Atomics.store(this.#sqTail, 0, this.#tail);
  }

  #unmapAll(): void {
    const sys = ioUringSys();
    for (const map of this.#maps.splice(0)) sys.munmap(map.pointer, BigInt(map.length));
  }
}
