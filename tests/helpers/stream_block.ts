/**
 * The blocks of the durability tests' write stream (`kill_child.ts`), and
 * the two sides of every durability test: running the stream until
 * something is cut, and checking a file against what was acknowledged.
 *
 * @module
 */

/** Size of one block of the write stream. */
export const STREAM_BLOCK = 4096;

/**
 * The contents of block `index` written in round `round`: a header
 * (index, round) and bytes derived from both, so a reader can tell which
 * write a block holds and whether it is whole.
 */
export function streamBlock(index: number, round: number): Uint8Array {
  const block = new Uint8Array(STREAM_BLOCK);
  const view = new DataView(block.buffer);
  view.setUint32(0, index, true);
  view.setUint32(4, round, true);
  for (let i = 8; i < STREAM_BLOCK; i++) block[i] = (index * 7 + round * 131 + i) & 0xff;
  return block;
}

/**
 * What `file` lacks of the acknowledged writes (`acked`: block → the
 * latest round acknowledged): one line per block that lost its write, holds
 * an older round, or is torn. A newer round than acknowledged is fine (it
 * was written, not yet acknowledged, and survived).
 */
export function lostWrites(file: Uint8Array, acked: ReadonlyMap<number, number>): string[] {
  const lost: string[] = [];
  for (const [index, round] of acked) {
    const block = file.subarray(index * STREAM_BLOCK, (index + 1) * STREAM_BLOCK);
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    const heldIndex = view.getUint32(0, true), heldRound = view.getUint32(4, true);
    if (heldIndex !== index || heldRound < round) {
      lost.push(
        `block ${index}: acknowledged round ${round}, the file has ${
          heldIndex === index ? `round ${heldRound}` : "another block's bytes or none"
        }`,
      );
    } else if (!block.every((byte, i) => byte === streamBlock(index, heldRound)[i])) {
      lost.push(`block ${index} (round ${heldRound}) is torn`);
    }
  }
  return lost;
}

/** How a stream run ends. */
export interface StreamRun {
  /** Block → the latest round acknowledged. */
  readonly acked: Map<number, number>;
  /** How the child ended. */
  readonly status: Deno.CommandStatus;
  /** What it said on stderr. */
  readonly stderr: string;
}

const child = new URL("./kill_child.ts", import.meta.url);

/**
 * Runs `kill_child.ts` on `image` and calls `cut` (which must end the
 * stream: kill the child, or take its medium away) `delayMs` after the
 * first acknowledgement; then kills the child if it still runs, and returns
 * every acknowledgement it printed. `aio` is how the device's threads reach
 * the image (ACRN's `aio=`).
 */
export async function streamUntilCut(
  image: string,
  mode: "writethru" | "writeback",
  medium: "honest" | "lying",
  delayMs: number,
  cut: (process: Deno.ChildProcess) => Promise<void> | void,
  aio: "threads" | "io_uring" = "threads",
): Promise<StreamRun> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child.pathname, image, mode, medium, aio],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(process.stderr).text();
  const acked = new Map<number, number>();
  let cutting: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of process.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      const [word, index, round] = line.split(" ");
      if (word !== "ack") continue;
      acked.set(Number(index), Math.max(Number(round), acked.get(Number(index)) ?? 0));
    }
    timer ??= setTimeout(() => {
      cutting = (async () => {
        await cut(process);
        try {
          process.kill("SIGKILL");
        } catch {
          // It ended on its own (its medium failed).
        }
      })();
    }, delayMs);
  }
  const status = await process.status;
  clearTimeout(timer);
  await cutting;
  return { acked, status, stderr: await stderr };
}
