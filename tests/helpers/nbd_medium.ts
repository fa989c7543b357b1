/**
 * A medium that misbehaves on demand: a FUSE file (`nbdfuse`) whose reads,
 * writes and flushes are served by an `nbdkit` the test controls, through
 * the filters it asks for:
 * - `pausable` (nbdkit-pause-filter): {@linkcode NbdMedium.pause} holds
 *   every request that reaches nbdkit (the caller waits in the kernel, as on
 *   a stalled disk or a lost NFS server) until {@linkcode NbdMedium.resume};
 *   one byte on the filter's control socket, echoed in upper case once done
 *   (`control`, for a thread of the test's own when its main thread is
 *   blocked);
 * - `errors` (nbdkit-error-filter): the chosen operations fail with the
 *   chosen errno (which nbdfuse passes on to the caller) while the filter is
 *   armed ({@linkcode NbdMedium.armErrors}; armed from the start unless
 *   `armed: false`);
 * - `cache` (nbdkit-cache-filter): writes wait in nbdkit's own cache (a
 *   deleted temporary file of nbdkit's) and reach the plugin only at a flush
 *   (fsync/fdatasync of the FUSE file: NBD_CMD_FLUSH), or at once for a
 *   write with FUA; so {@linkcode NbdMedium.powerCut} (SIGKILL of nbdkit)
 *   loses exactly what was written and not flushed, as a power cut loses a
 *   disk's volatile cache.
 * The plugin is `memory` (a RAM disk) or `file` (a file on disk, which
 * outlives nbdkit: what survived a power cut can be read there).
 *
 * nbdkit runs as its own process on a Unix socket, and nbdfuse connects to
 * it, so that the test can kill nbdkit alone. Needs root (FUSE mounts) and
 * /dev/fuse: see {@linkcode NBD_MEDIUM_TOOLS} and `needsTools`.
 *
 * Plain `node:` modules: the tests that use it also run on Node.
 *
 *     const skip = needsTools(...NBD_MEDIUM_TOOLS);
 *     await using medium = await NbdMedium.start({ plugin: { memory: 1 << 20 }, pausable: true });
 *     await medium.pause(); … await medium.resume();
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";
import type { SystemTool } from "../../scripts/system_tools.ts";

/** The programs an {@linkcode NbdMedium} needs. */
export const NBD_MEDIUM_TOOLS: SystemTool[] = ["nbdkit", "nbdfuse", "fusermount3"];

/** NBD operations the error filter can fail. */
export type FailingOp = "pread" | "pwrite" | "zero" | "trim";

/** What the medium serves and how it misbehaves. */
export interface NbdMediumOptions {
  /** A RAM disk of `memory` bytes (zeros), or the file `file`. */
  readonly plugin: { readonly memory: number } | { readonly file: string };
  /** Put the pause filter in (pause(), resume(), `control`). */
  readonly pausable?: boolean;
  /** Put the error filter in: `ops` fail with `errno` while armed. */
  readonly errors?: {
    readonly errno: "EIO" | "ENOSPC" | "EPERM" | "ENOMEM" | "EINVAL" | "ESHUTDOWN";
    readonly ops: readonly FailingOp[];
    /** Armed from the start (default true). */
    readonly armed?: boolean;
  };
  /** Put the cache filter in, in this mode. */
  readonly cache?: "writeback" | "writethrough" | "unsafe";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()));
}

/** A FUSE file served by an nbdkit the test controls. */
export class NbdMedium implements AsyncDisposable {
  /** The file to use as a disk image. */
  readonly path: string;
  /** The pause filter's control socket (with `pausable`). */
  readonly control: string;
  readonly #dir: string;
  readonly #errorTrigger: string;
  readonly #nbdkit: ChildProcess;
  #nbdfuse: ChildProcess | undefined;
  #controlSocket: Socket | undefined;
  #closed = false;

  private constructor(dir: string, nbdkit: ChildProcess) {
    this.#dir = dir;
    this.path = `${dir}/mnt/disk`;
    this.control = `${dir}/pause.sock`;
    this.#errorTrigger = `${dir}/errors-armed`;
    this.#nbdkit = nbdkit;
  }

