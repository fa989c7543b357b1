/**
 * The load job's progress line, shown when stderr is a terminal (the README
 * documents it): one line rewritten in place (`\r…\x1b[K`) with the phase,
 * its share done, read and write rates and the time, left standing when the
 * load ends so the report starts on a line of its own; none when stderr is
 * not a terminal.
 */

import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";

async function load(
  terminal: boolean,
): Promise<{ status: number; transcript: [string, string][] }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/disk.img`, new Uint8Array(4 << 20));
    const transcript: [string, string][] = [];
    const status = await main([
      "-s",
      `9,virtio-blk,${dir}/disk.img,writeback`,
      "--job",
      "load",
      "--rw=randwrite",
      "--bs=4k",
      "--iodepth=8",
      "--verify=crc32c",
    ], {
      stdout: (text) => transcript.push(["stdout", text]),
      stderr: (text) => transcript.push(["stderr", text]),
      stderrIsTerminal: terminal,
    });
    return { status, transcript };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("progress: on a terminal, one line rewritten per phase, ended before the report", async () => {
  const { status, transcript } = await load(true);
  assert.equal(status, 0);
  const report = transcript.findIndex(([stream]) => stream === "stdout");
  assert.ok(report > 0, "progress came before the report");
  const progress = transcript.slice(0, report);
  assert.ok(progress.every(([stream]) => stream === "stderr"));
  const lines = progress.slice(0, -1).map(([, text]) => text);
  for (const line of lines) {
    assert.ok(line.startsWith("\r") && line.endsWith("\x1b[K"), JSON.stringify(line));
    assert.match(
      line.slice(1, -3),
      /^\[(run|verify) \d{1,3}%\] read \S+ IOPS( \S+\/s)?, write \S+ IOPS( \S+\/s)?, \d+\.\ds$/,
    );
  }
  assert.ok(lines.some((line) => line.startsWith("\r[run 100%]")));
  assert.ok(lines.some((line) => line.startsWith("\r[verify 100%]")));
  assert.deepEqual(progress.at(-1), ["stderr", "\n"], "the last progress line stays, ended");
  assert.match(transcript[report][1], /^vda: rw=randwrite/);
});

Deno.test("progress: none when stderr is not a terminal", async () => {
  const { status, transcript } = await load(false);
  assert.equal(status, 0);
  assert.deepEqual(transcript.filter(([stream]) => stream === "stderr"), []);
});
