/**
 * AF_UNIX stream sockets that carry file descriptors (SCM_RIGHTS), through
 * libc: a listener that accepts without blocking the thread, and a
 * connection that receives exact byte counts with the fds attached to them
 * and sends bytes with fds. Waiting is `poll` on Deno's blocking pool; the
 * calls themselves run on this thread, so errno is this thread's.
 *
 * Every fd this module creates or receives is close-on-exec, so a child
 * process (a QEMU a test starts) never inherits one.
 *
 * @module
 */

import { check, closeFd, Errno, lastErrno, libc, OsError, Sys } from "./libc.ts";
import { MessageHeader, PollSet, sockaddrUn } from "./sys_structs.ts";
import { waitReadable, Waker } from "./eventfd.ts";

/** Most fds one received chunk may carry (vhost-user's 8 memory regions). */
export const MAX_FDS_PER_MESSAGE = 8;

/** Bytes and the fds that arrived with them. */
export interface Received {
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Received fds, now owned by the caller (close them). */
  readonly fds: number[];
  /** The kernel dropped fds that did not fit (MSG_CTRUNC): `fds` is incomplete. */
  readonly truncated: boolean;
}

/** A connected AF_UNIX stream socket. */
export class UnixConnection {
  /** The socket fd. */
  readonly fd: number;
  readonly #waker = new Waker();
  readonly #poll: PollSet;
  readonly #header = new MessageHeader(MAX_FDS_PER_MESSAGE);
  #closed = false;

  /** @param fd a connected stream socket, now owned by this object */
  constructor(fd: number) {
    this.fd = fd;
    this.#poll = new PollSet([fd, this.#waker.fd]);
  }

  /**
   * Receives exactly `length` bytes, collecting the fds that come with any
   * part of them. Returns null at end of file (the peer closed, even in the
   * middle) or once {@linkcode shutdown} was called; fds received by then
   * are closed.
   *
   * @throws OsError when the socket fails (other than EOF)
   */
  async receive(length: number): Promise<Received | null> {
    const bytes = new Uint8Array(length);
    const fds: number[] = [];
    let truncated = false;
    let got = 0;
    while (got < length) {
      if (this.#waker.woken) return dropped(fds);
      this.#header.setData(bytes.subarray(got));
      this.#header.expectRights();
      const result = Number(
        libc().recvmsg(this.fd, this.#header.bytes, Sys.MSG_DONTWAIT | Sys.MSG_CMSG_CLOEXEC),
      );
      if (result > 0) {
        fds.push(...this.#header.receivedRights());
        if (this.#header.flags & Sys.MSG_CTRUNC) truncated = true;
        got += result;
        continue;
      }
      if (result === 0) return dropped(fds);
      const errno = lastErrno();
      if (errno === Errno.EINTR) continue;
      if (errno !== Errno.EAGAIN) {
        dropped(fds);
        throw new OsError("recvmsg", errno);
      }
      if (await waitReadable(this.#poll) !== 0) return dropped(fds);
    }
    return { bytes, fds, truncated };
  }

  /**
   * Sends all of `bytes`, with `fds` attached to the first chunk. Never
   * raises SIGPIPE: a peer that went away gives an OsError (EPIPE).
   */
  send(bytes: Uint8Array<ArrayBuffer>, fds: readonly number[] = []): void {
    let sent = 0;
    while (sent < bytes.length) {
      this.#header.setData(bytes.subarray(sent));
      if (sent === 0) this.#header.attachRights(fds);
      const result = Number(libc().sendmsg(this.fd, this.#header.bytes, Sys.MSG_NOSIGNAL));
      if (result < 0) {
        const errno = lastErrno();
        if (errno === Errno.EINTR) continue;
        throw new OsError("sendmsg", errno);
      }
      sent += result;
    }
  }

  /** Ends any pending and later {@linkcode receive} (they return null). */
  shutdown(): void {
    this.#waker.wake();
  }

  /** Closes the socket (after every receive has returned). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waker.wake();
    closeFd(this.fd);
    this.#waker.close();
  }
}

function dropped(fds: number[]): null {
  fds.forEach(closeFd);
  return null;
}

/** A listening AF_UNIX stream socket bound to a path. */
export class UnixListener {
  /** The listening socket fd. */
  readonly fd: number;
  /** The path it is bound to. */
  readonly path: string;
  readonly #waker = new Waker();
  readonly #poll: PollSet;
  #closed = false;

  private constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
    this.#poll = new PollSet([fd, this.#waker.fd]);
  }

  /**
   * Creates the socket at `path` (which must not exist) and listens on it.
   *
   * @throws RangeError for a path too long for sun_path; OsError if bind or listen fails
   */
  static listen(path: string): UnixListener {
    const address = sockaddrUn(path);
    const fd = check(
      "socket",
      libc().socket(Sys.AF_UNIX, Sys.SOCK_STREAM | Sys.SOCK_CLOEXEC | Sys.SOCK_NONBLOCK, 0),
    );
    try {
      check("bind", libc().bind(fd, address.bytes, address.length));
      check("listen", libc().listen(fd, 16));
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    return new UnixListener(fd, path);
  }

  /**
   * Waits for the next connection without blocking the thread. Returns null
   * once {@linkcode close} was called.
   */
  async accept(): Promise<UnixConnection | null> {
    for (;;) {
      if (this.#closed) return null;
      const fd = libc().accept4(this.fd, null, null, Sys.SOCK_CLOEXEC);
      if (fd >= 0) return new UnixConnection(fd);
      const errno = lastErrno();
      if (errno === Errno.EAGAIN || errno === Errno.EINTR) {
        if (await waitReadable(this.#poll) !== 0) return null;
        continue;
      }
      throw new OsError("accept4", errno);
    }
  }

  /** Stops listening: a pending {@linkcode accept} returns null. Does not unlink the path. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waker.wake();
    closeFd(this.fd);
  }

  /** Releases the waker once no accept is pending. */
  dispose(): void {
    this.close();
    this.#waker.close();
  }
}

/** Connects to the listening socket at `path` (blocking; the peer is local). */
export function connectUnix(path: string): UnixConnection {
  const address = sockaddrUn(path);
  const fd = check("socket", libc().socket(Sys.AF_UNIX, Sys.SOCK_STREAM | Sys.SOCK_CLOEXEC, 0));
  if (libc().connect(fd, address.bytes, address.length) < 0) {
    const errno = lastErrno();
    closeFd(fd);
    throw new OsError(`connect ${path}`, errno);
  }
  return new UnixConnection(fd);
}

/** A connected pair of AF_UNIX stream sockets (socketpair(2)). */
export function unixSocketPair(): [UnixConnection, UnixConnection] {
  const pair = new Int32Array(2);
  check(
    "socketpair",
    libc().socketpair(
      Sys.AF_UNIX,
      Sys.SOCK_STREAM | Sys.SOCK_CLOEXEC,
      0,
      new Uint8Array(pair.buffer),
    ),
  );
  return [new UnixConnection(pair[0]), new UnixConnection(pair[1])];
}
