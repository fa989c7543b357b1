/**
 * Real NBD servers for the tests: qemu-nbd (Debian qemu-utils) and nbdkit,
 * started on a Unix socket in a temporary directory or on a free TCP port
 * of 127.0.0.1, ready once a probe connection gets the NBDMAGIC greeting.
 * A server can be killed and started again on the same socket or port
 * (the reconnection tests), and is stopped and its directory removed on
 * dispose.
 *
 * Plain `node:` modules: the tests run on Deno and on Node.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";

/** Where a server listens. */
export type Transport = "unix" | "tcp";

/** How to start a server. */
export interface ServerOptions {
  readonly transport?: Transport;
  /** The export name in the URI (qemu-nbd's -x; nbdkit serves any name unless told). */
  readonly exportName?: string;
}

/** A running (or stopped, restartable) NBD server. */
export class NbdServer implements AsyncDisposable {
  /** The export's URI. */
  readonly uri: string;
  /** A scratch directory for the test (removed on dispose). */
  readonly dir: string;
  /** What the server wrote on stderr so far. */
  stderr = "";
  readonly #program: string;
  readonly #args: string[];
  readonly #transport: Transport;
  readonly #socket: string;
  readonly #port: number;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  private constructor(
    program: string,
    args: (listen: string[]) => string[],
    dir: string,
    transport: Transport,
    port: number,
    exportName: string,
  ) {
    this.#program = program;
    this.dir = dir;
    this.#transport = transport;
    this.#socket = `${dir}/nbd.sock`;
    this.#port = port;
    const listen = transport === "unix"
      ? (program === "qemu-nbd" ? ["-k", this.#socket] : ["-U", this.#socket])
      : (program === "qemu-nbd"
        ? ["-b", "127.0.0.1", "-p", String(port)]
        : ["-i", "127.0.0.1", "-p", String(port)]);
    this.#args = args(listen);
    const path = encodeURIComponent(exportName).replace(/%2F/g, "/");
    this.uri = transport === "unix"
      ? `nbd+unix:///${path}?socket=${this.#socket}`
      : `nbd://127.0.0.1:${port}/${path}`;
  }

  /**
   * qemu-nbd serving `image` (made in the server's directory) as export
   * `disk`: persistent, up to `shared` clients at once (default 8, with
   * which qemu-nbd offers CAN_MULTI_CONN), plus `args` (`--discard=unmap`, …).
   */
  static async qemuNbd(
    image: (dir: string) => string,
    options: ServerOptions & { format?: string; args?: string[]; shared?: number } = {},
  ): Promise<NbdServer> {
    const exportName = options.exportName ?? "disk";
    return await NbdServer.#start("qemu-nbd", options, exportName, (dir) => (listen) => [
      "-f",
      options.format ?? "raw",
      "-x",
      exportName,
      "--persistent",
      `--shared=${options.shared ?? 8}`,
      ...listen,
      ...(options.args ?? []),
      image(dir),
    ]);
  }

  /** nbdkit in the foreground with `args` (filters, the plugin and its parameters). */
  static async nbdkit(
    args: (dir: string) => string[],
    options: ServerOptions = {},
  ): Promise<NbdServer> {
    return await NbdServer.#start(
      "nbdkit",
      options,
      options.exportName ?? "",
      (dir) => (listen) => [
        "-f",
        ...listen,
        ...args(dir),
      ],
    );
  }

  static async #start(
    program: string,
    options: ServerOptions,
    exportName: string,
    args: (dir: string) => (listen: string[]) => string[],
  ): Promise<NbdServer> {
    const dir = mkdtempSync(`${tmpdir()}/nbd-test-`);
    const transport = options.transport ?? "unix";
    const port = transport === "tcp" ? await freePort() : 0;
    const server = new NbdServer(program, args(dir), dir, transport, port, exportName);
    try {
      await server.start();
    } catch (error) {
      await server[Symbol.asyncDispose]();
      throw error;
    }
    return server;
  }

  /** "running", or how the server ended and what it said: for failure messages. */
  get state(): string {
    const child = this.#child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      return "running";
    }
    const how = child === undefined
      ? "stopped"
      : `exited (code ${child.exitCode}, signal ${child.signalCode})`;
    return `${this.#program} ${how}; stderr: ${this.stderr.trim() || "(nothing)"}`;
  }

  /** The command line, for messages. */
  get command(): string {
    return [this.#program, ...this.#args].join(" ");
  }

  /** Starts the server (again); resolves once it greets a probe connection. */
  async start(): Promise<void> {
    const child = spawn(this.#program, this.#args, { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (text: string) => (this.stderr += text));
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    // A start-up wait, bounded: the server greets once it listens.
    for (let tries = 0; !(await this.#greets()); tries++) {
      if (tries === 500 || child.exitCode !== null) {
        await this.stop();
        throw new Error(`${this.command} did not start: ${this.stderr.trim()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Stops the server (SIGKILL by default: no goodbye to its clients) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const exited = this.#exited;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      // A paused server must run to act on any signal but SIGKILL.
      child.kill("SIGCONT");
    }
    await exited;
    if (this.#child === child) this.#child = undefined;
  }

  /**
   * Freezes the server (SIGSTOP): its sockets stay open and connections are
   * still accepted by the kernel, but nothing is answered until
   * {@linkcode resume}: a server that stopped answering.
   */
  pause(): void {
    // process.kill, not child.kill: Deno's child.kill takes a stopped child
    // for an exited one and sends it nothing more.
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, "SIGSTOP");
  }

  /** Lets a {@linkcode pause}d server run again (SIGCONT). */
  resume(): void {
    if (this.#child?.pid !== undefined) process.kill(this.#child.pid, "SIGCONT");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Whether a connection gets the first eight bytes of a greeting ("NBDMAGIC"). */
  #greets(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = this.#transport === "unix"
        ? connect({ path: this.#socket })
        : connect({ host: "127.0.0.1", port: this.#port });
      let received = "";
      socket.setEncoding("latin1");
      socket.on("data", (text: string) => {
        received += text;
        if (received.length >= 8) socket.destroy();
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve(received.startsWith("NBDMAGIC")));
    });
  }
}

/** A TCP port of 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** The raw image `raw` converted by qemu-img into the qcow2 image `qcow2`; returns `qcow2`. */
export function qcow2From(raw: string, qcow2: string): string {
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  return qcow2;
}
