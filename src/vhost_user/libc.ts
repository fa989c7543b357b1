/**
 * The libc calls the vhost-user transport needs, through Deno's FFI, and the
 * Linux constants they take. Deno has no file-descriptor passing, no mmap of
 * a received fd and no eventfd, so this module is the one place that binds
 * them; every other module calls the small typed wrappers below, which turn
 * a failed call into an {@linkcode OsError} carrying errno.
 *
 * Blocking waits run as `nonblocking: true` symbols (Deno executes them on
 * a thread of its blocking pool and returns a Promise). errno is
 * thread-local, so only `poll` is called that way: every call whose errno
 * matters runs synchronously on the calling thread once `poll` has said the
 * fd is ready.
 *
 * Values are x86-64 Linux (glibc). Deno only, with `--allow-ffi`; on another
 * runtime {@linkcode libc} throws a `VirtioBlkError` with code UNSUPPORTED.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";

/** Socket, message, memory and eventfd constants (Linux x86-64 values). */
export const Sys = {
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_CLOEXEC: 0o2000000,
  SOCK_NONBLOCK: 0o4000,
  SOL_SOCKET: 1,
  SCM_RIGHTS: 1,
  SHUT_RDWR: 2,
  MSG_CTRUNC: 0x8,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x4000_0000,
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  EFD_CLOEXEC: 0o2000000,
  EFD_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  O_NONBLOCK: 0o4000,
  O_RDONLY: 0,
  O_RDWR: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  F_DUPFD_CLOEXEC: 1030,
  F_ADD_SEALS: 1033,
  F_GET_SEALS: 1034,
  F_SEAL_SEAL: 0x1,
  F_SEAL_SHRINK: 0x2,
  F_SEAL_GROW: 0x4,
  MFD_CLOEXEC: 1,
  MFD_ALLOW_SEALING: 2,
  /** preadv2 flag: fail with EAGAIN instead of waiting, whatever the file's O_NONBLOCK. */
  RWF_NOWAIT: 0x8,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  POLLRDHUP: 0x2000,
  /** Linux AIO (raw syscalls: glibc has no wrappers) for {@linkcode ./kernel_signal.ts}. */
  SYS_io_setup: 206,
  SYS_io_getevents: 208,
  SYS_io_submit: 209,
  IOCB_CMD_PREAD: 0,
  IOCB_FLAG_RESFD: 1,
} as const;

/** errno values the callers handle by name. */
export const Errno = {
  ENOENT: 2,
  EINTR: 4,
  EAGAIN: 11,
  EINVAL: 22,
  EOPNOTSUPP: 95,
  ECONNREFUSED: 111,
} as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  preadv2: { parameters: ["i32", "buffer", "i32", "i64", "i32"], result: "isize" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // Only for the AIO calls: their arguments are integers and pointers as u64.
  syscall: { parameters: ["i64", "u64", "u64", "u64", "u64", "u64"], result: "i64" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  dup3: { parameters: ["i32", "i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: LibcSymbols | undefined;

/** Whether this runtime can load libc through FFI at all (Deno). */
export function ffiAvailable(): boolean {
  const deno = (globalThis as { Deno?: { dlopen?: unknown } }).Deno;
  return typeof deno?.dlopen === "function";
}

/**
 * The bound libc symbols of this thread, loaded on first use.
 *
 * @throws VirtioBlkError UNSUPPORTED when FFI is unavailable or not permitted
 */
export function libc(): LibcSymbols {
  if (loaded) return loaded;
  if (!ffiAvailable()) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      "vhost-user needs Deno's FFI (Deno.dlopen of libc); it is not available on this runtime",
    );
  }
  try {
    loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (cause) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `vhost-user cannot load libc.so.6 through FFI (run Deno with --allow-ffi): ${cause}`,
      { cause },
    );
  }
  return loaded;
}

/** A failed libc call: the call's name and errno. */
export class OsError extends Error {
  /**
   * @param call the libc function that failed
   * @param errno the error number it left
   */
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${describeErrno(errno)} (errno ${errno})`);
    this.name = "OsError";
  }
}

/** errno of this thread, right after a failed synchronous call. */
export function lastErrno(): number {
  const pointer = libc().__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

function describeErrno(errno: number): string {
  const text = libc().strerror(errno);
  return text === null ? "unknown error" : Deno.UnsafePointerView.getCString(text);
}

/** Throws an {@linkcode OsError} for `call` when `result` is negative; else returns it. */
export function check(call: string, result: number): number {
  if (result < 0) throw new OsError(call, lastErrno());
  return result;
}

/** Same as {@linkcode check} for the `isize` results (bigint) of read/write-like calls. */
export function checkSize(call: string, result: number | bigint): number {
  return check(call, Number(result));
}

/** Closes `fd`, ignoring errors (the fd is gone either way on Linux). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

/** A NUL-terminated copy of `text` for a `buffer` parameter. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  const encoded = new TextEncoder().encode(text);
  const bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  return bytes;
}
