/**
 * The QMP control socket: a Unix socket speaking the QEMU Machine Protocol,
 * so `qmp-shell`, libvirt-style tools and a few lines of Python can query
 * the drives, resize their files, and eject and insert media while the
 * guest runs. Deno and Node (`node:net`).
 *
 * Every connection is untrusted and none can hold up the device model:
 * each client has its own conversation ({@linkcode QmpSession}), at most
 * {@linkcode QmpServerOptions.maxClients} are served at once (one more is
 * told so and disconnected), input is bounded per text and per queue, and
 * output is written without waiting: a client that does not read its
 * replies and events is disconnected once more than
 * {@linkcode QmpServerOptions.maxUnsentBytes} wait for it. A client that
 * goes away in the middle of a command loses only the reply: the command
 * completes.
 *
 * @module
 */

import net from "node:net";
import { VirtioBlkError } from "../errors.ts";
import type { QmpHost } from "./commands.ts";
import type { QmpDrive } from "./drive.ts";
import { DriveTable } from "./drive_table.ts";
import type { JsonStreamLimits } from "./json_stream.ts";
import {
  errorReply,
  eventMessage,
  genericError,
  type JsonObject,
  QEMU_VERSION,
  type QmpVersion,
} from "./protocol.ts";
import { QmpSession } from "./session.ts";
import { prepareSocketPath } from "./socket_path.ts";

/** Default most clients served at once. */
export const DEFAULT_MAX_CLIENTS = 16;

/** Default most bytes waiting for a client that does not read, before it is disconnected. */
export const DEFAULT_MAX_UNSENT_BYTES = 1 << 20;

/** How to run a QMP server. */
export interface QmpServerOptions {
  /** The Unix socket to listen on (a stale one is replaced, a live one refused). */
  readonly path: string;
  /** The drives it manages. */
  readonly drives: readonly QmpDrive[];
  /**
   * `quit`: called once the reply and the SHUTDOWN event went out; the
   * host stops the machine (the server stays up until closed).
   */
  readonly onQuit?: () => void;
  /** Whether the guest runs (`query-status`); default: running until `quit`. */
  readonly running?: () => boolean;
  /** The greeting's version (default: QEMU 7.2's QMP, package `virtio-blk-dm`). */
  readonly version?: QmpVersion;
  /** Where disconnected clients and failures are reported (default: console.error). */
  readonly log?: (message: string) => void;
  /** Most clients at once (default {@linkcode DEFAULT_MAX_CLIENTS}). */
  readonly maxClients?: number;
  /** Most bytes waiting for one client (default {@linkcode DEFAULT_MAX_UNSENT_BYTES}). */
  readonly maxUnsentBytes?: number;
  /** How large and deep one JSON text may be (default: 64 KiB, 64 levels). */
  readonly limits?: JsonStreamLimits;
}

/** A connected client. */
interface Client {
  readonly socket: net.Socket;
  readonly session: QmpSession;
}

/** A QMP server listening on a Unix socket. */
export class QmpServer {
  /** The socket path clients connect to. */
  readonly path: string;
  /** The drives, as the commands see them. */
  readonly drives: DriveTable;
  readonly #server: net.Server;
  readonly #options: QmpServerOptions;
  readonly #log: (message: string) => void;
  readonly #clients = new Set<Client>();
  readonly #host: QmpHost;
  #quitting = false;
  #closed: Promise<void> | undefined;
  #connected!: () => void;
  /** Resolves when the first client connects (QEMU's `wait=on`). */
  readonly firstClient: Promise<void> = new Promise((resolve) => (this.#connected = resolve));

  private constructor(server: net.Server, options: QmpServerOptions) {
    this.#server = server;
    this.#options = options;
    this.path = options.path;
    this.#log = options.log ?? ((message) => console.error(message));
    this.drives = new DriveTable(options.drives, (event, data) => this.emit(event, data));
    this.#host = {
      drives: this.drives,
      version: options.version ??
        { qemu: { ...QEMU_VERSION }, package: "virtio-blk-dm" },
      running: () => !this.#quitting && (options.running?.() ?? true),
      quit: () => this.#quit(),
    };
    server.on("connection", (socket) => this.#accept(socket));
  }

  /**
   * Listens on `options.path` and serves clients until {@linkcode close}.
   *
   * @throws {VirtioBlkError} `INVALID_CONFIG` when the path cannot be used
   *   (a live server's, not a socket, no such directory, no permission) or
   *   two drives share a name
   *
   * @example
   * ```ts
   * const qmp = await QmpServer.listen({
   *   path: "/tmp/qmp.sock",
   *   drives: [{ device: "virtio0", qdev: "virtio-disk0", nodeName: "vda", holder: disk.device }],
   * });
   * // $ echo '{"execute":"qmp_capabilities"}{"execute":"query-block"}' | socat - UNIX:/tmp/qmp.sock
   * ```
   */
  static async listen(options: QmpServerOptions): Promise<QmpServer> {
    await prepareSocketPath(options.path);
    const server = net.createServer({ allowHalfOpen: true });
    const qmp = new QmpServer(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) =>
        reject(
          new VirtioBlkError(
            "INVALID_CONFIG",
            `cannot listen on ${options.path}: ${(error as Error).message}`,
            { cause: error },
          ),
        ));
      server.listen(options.path, () => resolve());
    });
    server.on("error", (error) => qmp.#log(`QMP: ${(error as Error).message}`));
    return qmp;
  }

  /** Clients connected now. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Sends an event to every client in command mode. */
  emit(event: string, data?: JsonObject): void {
    const message = eventMessage(event, data);
    for (const client of this.#clients) client.session.event(message);
  }

  /** Stops listening, disconnects every client and removes the socket. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      for (const client of this.#clients) client.socket.destroy();
      this.#server.close(() => resolve());
    });
    return this.#closed;
  }

  #accept(socket: net.Socket): void {
    this.#connected();
    const maxClients = this.#options.maxClients ?? DEFAULT_MAX_CLIENTS;
    if (this.#clients.size >= maxClients || this.#closed) {
      const reason = this.#closed ? "the server is closing" : `at most ${maxClients} clients`;
      // Not left half-open waiting for the client's end: closed once the line is out.
      socket.end(
        line(errorReply(genericError(`QMP: ${reason}; disconnected`))),
        () => socket.destroy(),
      );
      return;
    }
    const maxUnsent = this.#options.maxUnsentBytes ?? DEFAULT_MAX_UNSENT_BYTES;
    const drop = (why: string) => {
      this.#log(`QMP: client disconnected: ${why}`);
      socket.destroy();
    };
    const session = new QmpSession(this.#host, {
      send: (message) => {
        if (socket.destroyed) return;
        // A client that does not read must not make this process hold its output forever.
        if (socket.writableLength > maxUnsent) {
          drop(`more than ${maxUnsent} bytes of replies and events unread`);
          return;
        }
        socket.write(line(message));
      },
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      end: () => socket.end(),
    }, this.#options.limits);
    const client = { socket, session };
    this.#clients.add(client);
    socket.on("data", (bytes: Uint8Array) => session.receive(bytes));
    // Half-open: a client that shut down its side still gets its replies.
    socket.on("end", () => session.endOfInput());
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      session.close();
      this.#clients.delete(client);
    });
  }

  #quit(): void {
    if (this.#quitting) return;
    this.#quitting = true;
    this.emit("SHUTDOWN", { guest: false, reason: "host-qmp-quit" });
    this.#options.onQuit?.();
  }
}

/** One message on the wire: QEMU ends each with CR LF. */
function line(message: JsonObject): string {
  return JSON.stringify(message) + "\r\n";
}
