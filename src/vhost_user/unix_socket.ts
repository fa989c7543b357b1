/**
 * AF_UNIX stream sockets that carry file descriptors (SCM_RIGHTS), through
 * libc: a listener that accepts without blocking the thread, and a
 * connection that receives exact byte counts with the fds attached to them
 * and sends bytes with fds. Waiting is `poll` on Deno's blocking pool; the
 * calls themselves run on this thread, so errno is this thread's.
 *
 * Nothing here blocks the thread on the peer: a send that the socket cannot
 * take now is kept, up to {@linkcode MAX_UNSENT_BYTES}, and written when the
 * socket is writable again; a peer that lets more pile up (it sends
 * requests but never reads the replies) makes {@linkcode UnixConnection.send}
 * throw a {@linkcode SendBacklogError}, and its connection is dropped.
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

/**
 * Reply bytes a connection keeps for a peer that does not read, on top of
 * what the kernel's socket buffer holds (about 3 000 small replies): far
 * more than a front end that reads its replies ever leaves, since QEMU waits
 * for each reply it asked for.
 */
export const MAX_UNSENT_BYTES = 64 << 10;

/** The peer does not read: more than {@linkcode MAX_UNSENT_BYTES} wait to be sent. */
export class SendBacklogError extends Error {
  override name = "SendBacklogError";
}

