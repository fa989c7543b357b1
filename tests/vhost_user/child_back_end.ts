/**
 * The CLI back end (`--vhost-user SOCKET -s …`) in a child process, for
 * tests of what a hostile front end or a hung medium may do to it: a back
 * end that stalls, dies or ignores SIGTERM then fails the test (through
 * {@linkcode within}) instead of hanging the test process, which it would
 * if the back end shared the test's event loop.
 */

import { until, within } from "../helpers/within.ts";
import { FakeFrontEnd } from "./front_end.ts";

export { until, within };

const mod = new URL("../../cli.ts", import.meta.url).pathname;

/** A running back end process. */
export interface ChildBackEnd {
  /** Its socket path. */
  readonly socket: string;
  /** The process. */
  readonly child: Deno.ChildProcess;
  /** What it printed on stderr so far. */
  readonly stderr: () => string;
  /**
   * Resolves once stderr matches `pattern` (its lines reach the test through
   * a pipe, after the replies on the socket); rejects after `ms`.
   */
  readonly said: (pattern: RegExp, ms?: number) => Promise<void>;
}

/** Where the back end's medium comes from, and its device options. */
export interface ChildOptions {
  /** The image (default: a fresh 1 MiB file). */
  readonly image?: string;
  /** Extra `-s` options, e.g. `workers=1`. */
  readonly deviceOptions?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `body` with the CLI back end listening in a child process; kills it
 * (SIGKILL) afterwards if it still runs.
 */
export async function withChildBackEnd(
  body: (backEnd: ChildBackEnd) => Promise<void>,
  options: ChildOptions = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vhost-child-" });
  const image = options.image ?? `${dir}/disk.img`;
  const socket = `${dir}/vblk.sock`;
  if (options.image === undefined) await Deno.writeFile(image, new Uint8Array(1 << 20));
  const spec = `9,virtio-blk,${image}${options.deviceOptions ? `,${options.deviceOptions}` : ""}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", mod, "--vhost-user", socket, "-s", spec],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let said = "";
  const reading = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (text) => void (said += text) }),
  ).catch(() => {});
  try {
    for (let i = 0; i < 500 && !said.includes("Ctrl-C stops"); i++) {
      if (said.includes("error")) break;
      await sleep(20);
    }
    if (!said.includes("Ctrl-C stops")) throw new Error(`the back end did not start: ${said}`);
    await body({
      socket,
      child,
      stderr: () => said,
      said: (pattern, ms = 10_000) =>
        until(() => pattern.test(said), ms, `the back end to say ${pattern} (it said: ${said})`),
    });
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
  }
}

/** A fake front end connected to `backEnd` and through QEMU's connect handshake. */
export async function connectedFrontEnd(backEnd: ChildBackEnd): Promise<FakeFrontEnd> {
  const fe = FakeFrontEnd.connect(backEnd.socket);
  try {
    await fe.handshake();
  } catch (error) {
    fe.close();
    throw error;
  }
  return fe;
}
