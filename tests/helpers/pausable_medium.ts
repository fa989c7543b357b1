/**
 * A medium that hangs on demand: a FUSE file (`nbdfuse`) served by
 * `nbdkit --filter=pause memory SIZE`. While paused, every read or write of
 * the file that reaches nbdkit waits (in the kernel, uninterruptibly for
 * the caller) until it is resumed: a stalled disk, a lost NFS server, a
 * hung SAN path. Needs root for the FUSE mount.
 *
 *     const skip = needsTools(...PAUSABLE_MEDIUM_TOOLS);
 *     const medium = await PausableMedium.start(dir, 1 << 20);
 *     await medium.pause(); … await medium.resume(); await medium.close();
 *
 * @module
 */

import type { SystemTool } from "../../scripts/system_tools.ts";

/** The programs a {@linkcode PausableMedium} needs. */
export const PAUSABLE_MEDIUM_TOOLS: SystemTool[] = ["nbdkit", "nbdfuse", "fusermount3"];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function mounted(path: string): Promise<boolean> {
  const mounts = await Deno.readTextFile("/proc/mounts");
  return mounts.split("\n").some((line) => line.split(" ")[1] === path);
}

/** A FUSE file whose I/O can be paused and resumed. */
export class PausableMedium {
  /** The file to serve (a regular file of the requested size). */
  readonly path: string;
  readonly #process: Deno.ChildProcess;
  readonly #control: Deno.UnixConn;

  private constructor(path: string, process: Deno.ChildProcess, control: Deno.UnixConn) {
    this.path = path;
    this.#process = process;
    this.#control = control;
  }

  /** Mounts a zero-filled medium of `size` bytes at `dir`/medium.img. */
  static async start(dir: string, size: number): Promise<PausableMedium> {
    const path = `${dir}/medium.img`;
    const control = `${dir}/pause.sock`;
    await Deno.writeFile(path, new Uint8Array(0));
    const process = new Deno.Command("nbdfuse", {
      args: [
        path,
        "--command",
        "nbdkit",
        "-s",
        "--filter=pause",
        "memory",
        `size=${size}`,
        `pause-control=${control}`,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    for (let i = 0; i < 500 && !(await mounted(path)); i++) await sleep(20);
    if (!(await mounted(path))) {
      process.kill("SIGKILL");
      await process.status;
      throw new Error(`nbdfuse did not mount ${path}`);
    }
    let connection: Deno.UnixConn | undefined;
    for (let i = 0; i < 500 && connection === undefined; i++) {
      connection = await Deno.connect({ transport: "unix", path: control }).catch(() => undefined);
      if (connection === undefined) await sleep(20);
    }
    if (connection === undefined) throw new Error(`nbdkit's pause control ${control} never came`);
    return new PausableMedium(path, process, connection);
  }

  /** Stops serving I/O (returns once requests already in nbdkit have completed). */
  pause(): Promise<void> {
    return this.#command("p");
  }

  /** Serves I/O again; what waited completes. */
  resume(): Promise<void> {
    return this.#command("r");
  }

  async #command(letter: string): Promise<void> {
    await this.#control.write(new TextEncoder().encode(letter));
    const answer = new Uint8Array(1);
    const read = await this.#control.read(answer);
    if (read !== 1 || answer[0] !== letter.toUpperCase().charCodeAt(0)) {
      throw new Error(`nbdkit's pause filter did not acknowledge '${letter}'`);
    }
  }

  /** Resumes, unmounts and waits for nbdfuse to exit. */
  async close(): Promise<void> {
    await this.resume().catch(() => {});
    this.#control.close();
    await new Deno.Command("fusermount3", { args: ["-u", this.path], stderr: "null" }).output();
    await this.#process.status;
  }
}
