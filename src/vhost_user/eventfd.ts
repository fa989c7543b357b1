/**
 * eventfd helpers for vhost-user's doorbells and interrupts (kick, call and
 * err fds), and the one way this transport waits for an fd: `poll` run on
 * Deno's blocking pool, with an extra "waker" eventfd that cancels the wait.
 *
 * An eventfd holds a u64 counter: a write of 8 bytes adds to it, a read of
 * 8 bytes returns it and resets it to 0 (eventfd(2)).
 *
 * @module
 */

import { check, closeFd, Errno, lastErrno, libc, OsError, Sys } from "./libc.ts";
import { type PollSet, singleIovec } from "./sys_structs.ts";

const COUNTER_SIZE = 8n;

/** Creates an eventfd (close-on-exec) with counter 0. */
export function createEventFd(options: { nonblocking?: boolean } = {}): number {
  const flags = Sys.EFD_CLOEXEC | (options.nonblocking ? Sys.EFD_NONBLOCK : 0);
  return check("eventfd", libc().eventfd(0, flags));
}

/**
 * Adds 1 to the counter of eventfd `fd` (wakes its reader). Returns false
 * when the write failed (a full counter on a nonblocking fd, a closed fd):
 * a lost doorbell then is the reader's problem, never this thread's.
 */
export function signalEventFd(fd: number, buffer = oneBuffer()): boolean {
  return Number(libc().write(fd, buffer, COUNTER_SIZE)) === Number(COUNTER_SIZE);
}

/** An 8-byte buffer holding the little-endian u64 1, for {@linkcode signalEventFd}. */
export function oneBuffer(): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(Number(COUNTER_SIZE));
  bytes[0] = 1;
  return bytes;
}

/** Sets O_NONBLOCK on `fd` (only for the fallback of {@linkcode drainEventFd} on old kernels). */
function setNonBlocking(fd: number): void {
  const flags = check("fcntl", libc().fcntl(fd, Sys.F_GETFL, 0));
  check("fcntl", libc().fcntl(fd, Sys.F_SETFL, flags | Sys.O_NONBLOCK));
}

/**
 * Reads and resets the counter of an eventfd, never waiting: returns the
 * count, or 0 when it was empty (someone else read it first).
 *
 * The kick fd is the front end's file: it may be blocking, and the front
 * end may empty the counter between our poll and our read, so a plain
 * read(2) could wait until the next kick, or for ever. preadv2 with
 * RWF_NOWAIT makes this one call nonblocking whatever the file's
 * O_NONBLOCK says (eventfd supports it since Linux 5.12). On older kernels
 * (EOPNOTSUPP) the fd is made O_NONBLOCK and read, which a front end that
 * clears the flag again can still defeat.
 *
 * @throws OsError for any other failure; Error when `fd` reads like no
 *   eventfd (fewer than 8 bytes)
 */
export function drainEventFd(
  fd: number,
  buffer: Uint8Array<ArrayBuffer> = new Uint8Array(8),
): number {
  const iov = singleIovec(buffer);
  let result = Number(libc().preadv2(fd, iov, 1, -1n, Sys.RWF_NOWAIT));
  if (result < 0 && lastErrno() === Errno.EOPNOTSUPP) {
    setNonBlocking(fd);
    result = Number(libc().read(fd, buffer, COUNTER_SIZE));
  }
  if (result === Number(COUNTER_SIZE)) {
    return Number(new DataView(buffer.buffer, buffer.byteOffset, 8).getBigUint64(0, true));
  }
  if (result >= 0) {
    // A pipe at end of file (0) or with a few bytes, a regular file: the front end sent
    // something that is not an eventfd.
    throw new Error(`read(eventfd) returned ${result} bytes, not 8: the fd is not an eventfd`);
  }
  const errno = lastErrno();
  if (errno === Errno.EAGAIN) return 0;
  throw new OsError("read(eventfd)", errno);
}

/**
 * An eventfd that cancels waits: once {@linkcode wake} is called it stays
 * readable, so every {@linkcode waitReadable} that includes it returns.
 */
export class Waker {
  /** The eventfd, to put in a poll set. */
  readonly fd: number = createEventFd({ nonblocking: true });
  #woken = false;

  /** Whether {@linkcode wake} was called. */
  get woken(): boolean {
    return this.#woken;
  }

  /** Makes every wait on this waker return, now and later. */
  wake(): void {
    if (this.#woken) return;
    this.#woken = true;
    signalEventFd(this.fd);
  }

  /** Closes the eventfd (after every wait on it has returned). */
  close(): void {
    closeFd(this.fd);
  }
}

/**
 * Waits until one of the set's fds is ready for what it is watched for
 * (readable, unless the set says otherwise) or hung up, without blocking
 * this thread (poll runs on Deno's blocking pool). Returns the index of the first
 * fd with events, or -1 when `timeoutMs` passed first.
 *
 * @param set a poll set built for the fds (reused across calls; keep it alive)
 * @param timeoutMs how long to wait (default: for ever)
 */
export async function waitReadable(set: PollSet, timeoutMs = -1): Promise<number> {
  for (;;) {
    set.clear();
    // errno of a nonblocking call is another thread's: a negative result is
    // retried (EINTR is the only failure poll can have on valid arguments).
    const ready = await libc().poll(set.bytes, BigInt(set.count), timeoutMs);
    if (ready === 0) return -1;
    if (ready < 0) continue;
    for (let i = 0; i < set.count; i++) {
      if (set.revents(i) !== 0) return i;
    }
  }
}

/**
 * A call or err fd that stays the same number for the life of a session
 * while the front-end replaces the eventfd behind it (SET_VRING_CALL may
 * come at any time, reference §9.1). Other threads are handed the stable
 * number once; each new eventfd is `dup3`ed onto it, which atomically
 * retargets the number (a concurrent write lands on the old or the new
 * eventfd, never on a closed or reused number), and the received fd is
 * closed. Until the front-end sends one, and after it asks for "no fd", the
 * number refers to a private eventfd nobody reads, so signals are dropped.
 *
 * The received file's flags are left as the front end set them: they are
 * its file, and nothing here depends on them (signals go through the
 * kernel, see `kernel_signal.ts`).
 */
export class StableEventFd {
  /** The number other threads write to. */
  readonly fd: number;
  #closed = false;

  constructor() {
    this.fd = createEventFd({ nonblocking: true });
  }

  /**
   * Points the stable number at `received` (and closes `received`), or at a
   * fresh private eventfd when `received` is undefined.
   */
  replace(received: number | undefined): void {
    if (this.#closed) {
      if (received !== undefined) closeFd(received);
      return;
    }
    const source = received ?? createEventFd({ nonblocking: true });
    try {
      check("dup3", libc().dup3(source, this.fd, Sys.O_CLOEXEC));
    } finally {
      closeFd(source);
    }
  }

  /** Closes the stable number (once no thread can signal it any more). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFd(this.fd);
  }
}
