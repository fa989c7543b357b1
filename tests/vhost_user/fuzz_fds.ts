/**
 * The file descriptors a hostile vhost-user front end can attach to a
 * message: the kinds the protocol expects (eventfds for kick, call and err;
 * memfds for guest memory), the same kinds in states a back end may not
 * expect (a blocking eventfd, one whose counter is full, a memfd of any
 * size with any seals, one the sender shrinks after sending), and kinds it
 * never expects (a pipe with or without a writer, a directory, /dev/null, a
 * socket, a regular file). Made through libc (the back end's own FFI
 * module, plus `pipe2`, which only the tests need).
 *
 * Every fd made here is close-on-exec, so a child process never inherits one.
 *
 * @module
 */

import {
  check,
  closeFd,
  cString,
  lastErrno,
  libc,
  OsError,
  Sys,
} from "../../src/vhost_user/libc.ts";
import type { Random } from "../../src/guest/jobs/block_order.ts";
import { unixSocketPair } from "../../src/vhost_user/unix_socket.ts";

/** Seals F_ADD_SEALS takes beyond the ones `Sys` names (fcntl(2)). */
const F_SEAL_WRITE = 0x8;
const F_SEAL_FUTURE_WRITE = 0x10;
const O_DIRECTORY = 0o200000;

/** What an fd attached to a message is. */
export type FdKind =
  | "eventfd"
  | "eventfd-blocking"
  | "eventfd-full"
  | "memfd"
  | "pipe-read"
  | "pipe-read-no-writer"
  | "pipe-write"
  | "directory"
  | "dev-null"
  | "socket"
  | "regular-file";

/** Every kind, for draws. */
export const FD_KINDS: readonly FdKind[] = [
  "eventfd",
  "eventfd-blocking",
  "eventfd-full",
  "memfd",
  "pipe-read",
  "pipe-read-no-writer",
  "pipe-write",
  "directory",
  "dev-null",
  "socket",
  "regular-file",
];

/** A memfd's size, seals and first bytes. */
export interface MemfdShape {
  readonly size: number;
  /** F_SEAL_* bits added after the contents are written. */
  readonly seals: number;
  /** Written from offset 0 before sealing (at most `size` bytes of it). */
  readonly contents?: Uint8Array<ArrayBuffer>;
}

let pipe2: ((fds: Uint8Array<ArrayBuffer>, flags: number) => number) | undefined;

/** `pipe2(O_CLOEXEC)`: [read end, write end]. */
function makePipe(): [number, number] {
  pipe2 ??= Deno.dlopen("libc.so.6", {
    pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  }).symbols.pipe2;
  const pair = new Int32Array(2);
  if (pipe2(new Uint8Array(pair.buffer), Sys.O_CLOEXEC) < 0) {
    throw new OsError("pipe2", lastErrno());
  }
  return [pair[0], pair[1]];
}

/** An eventfd (close-on-exec), nonblocking unless `blocking`. */
function eventFd(blocking: boolean): number {
  return check("eventfd", libc().eventfd(0, Sys.EFD_CLOEXEC | (blocking ? 0 : Sys.EFD_NONBLOCK)));
}

/**
 * A memfd of `shape.size` bytes holding `shape.contents`, sealed with
 * `shape.seals` (F_SEAL_SHRINK and friends; sealing is allowed for every
 * memfd made here).
 */
export function makeMemfd(shape: MemfdShape): number {
  const fd = check(
    "memfd_create",
    libc().memfd_create(cString("vhost-fuzz-guest-ram"), Sys.MFD_CLOEXEC | Sys.MFD_ALLOW_SEALING),
  );
  try {
    check("ftruncate", libc().ftruncate(fd, BigInt(shape.size)));
    if (shape.contents !== undefined && shape.size > 0) {
      const bytes = shape.contents.subarray(0, Math.min(shape.size, shape.contents.length));
      for (let at = 0; at < bytes.length;) {
        const chunk = bytes.subarray(at);
        at += check("write", Number(libc().write(fd, chunk, BigInt(chunk.length))));
      }
    }
    if (shape.seals !== 0) {
      check("fcntl(F_ADD_SEALS)", libc().fcntl(fd, Sys.F_ADD_SEALS, shape.seals));
    }
    return fd;
  } catch (error) {
    closeFd(fd);
    throw error;
  }
}