  /** Starts nbdkit and mounts its export; resolves once the file is there. */
  static async start(options: NbdMediumOptions): Promise<NbdMedium> {
    const dir = mkdtempSync(`${tmpdir()}/nbd-medium-`);
    mkdirSync(`${dir}/mnt`);
    const filters: string[] = [];
    const parameters: string[] = [];
    if (options.pausable) {
      filters.push("--filter=pause");
      parameters.push(`pause-control=${dir}/pause.sock`);
    }
    if (options.errors) {
      filters.push("--filter=error");
      for (const op of options.errors.ops) {
        parameters.push(
          `error-${op}=${options.errors.errno}`,
          `error-${op}-rate=100%`,
          `error-${op}-file=${dir}/errors-armed`,
        );
      }
      if (options.errors.armed ?? true) writeFileSync(`${dir}/errors-armed`, "");
    }
    if (options.cache) {
      filters.push("--filter=cache");
      parameters.push(`cache=${options.cache}`);
    }
    const plugin = "memory" in options.plugin
      ? ["memory", `size=${options.plugin.memory}`]
      : ["file", `file=${options.plugin.file}`];
    const nbdkit = spawn("nbdkit", [
      "--foreground",
      "--exit-with-parent",
      `--unix=${dir}/nbd.sock`,
      `--pidfile=${dir}/nbdkit.pid`,
      ...filters,
      ...plugin,
      ...parameters,
    ], {
      // The cache filter's temporary file goes here, and goes with the directory.
      env: { ...process.env, TMPDIR: dir },
      // Each injected error is a line of its own on stderr.
      stdio: "ignore",
    });
    const medium = new NbdMedium(dir, nbdkit);
    try {
      await medium.#until(() => existsSync(`${dir}/nbdkit.pid`), "nbdkit to listen", nbdkit);
      // nbdfuse reports every failed request on stderr; the tests look at the caller's side.
      medium.#nbdfuse = spawn("nbdfuse", [
        `--pidfile=${dir}/nbdfuse.pid`,
        `${dir}/mnt/disk`,
        "--unix",
        `${dir}/nbd.sock`,
      ], { stdio: "ignore" });
      await medium.#until(
        () => existsSync(`${dir}/nbdfuse.pid`),
        "nbdfuse to mount the file",
        medium.#nbdfuse,
      );
    } catch (error) {
      await medium.close();
      throw error;
    }
    return medium;
  }

  /** Polls `ready` (a start-up wait, bounded); fails early when `child` exits. */
  async #until(ready: () => boolean, what: string, child: ChildProcess): Promise<void> {
    for (let tries = 0; !ready(); tries++) {
      if (tries === 1000 || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`waiting for ${what} failed (${this.#dir})`);
      }
      await sleep(10);
    }
  }

  /** nbdkit's process id. */
  get nbdkitPid(): number {
    return Number(readFileSync(`${this.#dir}/nbdkit.pid`, "utf8").trim());
  }

  /** Holds every request that reaches nbdkit from now on (returns once those already in it completed). */
  pause(): Promise<void> {
    return this.#command("p");
  }

  /** Serves again; what was held completes. */
  resume(): Promise<void> {
    return this.#command("r");
  }

  async #command(letter: string): Promise<void> {
    this.#controlSocket ??= await new Promise<Socket>((resolve, reject) => {
      const socket = connect(this.control);
      socket.once("connect", () => resolve(socket));
      socket.once("error", reject);
    });
    const socket = this.#controlSocket;
    const answer = await new Promise<string>((resolve, reject) => {
      socket.once("data", (data) => resolve(String(data)));
      socket.once("error", reject);
      socket.write(letter);
    });
    if (answer !== letter.toUpperCase()) {
      throw new Error(`nbdkit's pause filter answered '${answer}' to '${letter}'`);
    }
  }

  /** Makes the error filter fail its operations (true) or pass them (false). */
  armErrors(armed: boolean): void {
    if (armed) writeFileSync(this.#errorTrigger, "");
    else rmSync(this.#errorTrigger, { force: true });
  }

  /**
   * The power cut: SIGKILL to nbdkit. What its cache held is gone; the
   * FUSE file fails every request from now on (nbdfuse loses its server).
   */
  async powerCut(): Promise<void> {
    this.#nbdkit.kill("SIGKILL");
    await exited(this.#nbdkit);
  }

  /** Resumes, unmounts, stops nbdkit and nbdfuse, removes the directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A thread held in a paused request cannot even exit: let it go first.
    if (this.#controlSocket) {
      await this.resume().catch(() => {});
      this.#controlSocket.destroy();
    }
    if (this.#nbdfuse) {
      // Lazily when a process still has the file open (it lets go when it ends).
      spawnSync("fusermount3", ["-u", "-z", `${this.#dir}/mnt`], { stdio: "ignore" });
      await exited(this.#nbdfuse);
    }
    if (this.#nbdkit.exitCode === null && this.#nbdkit.signalCode === null) {
      this.#nbdkit.kill("SIGTERM");
    }
    await exited(this.#nbdkit);
    rmSync(this.#dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