/** Bytes not yet sent, and the fds (our duplicates) that go with their first byte. */
interface Unsent {
  bytes: Uint8Array<ArrayBuffer>;
  fds: number[];
}

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
  readonly #writable: PollSet;
  readonly #hangUp: PollSet;
  readonly #header = new MessageHeader(MAX_FDS_PER_MESSAGE);
  readonly #sendHeader = new MessageHeader(MAX_FDS_PER_MESSAGE);
  readonly #unsent: Unsent[] = [];
  #unsentBytes = 0;
  #flushing: Promise<void> | undefined;
  #closed = false;

  /** @param fd a connected stream socket, now owned by this object */
  constructor(fd: number) {
    this.fd = fd;
    this.#poll = new PollSet([fd, this.#waker.fd]);
    this.#writable = new PollSet([fd, this.#waker.fd], [Sys.POLLOUT, Sys.POLLIN]);
    this.#hangUp = new PollSet([fd], [Sys.POLLRDHUP]);
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
   * Sends all of `bytes`, with `fds` attached to the first chunk, without
   * waiting: what the socket cannot take now is kept (with duplicates of
   * the fds, so the caller may close its own) and sent, in order, once the
   * peer reads. Never raises SIGPIPE.
   *
   * @throws SendBacklogError when more than {@linkcode MAX_UNSENT_BYTES}
   *   would be waiting (the peer does not read): drop the connection
   * @throws OsError when the socket fails (EPIPE: the peer went away)
   */
  send(bytes: Uint8Array<ArrayBuffer>, fds: readonly number[] = []): void {
    let rest = bytes;
    let restFds = fds;
    if (this.#unsent.length === 0) {
      const sent = this.#sendNow(rest, restFds);
      if (sent === rest.length) return;
      rest = rest.subarray(sent);
      if (sent > 0) restFds = [];
    }
    if (this.#unsentBytes + rest.length > MAX_UNSENT_BYTES) {
      throw new SendBacklogError(
        `the peer does not read: ${this.#unsentBytes + rest.length} bytes would wait to be sent ` +
          `(at most ${MAX_UNSENT_BYTES})`,
      );
    }
    const duplicates = restFds.map((fd) =>
      check("fcntl", libc().fcntl(fd, Sys.F_DUPFD_CLOEXEC, 0))
    );
    this.#unsent.push({ bytes: rest.slice(), fds: duplicates });
    this.#unsentBytes += rest.length;
    this.#flushing ??= this.#flush();
  }

  /** Bytes kept because the peer has not read yet. */
  get unsentBytes(): number {
    return this.#unsentBytes;
  }

  /**
   * Sends what the socket takes now (MSG_DONTWAIT), returns the byte count;
   * `fds` go with the first byte.
   */
  #sendNow(bytes: Uint8Array<ArrayBuffer>, fds: readonly number[]): number {
    let sent = 0;
    while (sent < bytes.length) {
      this.#sendHeader.setData(bytes.subarray(sent));
      if (sent === 0) this.#sendHeader.attachRights(fds);
      const result = Number(
        libc().sendmsg(this.fd, this.#sendHeader.bytes, Sys.MSG_DONTWAIT | Sys.MSG_NOSIGNAL),
      );
      if (result < 0) {
        const errno = lastErrno();
        if (errno === Errno.EINTR) continue;
        if (errno === Errno.EAGAIN) return sent;
        throw new OsError("sendmsg", errno);
      }
      sent += result;
    }
    return sent;
  }

  /** Writes the kept bytes as the peer reads, until none is left or the connection closes. */
  async #flush(): Promise<void> {
    try {
      while (this.#unsent.length > 0) {
        if (await waitReadable(this.#writable) !== 0 || this.#closed) return;
        while (this.#unsent.length > 0) {
          const head = this.#unsent[0];
          const sent = this.#sendNow(head.bytes, head.fds);
          if (sent > 0) head.fds.splice(0).forEach(closeFd);
          head.bytes = head.bytes.subarray(sent);
          this.#unsentBytes -= sent;
          if (head.bytes.length > 0) break;
          this.#unsent.shift();
        }
      }
    } catch {
      // The peer went away (EPIPE): what was kept can never be delivered; receive sees EOF.
    } finally {
      this.#dropUnsent();
      this.#flushing = undefined;
    }
  }

  #dropUnsent(): void {
    for (const unsent of this.#unsent.splice(0)) unsent.fds.forEach(closeFd);
    this.#unsentBytes = 0;
  }

  /**
   * Whether the peer has closed its end (or shut down its writing side),
   * looked at without waiting and without reading anything.
   */
  async peerClosed(): Promise<boolean> {
    if (this.#closed) return true;
    this.#hangUp.clear();
    const ready = await libc().poll(this.#hangUp.bytes, 1n, 0);
    return ready > 0 &&
      (this.#hangUp.revents(0) & (Sys.POLLRDHUP | Sys.POLLHUP | Sys.POLLERR)) !== 0;
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
    this.#dropUnsent();
    // A flush in progress still polls the waker: close it once that poll returned.
    if (this.#flushing) void this.#flushing.then(() => this.#waker.close());
    else this.#waker.close();
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
  /** The socket file bind created (device and inode), to remove only that one. */
  readonly #created: { dev: number; ino: number | null };
  #closed = false;

  private constructor(fd: number, path: string, created: { dev: number; ino: number | null }) {
    this.fd = fd;
    this.path = path;
    this.#created = created;
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
    let created: { dev: number; ino: number | null };
    try {
      check("bind", libc().bind(fd, address.bytes, address.length));
      const info = Deno.lstatSync(path);
      created = { dev: info.dev, ino: info.ino };
      check("listen", libc().listen(fd, 16));
    } catch (error) {
      closeFd(fd);
      throw error;
    }
    return new UnixListener(fd, path, created);
  }

  /**
   * Removes the socket file this listener created, unless something else
   * is at the path now (the user removed ours and started another server
   * there): only a file with the same device and inode is ours.
   */
  unlinkOwn(): void {
    try {
      const info = Deno.lstatSync(this.path);
      if (info.isSocket && info.dev === this.#created.dev && info.ino === this.#created.ino) {
        Deno.removeSync(this.path);
      }
    } catch {
      // Already gone.
    }
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

/**
 * What is at a socket path: `"listening"` when a connect() succeeds (or
 * would, but the backlog is full), `"stale"` when the file is a socket
 * nobody listens on (ECONNREFUSED, a server that died without removing
 * it), `"absent"` when there is no file.
 *
 * @throws OsError for any other failure (EACCES, ENOTSOCK…)
 */
export function probeUnixSocket(path: string): "listening" | "stale" | "absent" {
  const address = sockaddrUn(path);
  const fd = check(
    "socket",
    libc().socket(Sys.AF_UNIX, Sys.SOCK_STREAM | Sys.SOCK_CLOEXEC | Sys.SOCK_NONBLOCK, 0),
  );
  try {
    if (libc().connect(fd, address.bytes, address.length) === 0) return "listening";
    const errno = lastErrno();
    // A nonblocking connect to a listener whose backlog is full fails with EAGAIN.
    if (errno === Errno.EAGAIN) return "listening";
    if (errno === Errno.ECONNREFUSED) return "stale";
    if (errno === Errno.ENOENT) return "absent";
    throw new OsError(`connect ${path}`, errno);
  } finally {
    closeFd(fd);
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
