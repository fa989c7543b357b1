/**
 * The C structures the socket, poll and fstat calls take, laid out by hand
 * in byte buffers (x86-64 Linux, glibc): `struct sockaddr_un`, `struct
 * iovec`, `struct msghdr`, `struct cmsghdr` with SCM_RIGHTS, `struct pollfd`
 * and `struct stat`.
 * This module owns every offset and size of them; nothing else builds or
 * reads these structures.
 *
 * @module
 */

import { Sys } from "./libc.ts";

/** struct sockaddr_un: sa_family_t sun_family; char sun_path[108]. */
const SockaddrUn = { FAMILY: 0, PATH: 2, PATH_SIZE: 108, SIZE: 110 } as const;

/** struct iovec: void *iov_base; size_t iov_len. */
const Iovec = { BASE: 0, LEN: 8, SIZE: 16 } as const;

/** struct msghdr (x86-64). */
const Msghdr = {
  NAME: 0,
  NAMELEN: 8,
  IOV: 16,
  IOVLEN: 24,
  CONTROL: 32,
  CONTROLLEN: 40,
  FLAGS: 48,
  SIZE: 56,
} as const;

/** struct cmsghdr: size_t cmsg_len; int cmsg_level; int cmsg_type; then data, 8-aligned. */
const Cmsghdr = { LEN: 0, LEVEL: 8, TYPE: 12, DATA: 16 } as const;

/** struct stat (x86-64): st_mode and st_size are the fields read here. */
const Stat = { MODE: 24, SIZE: 48, LENGTH: 144 } as const;

/** st_mode's file type bits, and the type of a regular file (memfd, tmpfs, hugetlbfs). */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** struct pollfd: int fd; short events; short revents. */
const Pollfd = { FD: 0, EVENTS: 4, REVENTS: 6, SIZE: 8 } as const;

const FD_SIZE = 4;

/**
 * struct iocb (linux/aio_abi.h, little-endian x86-64): u64 aio_data; u32 aio_key;
 * u32 aio_rw_flags; u16 aio_lio_opcode; s16 aio_reqprio; u32 aio_fildes; u64 aio_buf;
 * u64 aio_nbytes; s64 aio_offset; u64 aio_reserved2; u32 aio_flags; u32 aio_resfd.
 */
const Iocb = {
  OPCODE: 16,
  FILDES: 20,
  BUF: 24,
  NBYTES: 32,
  OFFSET: 40,
  FLAGS: 56,
  RESFD: 60,
  SIZE: 64,
} as const;

/** struct io_event: u64 data; u64 obj; s64 res; s64 res2. */
const IO_EVENT_SIZE = 32;

/** struct timespec: s64 tv_sec; s64 tv_nsec. */
const TIMESPEC_SIZE = 16;

function cmsgAlign(length: number): number {
  return (length + 7) & ~7;
}

/** CMSG_SPACE for `fdCount` file descriptors: the control buffer size to hold them. */
export function rightsSpace(fdCount: number): number {
  return Cmsghdr.DATA + cmsgAlign(fdCount * FD_SIZE);
}

/** The address of `bytes[0]` for a pointer field. */
function addressOf(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

/**
 * A `struct sockaddr_un` for `path`, and its length for bind/connect.
 *
 * @throws RangeError when the path does not fit sun_path (107 bytes and a NUL)
 */
export function sockaddrUn(path: string): { bytes: Uint8Array<ArrayBuffer>; length: number } {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length === 0 || encoded.length >= SockaddrUn.PATH_SIZE) {
    throw new RangeError(
      `socket path must be 1 to ${SockaddrUn.PATH_SIZE - 1} bytes, got ${encoded.length}`,
    );
  }
  const bytes = new Uint8Array(SockaddrUn.SIZE);
  new DataView(bytes.buffer).setUint16(SockaddrUn.FAMILY, Sys.AF_UNIX, true);
  bytes.set(encoded, SockaddrUn.PATH);
  return { bytes, length: SockaddrUn.PATH + encoded.length + 1 };
}

/** The address of a buffer, for a pointer argument passed as an integer (raw syscalls). */
export function bufferAddress(bytes: Uint8Array): bigint {
  return addressOf(bytes);
}

