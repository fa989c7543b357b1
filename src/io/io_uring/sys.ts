/**
 * The system calls io_uring needs, through Deno's FFI: the raw
 * `io_uring_setup`/`io_uring_enter` syscalls (through libc's `syscall`; no
 * liburing), mmap of the rings, eventfds for wake-ups, and errno; and the
 * calls that give file space back or zero it where io_uring has no
 * operation for them (`fallocate`, the block-device `ioctl`s of
 * `src/io/space.ts`), for the synchronous file backend too. Deno on Linux
 * x86-64 only; {@linkcode ioUringSys} throws `UNSUPPORTED` elsewhere.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";

const SYMBOLS = {
  // long syscall(long number, ...): the io_uring calls take at most six integer arguments.
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  // The same function for io_uring_enter, whose result (entries taken, or -1) fits an int: read as
  // i32 (the low half of the long, -1 included) it is a number, where an i64 result is a new
  // BigInt on every call.
  enter: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i32",
  },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags): a
  // write on the thread (see uring_io_queue.ts); what it moves fits an int (seg_max × 4 GiB does
  // not, but one request is at most 4 GiB, which a Linux write caps at 0x7ffff000 bytes anyway).
  pwritev2: { parameters: ["i32", "u64", "i32", "i64", "i32"], result: "i32" },
  // int fallocate(int fd, int mode, off_t offset, off_t len)
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32" },
  // int ioctl(int fd, unsigned long request, u64 range[2]): BLKDISCARD, BLKZEROOUT
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound symbols. */
export type IoUringSys = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let loaded: IoUringSys | undefined;

/** Linux constants (x86-64). */
export const Linux = {
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  MAP_PRIVATE: 2,
  MAP_ANONYMOUS: 0x20,
  MAP_POPULATE: 0x8000,
  O_RDONLY: 0,
  O_RDWR: 2,
  O_CLOEXEC: 0o2000000,
  O_DIRECT: 0o40000,
  EFD_CLOEXEC: 0o2000000,
  EFD_NONBLOCK: 0o4000,
  EINTR: 4,
  EAGAIN: 11,
  EBUSY: 16,
} as const;

/** Why io_uring cannot be used on this runtime, or undefined when it can be tried. */
export function ioUringUnavailable(): string | undefined {
  const deno = (globalThis as { Deno?: { dlopen?: unknown; build?: { os: string; arch: string } } })
    .Deno;
  if (typeof deno?.dlopen !== "function") return "io_uring needs Deno (FFI); this runtime has none";
  if (deno.build?.os !== "linux" || deno.build.arch !== "x86_64") {
    return `io_uring needs Linux on x86-64, not ${deno.build?.os} on ${deno.build?.arch}`;
  }
  return undefined;
}

/**
 * This thread's bound symbols, loaded on first use.
 *
 * @throws {VirtioBlkError} `UNSUPPORTED` without Deno's FFI on Linux x86-64
 */
export function ioUringSys(): IoUringSys {
  if (loaded) return loaded;
  const unavailable = ioUringUnavailable();
  if (unavailable !== undefined) throw new VirtioBlkError("UNSUPPORTED", unavailable);
  try {
    loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (cause) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `io_uring cannot load libc.so.6 through FFI (run Deno with --allow-ffi): ${cause}`,
      { cause },
    );
  }
  return loaded;
}

/** errno of this thread, right after a failed call. */
export function errno(): number {
  const pointer = ioUringSys().__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

/** The C library's text for `code` (an errno value). */
export function errnoText(code: number): string {
  const text = ioUringSys().strerror(code);
  return text === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(text);
}

/** A failed system call. */
export class SyscallError extends Error {
  /**
   * @param call the call that failed
   * @param errno its error number
   */
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${errnoText(errno)} (errno ${errno})`);
    this.name = "SyscallError";
  }
}

/** The address a pointer holds, as a number (user-space addresses are below 2^47). */
export function address(pointer: Deno.PointerValue): number {
  return Number(Deno.UnsafePointer.value(pointer));
}

/** A NUL-terminated copy of `text` for a `buffer` parameter. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  const encoded = new TextEncoder().encode(text);
  const bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  return bytes;
}