/** A random seal set: mostly what QEMU uses (shrink and grow), sometimes anything. */
export function randomSeals(random: Random): number {
  switch (random.below(6)) {
    case 0:
      return 0;
    case 1:
      return Sys.F_SEAL_SHRINK;
    case 2:
      return Sys.F_SEAL_SHRINK | Sys.F_SEAL_GROW | Sys.F_SEAL_SEAL;
    case 3:
      return Sys.F_SEAL_SHRINK | (random.below(2) ? F_SEAL_WRITE : F_SEAL_FUTURE_WRITE);
    case 4:
      return Sys.F_SEAL_GROW;
    default:
      return Sys.F_SEAL_SHRINK | Sys.F_SEAL_GROW;
  }
}

/** A random memfd size: empty, a page, odd, or up to 4 MiB. */
export function randomMemfdSize(random: Random): number {
  switch (random.below(6)) {
    case 0:
      return 0;
    case 1:
      return 4096;
    case 2:
      return 4096 + 1 + random.below(4096);
    case 3:
      return 64 << 10;
    case 4:
      return 1 << 20;
    default:
      return (1 + random.below(1024)) * 4096;
  }
}

/**
 * Makes an fd of `kind`. `memfd` (a random shape unless `shape` is given)
 * and every other kind are fresh; the caller closes the result.
 */
export function makeFd(kind: FdKind, random: Random, shape?: MemfdShape): number {
  switch (kind) {
    case "eventfd":
      return eventFd(false);
    case "eventfd-blocking":
      return eventFd(true);
    case "eventfd-full": {
      // Counter at its maximum: a plain write(2) to it would wait (eventfd(2)).
      const fd = eventFd(true);
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, 0xffff_ffff_ffff_fffen, true);
      check("write", Number(libc().write(fd, value, 8n)));
      return fd;
    }
    case "memfd":
      return makeMemfd(shape ?? { size: randomMemfdSize(random), seals: randomSeals(random) });
    case "pipe-read": {
      const [read, write] = makePipe();
      // A writer that stays open, with 3 bytes waiting: readable, short reads.
      libc().write(write, new Uint8Array([1, 2, 3]), 3n);
      keptWriters.push(write);
      return read;
    }
    case "pipe-read-no-writer": {
      // Always readable (end of file), never any data.
      const [read, write] = makePipe();
      closeFd(write);
      return read;
    }
    case "pipe-write": {
      const [read, write] = makePipe();
      closeFd(read);
      return write;
    }
    case "directory":
      return check(
        "open",
        libc().open(cString("/tmp"), Sys.O_RDONLY | O_DIRECTORY | Sys.O_CLOEXEC),
      );
    case "dev-null":
      return check("open", libc().open(cString("/dev/null"), Sys.O_RDWR | Sys.O_CLOEXEC));
    case "socket": {
      // One end of a pair whose other end is closed (its own fd, without the connection's waker).
      const [mine, theirs] = unixSocketPair();
      theirs.close();
      const fd = check("fcntl", libc().fcntl(mine.fd, Sys.F_DUPFD_CLOEXEC, 0));
      mine.close();
      return fd;
    }
    case "regular-file":
      // A file on disk that every run has, opened read-only: Deno's own binary.
      return check("open", libc().open(cString(Deno.execPath()), Sys.O_RDONLY | Sys.O_CLOEXEC));
  }
}

/** Write ends of "pipe-read" pipes, closed by {@linkcode releaseKeptFds}. */
const keptWriters: number[] = [];

/** Closes what {@linkcode makeFd} kept open behind the fds it returned. */
export function releaseKeptFds(): void {
  keptWriters.splice(0).forEach(closeFd);
}
