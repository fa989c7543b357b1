/**
 * Signalling an eventfd that belongs to the front end, without ever
 * waiting, whatever the front end does to it.
 *
 * Why not write(2). A call or err eventfd (SET_VRING_CALL / SET_VRING_ERR)
 * is one open file shared with the front end. write(2) on an eventfd waits
 * when the counter would pass 0xfffffffffffffffe, unless the *file* has
 * O_NONBLOCK, and the front end can clear that flag with fcntl at any time
 * and fill the counter: the next interrupt then blocks the thread that
 * completes requests (a worker, so GET_VRING_BASE never ends) or the main
 * thread (err fd). None of the per-call ways out work for this file:
 * - pwritev2(RWF_NOWAIT) fails with EOPNOTSUPP: eventfd's write has no
 *   per-call nonblocking mode (checked on Linux 6.18);
 * - reopening /proc/self/fd/N for a private file description fails with
 *   ENXIO: an eventfd is an anonymous inode;
 * - poll() before write() leaves a window in which the front end can fill
 *   the counter and clear O_NONBLOCK again;
 * - setting O_NONBLOCK ourselves (what this back end did before) lasts only
 *   until the front end's next fcntl.
 *
 * What works: let the kernel do the increment. A Linux AIO request with
 * IOCB_FLAG_RESFD makes the kernel call eventfd_signal() on the given
 * eventfd when the request completes, and eventfd_signal never waits (at the
 * top of the range it stops counting; it does not look at O_NONBLOCK). The
 * request is a 0-byte read of /dev/zero, which completes inside io_submit.
 * So a signal is one io_submit: it cannot block, a full counter is simply
 * full, and a received fd that is not an eventfd makes io_submit fail
 * (EINVAL) and the signal is dropped. Completions are reaped in batches,
 * without waiting, by whichever thread signals.
 *
 * One AIO context serves the whole process (a context is an address in the
 * process, usable from every thread): {@linkcode kernelSignalHandle} creates
 * it once on the main thread, and its handle travels to workers inside the
 * interrupt handle. It is never destroyed: contexts are counted against the
 * system-wide aio-max-nr, so one per device or per thread would run out
 * under a front end that keeps changing its memory table.
 *
 * @module
 */

import { check, cString, Errno, lastErrno, libc, OsError, Sys } from "./libc.ts";
import { AioSignalBlock, bufferAddress } from "./sys_structs.ts";

/** The process's AIO context and the fd its 0-byte reads use, for any thread. */
export interface KernelSignalHandle {
  /** aio_context_t from io_setup. */
  readonly context: bigint;
  /** /dev/zero, opened read-only. */
  readonly source: number;
}

/** Completions the context holds before io_submit fails with EAGAIN. */
const RING_EVENTS = 256;
/** A thread reaps after this many signals (well below the ring's room). */
const REAP_EVERY = 32;
/** Completions one io_getevents call takes. */
const REAP_BATCH = 64;

let shared: KernelSignalHandle | undefined;

/**
 * The process-wide AIO context for eventfd signals, created on first use.
 * Call it on the main thread (it is cached per thread; workers get the
 * handle from the main thread).
 *
 * @throws OsError when Linux AIO is not available (io_setup fails: ENOSYS,
 *   EAGAIN when aio-max-nr is exhausted, EPERM under a seccomp filter)
 */
export function kernelSignalHandle(): KernelSignalHandle {
  if (shared) return shared;
  const contextWord = new BigUint64Array(1);
  const result = libc().syscall(
    BigInt(Sys.SYS_io_setup),
    BigInt(RING_EVENTS),
    bufferAddress(new Uint8Array(contextWord.buffer)),
    0n,
    0n,
    0n,
  );
  if (result < 0n) throw new OsError("io_setup", lastErrno());
  const source = check(
    "open /dev/zero",
    libc().open(cString("/dev/zero"), Sys.O_RDONLY | Sys.O_CLOEXEC),
  );
  shared = { context: contextWord[0], source };
  return shared;
}

/** Signals eventfds through the kernel (see the module comment); one per thread. */
export class EventFdSignaller {
  readonly #context: bigint;
  readonly #block: AioSignalBlock;
  readonly #pointers: bigint;
  #unreaped = 0;

  /** @param handle the process's context, from {@linkcode kernelSignalHandle} */
  constructor(handle: KernelSignalHandle) {
    this.#context = handle.context;
    this.#block = new AioSignalBlock(handle.source, REAP_BATCH);
    this.#pointers = bufferAddress(this.#block.pointers);
  }

  /**
   * Adds 1 to the counter of eventfd `fd`, never waiting. Returns false
   * when the signal was dropped: `fd` is closed or not an eventfd.
   */
  signal(fd: number): boolean {
    this.#block.target = fd;
    for (let attempt = 0; attempt < 2; attempt++) {
      const submitted = libc().syscall(
        BigInt(Sys.SYS_io_submit),
        this.#context,
        1n,
        this.#pointers,
        0n,
        0n,
      );
      if (submitted === 1n) {
        if (++this.#unreaped >= REAP_EVERY) this.#reap();
        return true;
      }
      // EAGAIN: the ring is full of completions other threads have not reaped yet.
      if (submitted < 0n && lastErrno() === Errno.EAGAIN && attempt === 0) {
        this.#reap();
        continue;
      }
      return false;
    }
    return false;
  }

  /** Takes every completion waiting in the ring, without waiting for more. */
  #reap(): void {
    this.#unreaped = 0;
    const block = this.#block;
    for (;;) {
      const reaped = libc().syscall(
        BigInt(Sys.SYS_io_getevents),
        this.#context,
        0n,
        BigInt(block.eventCapacity),
        bufferAddress(block.events),
        bufferAddress(block.noWait),
      );
      if (reaped < BigInt(block.eventCapacity)) return;
    }
  }
}
