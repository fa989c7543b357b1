/**
 * The vhost-user-blk back end: listens on a Unix socket, and serves one
 * front-end (QEMU's `vhost-user-blk-pci`) at a time with a virtio-blk
 * device. When the front-end goes away (end of file is the only end signal,
 * reference §9.3), everything of that connection is dropped and the next
 * connection is accepted on the same socket, as qemu-storage-daemon does.
 *
 * Deno only (it needs FFI for fd passing, mmap and eventfds): run with
 * `--allow-ffi` (plus read/write for the image). On Node the entry point
 * throws a `VirtioBlkError` with code UNSUPPORTED.
 *
 * @module
 */

import type { BackendSpec } from "../backend/backend.ts";
import type { BlkDeviceOptions } from "../blk/device.ts";
import { VirtioBlkDevice } from "../blk/device.ts";
import { InlineEngine } from "../blk/inline_engine.ts";
import { VirtioBlkError } from "../errors.ts";
import { MappedGuestMemory } from "./mapped_memory.ts";
import { eventFdInterruptHandle, EventFdInterruptSink } from "./interrupts.ts";
import { kernelSignalHandle } from "./kernel_signal.ts";
import { ffiAvailable, libc } from "./libc.ts";
import { VhostUserBlkSession } from "./session.ts";
import { probeUnixSocket, UnixListener } from "./unix_socket.ts";

/**
 * Default largest ring the back end accepts. The front-end picks the ring
 * size (QEMU's `queue-size`, 128 by default, at most 1024) and vhost-user
 * has no message to negotiate it, so the back end takes any size up to
 * QEMU's maximum.
 */
export const VHOST_USER_MAX_QUEUE_SIZE = 1024;

/**
 * Default seg_max: 126, what qemu-storage-daemon reports, so that a request
 * fits QEMU's default 128-entry ring even without indirect descriptors.
 */
export const VHOST_USER_SEG_MAX = 126;

/** How to run the back end. */
export interface VhostUserBlkOptions {
  /**
   * Path of the Unix socket to create. A socket nobody listens on (left by
   * a server that died) is replaced; a path a live server listens on is
   * refused ("address in use"), and so is any other kind of file.
   */
  readonly socketPath: string;
  /**
   * The device: its medium (`MemoryBackend.create(…)` or
   * `describeFile(path, …)`) and options. `queueSize` defaults to
   * {@linkcode VHOST_USER_MAX_QUEUE_SIZE} and `segMax` to
   * {@linkcode VHOST_USER_SEG_MAX}.
   */
  readonly device: BlkDeviceOptions;
  /** Stops the server when aborted. */
  readonly signal?: AbortSignal;
  /** Where refused requests and failures are reported (default: console.error). */
  readonly log?: (message: string) => void;
}

/**
 * A running back end. Its medium may change while it runs
 * ({@linkcode VhostUserBlkServer.changeMedium}, which the QMP socket uses):
 * the connected front end's device takes it at once (QEMU is told with
 * BACKEND_CONFIG_CHANGE_MSG), and later connections start with it.
 */
export interface VhostUserBlkServer {
  /** The socket path QEMU connects to. */
  readonly socketPath: string;
  /** Resolves once the server stopped and released the socket. */
  readonly closed: Promise<void>;
  /** Connections accepted so far. */
  readonly connections: number;
  /** The session of the front-end connected now, if any. */
  readonly session: VhostUserBlkSession | undefined;
  /** The medium now: the connected device's, and the one the next connection gets. */
  readonly medium: BackendSpec;
  /** Whether the device offers VIRTIO_BLK_F_RO (the first medium was read-only). */
  readonly readOnly: boolean;
  /** Whether the connected device's write cache is on (the configured mode without one). */
  readonly writeback: boolean;
  /**
   * Puts `backend` in the drive: the connected front end's device changes
   * medium (and QEMU is told), and the next connection gets it.
   */
  changeMedium(backend: BackendSpec): Promise<void>;
  /** Stops accepting, ends the current session, removes the socket. */
  close(): Promise<void>;
}

/**
 * Starts a vhost-user-blk back end on `options.socketPath`. It is listening
 * when this returns; QEMU can then connect with
 * `-chardev socket,id=vu,path=SOCK -device vhost-user-blk-pci,chardev=vu`
 * (guest RAM must be shareable: `-object memory-backend-memfd,share=on`).
 *
 * @throws VirtioBlkError UNSUPPORTED off Deno or without `--allow-ffi`;
 *   INVALID_CONFIG / BAD_BACKING_FILE for bad device options or socket path
 *
 * @example
 * ```ts
 * const server = serveVhostUserBlk({
 *   socketPath: "/tmp/vblk.sock",
 *   device: { backend: describeFile("disk.img") },
 * });
 * // qemu-system-x86_64 … -chardev socket,id=vu,path=/tmp/vblk.sock \
 * //   -device vhost-user-blk-pci,chardev=vu,num-queues=1
 * await server.closed;
 * ```
 */