/** A `struct iovec` describing all of `data`, for preadv2 (keep `data` alive while it is used). */
export function singleIovec(data: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(Iovec.SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(Iovec.BASE, addressOf(data), true);
  view.setBigUint64(Iovec.LEN, BigInt(data.length), true);
  return bytes;
}

/**
 * One Linux AIO control block that reads 0 bytes from `source` and, when
 * that completes, has the kernel add 1 to the eventfd set with
 * {@linkcode AioSignalBlock.target} (IOCB_FLAG_RESFD), plus the array of
 * one pointer io_submit takes, the event buffer io_getevents fills and a
 * zero timeout. Reused for every submission on one thread.
 */
export class AioSignalBlock {
  /** The `struct iocb *[1]` io_submit takes. */
  readonly pointers: Uint8Array<ArrayBuffer> = new Uint8Array(8);
  /** Room for `events` `struct io_event`s, for io_getevents. */
  readonly events: Uint8Array<ArrayBuffer>;
  /** How many events {@linkcode events} holds. */
  readonly eventCapacity: number;
  /** A zero `struct timespec`: io_getevents returns at once. */
  readonly noWait: Uint8Array<ArrayBuffer> = new Uint8Array(TIMESPEC_SIZE);
  readonly #iocb: Uint8Array<ArrayBuffer> = new Uint8Array(Iocb.SIZE);
  readonly #view = new DataView(this.#iocb.buffer);
  readonly #sink = new Uint8Array(8);

  /**
   * @param source an fd whose 0-byte read completes at once (/dev/zero)
   * @param events how many completions one io_getevents call may reap
   */
  constructor(source: number, events: number) {
    this.eventCapacity = events;
    this.events = new Uint8Array(events * IO_EVENT_SIZE);
    this.#view.setUint16(Iocb.OPCODE, Sys.IOCB_CMD_PREAD, true);
    this.#view.setUint32(Iocb.FILDES, source, true);
    this.#view.setBigUint64(Iocb.BUF, addressOf(this.#sink), true);
    this.#view.setBigUint64(Iocb.NBYTES, 0n, true);
    this.#view.setBigInt64(Iocb.OFFSET, 0n, true);
    this.#view.setUint32(Iocb.FLAGS, Sys.IOCB_FLAG_RESFD, true);
    new DataView(this.pointers.buffer).setBigUint64(0, addressOf(this.#iocb), true);
  }

  /** Points the completion signal at eventfd `fd`. */
  set target(fd: number) {
    this.#view.setUint32(Iocb.RESFD, fd, true);
  }
}

/** A buffer for fstat to fill. */
export function statBuffer(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Stat.LENGTH);
}

/** The size of the file an fstat-filled buffer describes, or undefined when it is not a regular file. */
export function regularFileSize(stat: Uint8Array<ArrayBuffer>): number | undefined {
  const view = new DataView(stat.buffer, stat.byteOffset, stat.byteLength);
  if ((view.getUint32(Stat.MODE, true) & S_IFMT) !== S_IFREG) return undefined;
  return Number(view.getBigInt64(Stat.SIZE, true));
}

/**
 * A `struct msghdr` with one iovec and a control buffer, reused for every
 * sendmsg/recvmsg on one socket. The data and control buffers are owned by
 * the caller and must stay alive while the header is used.
 */
export class MessageHeader {
  /** The msghdr bytes, passed to sendmsg/recvmsg. */
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(Msghdr.SIZE);
  readonly #iov: Uint8Array<ArrayBuffer> = new Uint8Array(Iovec.SIZE);
  readonly #header = new DataView(this.bytes.buffer);
  readonly #iovView = new DataView(this.#iov.buffer);
  readonly #control: Uint8Array<ArrayBuffer>;

  /** @param maxFds the most file descriptors one call may carry */
  constructor(maxFds: number) {
    this.#control = new Uint8Array(rightsSpace(maxFds));
    this.#header.setBigUint64(Msghdr.IOV, addressOf(this.#iov), true);
    this.#header.setBigUint64(Msghdr.IOVLEN, 1n, true);
  }

  /** Points the iovec at `data` and clears the control part (no fds). */
  setData(data: Uint8Array<ArrayBuffer>): void {
    this.#iovView.setBigUint64(Iovec.BASE, addressOf(data), true);
    this.#iovView.setBigUint64(Iovec.LEN, BigInt(data.length), true);
    this.#setControl(0);
    this.#header.setInt32(Msghdr.FLAGS, 0, true);
  }

  /** Before recvmsg: offers the whole control buffer for incoming fds. */
  expectRights(): void {
    this.#setControl(this.#control.length);
  }

  /** Before sendmsg: attaches `fds` as one SCM_RIGHTS message. */
  attachRights(fds: readonly number[]): void {
    if (fds.length === 0) return;
    const space = rightsSpace(fds.length);
    if (space > this.#control.length) {
      throw new RangeError(`${fds.length} fds do not fit the control buffer`);
    }
    const view = new DataView(this.#control.buffer);
    this.#control.fill(0, 0, space);
    view.setBigUint64(Cmsghdr.LEN, BigInt(Cmsghdr.DATA + fds.length * FD_SIZE), true);
    view.setInt32(Cmsghdr.LEVEL, Sys.SOL_SOCKET, true);
    view.setInt32(Cmsghdr.TYPE, Sys.SCM_RIGHTS, true);
    fds.forEach((fd, i) => view.setInt32(Cmsghdr.DATA + i * FD_SIZE, fd, true));
    this.#setControl(space);
  }

  /** After recvmsg: msg_flags (MSG_CTRUNC tells that fds were lost). */
  get flags(): number {
    return this.#header.getInt32(Msghdr.FLAGS, true);
  }

  /** After recvmsg: every fd that arrived in SCM_RIGHTS messages. */
  receivedRights(): number[] {
    const used = Number(this.#header.getBigUint64(Msghdr.CONTROLLEN, true));
    const view = new DataView(this.#control.buffer);
    const fds: number[] = [];
    let at = 0;
    while (at + Cmsghdr.DATA <= used) {
      const length = Number(view.getBigUint64(at + Cmsghdr.LEN, true));
      if (length < Cmsghdr.DATA || at + length > used) break;
      const level = view.getInt32(at + Cmsghdr.LEVEL, true);
      const type = view.getInt32(at + Cmsghdr.TYPE, true);
      if (level === Sys.SOL_SOCKET && type === Sys.SCM_RIGHTS) {
        const count = Math.floor((length - Cmsghdr.DATA) / FD_SIZE);
        for (let i = 0; i < count; i++) {
          fds.push(view.getInt32(at + Cmsghdr.DATA + i * FD_SIZE, true));
        }
      }
      at += cmsgAlign(length);
    }
    return fds;
  }

  #setControl(length: number): void {
    this.#header.setBigUint64(Msghdr.CONTROL, length === 0 ? 0n : addressOf(this.#control), true);
    this.#header.setBigUint64(Msghdr.CONTROLLEN, BigInt(length), true);
  }
}

/** An array of `struct pollfd`, reused across poll calls. */
export class PollSet {
  /** The pollfd array, passed to poll. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly #view: DataView;

  /**
   * @param fds the fds to watch, in order
   * @param events what to watch each for (default POLLIN; POLLHUP and POLLERR always count)
   */
  constructor(fds: readonly number[], events: readonly number[] = []) {
    this.bytes = new Uint8Array(fds.length * Pollfd.SIZE);
    this.#view = new DataView(this.bytes.buffer);
    fds.forEach((fd, i) => {
      this.#view.setInt32(i * Pollfd.SIZE + Pollfd.FD, fd, true);
      this.#view.setInt16(i * Pollfd.SIZE + Pollfd.EVENTS, events[i] ?? Sys.POLLIN, true);
    });
  }

  /** Number of entries. */
  get count(): number {
    return this.bytes.length / Pollfd.SIZE;
  }

  /** Clears every revents before a call. */
  clear(): void {
    for (let i = 0; i < this.count; i++) {
      this.#view.setInt16(i * Pollfd.SIZE + Pollfd.REVENTS, 0, true);
    }
  }

  /** The revents poll returned for entry `index`. */
  revents(index: number): number {
    return this.#view.getUint16(index * Pollfd.SIZE + Pollfd.REVENTS, true);
  }
}
