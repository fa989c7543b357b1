/**
 * A medium that holds requests until the test releases them: a FUSE file
 * (`nbdfuse`) served by `nbdkit`'s memory plugin through its pause filter
 * (nbdkit-pause-filter(1)). While the filter is paused, a read of the file
 * that reaches nbdkit blocks in the kernel until it is resumed, so a
 * blockif worker's request stays in flight for exactly as long as a test
 * says, whatever the machine's speed. Pausing and resuming is one byte on
 * the filter's control socket (`p`, `r`), echoed in upper case once done.
 *
 * The release comes from a thread of the test's own
 * (`medium_gate_worker.ts`), because the thread that waits for the
 * requests (the device model's, in a reset) is blocked meanwhile.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { skipWhen } from "./skip.ts";
import { describeMissing, missingTools } from "../../scripts/system_tools.ts";

/** Words of the gate buffer a guest program and the gate thread share. */
export const ResetGate = {
  /**
   * Set by the guest just before its reset (STATUS = 0): only from then on
   * does the gate thread look for the device model waiting (the guest's
   * driver reset the device once already, when it started).
   */
  RESETTING: 0,
  /** Set by the guest once its reset has returned. */
  RESET_RETURNED: 1,
  COUNT: 2,
} as const;

/** Why paused media cannot be had here, or undefined. */
export function pausedMediumUnavailable(): string | undefined {
  const missing = missingTools(["nbdkit", "nbdfuse"]);
  if (missing.length > 0) return `needs ${describeMissing(missing)}`;
  if (!existsSync("/dev/fuse")) return "needs /dev/fuse (FUSE)";
  return undefined;
}

/** The tests of `what` need a paused medium; skipped, visibly, when there is none. */
export function needsPausedMedium(what: string) {
  return skipWhen(what, pausedMediumUnavailable());
}

/** A FUSE file of `bytes` (zeros) whose reads and writes a control socket can hold. */
export class PausedMedium implements AsyncDisposable {
  /** The file to use as a disk image. */
  readonly path: string;
  /** The pause filter's control socket. */
  readonly control: string;
  readonly #dir: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  private constructor(dir: string, child: ChildProcess, exited: Promise<void>) {
    this.#dir = dir;
    this.path = `${dir}/mnt/disk`;
    this.control = `${dir}/control.sock`;
    this.#child = child;
    this.#exited = exited;
  }

  /** Serves a fresh medium of `bytes` bytes; resolves once its file is there. */
  static async start(bytes: number): Promise<PausedMedium> {
    const dir = mkdtempSync(`${tmpdir()}/paused-medium-`);
    mkdirSync(`${dir}/mnt`);
    const child = spawn("nbdfuse", [
      `${dir}/mnt/disk`,
      "--command",
      "nbdkit",
      "-s",
      "--filter=pause",
      "memory",
      String(bytes),
      `pause-control=${dir}/control.sock`,
    ], { stdio: "ignore" }); // it reports its own SIGTERM on stderr
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const medium = new PausedMedium(dir, child, exited);
    // nbdfuse mounts, then nbdkit listens: wait for both (a start-up wait, bounded).
    for (let tries = 0;; tries++) {
      const ready = existsSync(medium.control) && existsSync(medium.path) &&
        statSync(medium.path).size === bytes;
      if (ready) return medium;
      if (tries === 1000 || child.exitCode !== null) {
        await medium[Symbol.asyncDispose]();
        throw new Error(`nbdfuse did not serve ${medium.path}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Stops nbdfuse (which unmounts the file and ends nbdkit) and removes the directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#child.exitCode === null) this.#child.kill("SIGTERM");
    await this.#exited;
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