export function serveVhostUserBlk(options: VhostUserBlkOptions): VhostUserBlkServer {
  if (!ffiAvailable()) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      "vhost-user-blk needs Deno (FFI for fd passing, mmap and eventfds); it is not available on this runtime",
    );
  }
  libc();
  try {
    kernelSignalHandle();
  } catch (cause) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `vhost-user-blk signals the guest through Linux AIO, which is not available here: ${cause}`,
      { cause },
    );
  }
  const device: BlkDeviceOptions = {
    ...options.device,
    queueSize: options.device.queueSize ?? VHOST_USER_MAX_QUEUE_SIZE,
    segMax: options.device.segMax ?? VHOST_USER_SEG_MAX,
  };
  checkDeviceOptions(device);
  prepareSocketPath(options.socketPath);
  let listener: UnixListener;
  try {
    listener = UnixListener.listen(options.socketPath);
  } catch (cause) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `cannot listen on ${options.socketPath}: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
  }
  return new Server(
    listener,
    device,
    options.log ?? ((message) => console.error(message)),
    options.signal,
  );
}

/**
 * Builds the device once over no memory with the in-process engine, so a
 * bad option or an unusable file fails here, before anything listens.
 */
function checkDeviceOptions(device: BlkDeviceOptions): void {
  const probe = new VirtioBlkDevice(
    MappedGuestMemory.empty(),
    { ...device, engine: (context) => new InlineEngine(context) },
    {
      sink: new EventFdInterruptSink(eventFdInterruptHandle([], [], kernelSignalHandle())),
      handle: eventFdInterruptHandle([], [], kernelSignalHandle()),
    },
  );
  void probe.close();
}

/**
 * Makes `path` free for bind: removes a stale socket (one nobody listens
 * on, left by a server that was killed), and refuses a path that a live
 * server listens on (taking it over would cut that server off from new
 * front ends, silently) or that is not a socket at all.
 */
function prepareSocketPath(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw new VirtioBlkError("INVALID_CONFIG", `cannot use socket path ${path}: ${error}`);
  }
  if (!info.isSocket) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `socket path ${path} exists and is not a socket; refusing to replace it`,
    );
  }
  let state: ReturnType<typeof probeUnixSocket>;
  try {
    state = probeUnixSocket(path);
  } catch (error) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `cannot use socket path ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
  if (state === "listening") {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `socket path ${path}: address in use (another back end is listening on it)`,
    );
  }
  if (state === "stale") Deno.removeSync(path);
}

class Server implements VhostUserBlkServer {
  readonly socketPath: string;
  readonly closed: Promise<void>;
  readonly #listener: UnixListener;
  #device: BlkDeviceOptions;
  readonly #readOnly: boolean;
  readonly #log: (message: string) => void;
  #connections = 0;
  #session: VhostUserBlkSession | undefined;
  #closing = false;

  constructor(
    listener: UnixListener,
    device: BlkDeviceOptions,
    log: (message: string) => void,
    signal?: AbortSignal,
  ) {
    this.socketPath = listener.path;
    this.#listener = listener;
    this.#device = device;
    this.#readOnly = device.backend.readOnly;
    this.#log = log;
    this.closed = this.#serve();
    if (signal?.aborted) void this.close();
    else signal?.addEventListener("abort", () => void this.close(), { once: true });
  }

  get connections(): number {
    return this.#connections;
  }

  get session(): VhostUserBlkSession | undefined {
    return this.#session;
  }

  get medium(): BackendSpec {
    return this.#device.backend;
  }

  get readOnly(): boolean {
    return this.#readOnly;
  }

  get writeback(): boolean {
    return this.#session?.device.writeback ?? this.#device.writeback ?? false;
  }

  async changeMedium(backend: BackendSpec): Promise<void> {
    const device = this.#session?.device;
    try {
      await device?.changeMedium(backend);
    } finally {
      // The next connection's device starts with what this one holds now (empty if it failed).
      this.#device = { ...this.#device, backend: device?.medium ?? backend };
    }
  }

  close(): Promise<void> {
    this.#closing = true;
    this.#listener.close();
    this.#session?.close();
    return this.closed;
  }

  async #serve(): Promise<void> {
    try {
      for (;;) {
        const connection = await this.#listener.accept();
        if (connection === null) break;
        this.#connections++;
        let session: VhostUserBlkSession;
        try {
          session = new VhostUserBlkSession(connection, { device: this.#device, log: this.#log });
        } catch (error) {
          this.#log(`vhost-user: cannot serve a connection: ${error}`);
          connection.close();
          continue;
        }
        this.#session = session;
        if (this.#closing) session.close();
        await session.run();
        this.#session = undefined;
      }
    } catch (error) {
      this.#log(`vhost-user: listener failed: ${error}`);
    } finally {
      this.#listener.dispose();
      // Only our own socket file: another server may have been started on the path since.
      this.#listener.unlinkOwn();
    }
  }
}
