/**
 * The exit statuses `--help` lists are the ones the real process gives:
 * each has a case here that produces it, and `--help` lists no other. A run
 * ended by SIGINT or SIGTERM reports what its load did until then, removes
 * its temporary image and exits 128 + the signal's number, as fio does.
 */

import assert from "node:assert/strict";

const mod = new URL("../../cli.ts", import.meta.url).pathname;

interface Run {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
}

async function run(...args: string[]): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", mod, ...args] })
    .output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    signal: output.signal,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Starts a long load on the temporary image, waits until its writes reach
 * the image, sends `signal`, and returns how the process ended and the
 * image's path.
 */
async function interruptedLoad(signal: "SIGINT" | "SIGTERM"): Promise<Run & { image: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      mod,
      "--job",
      "load",
      "--rw=randwrite",
      "--time_based",
      "--runtime=2m",
      "--verify=crc32c",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  try {
    let image: string | undefined;
    while (image === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the run ended before its load began: ${stderr}`);
      stderr += value;
      image = /using a temporary 64 MiB image (\S+) \(removed on exit\)/.exec(stderr)?.[1];
    }
    // The load is running once its writes land in the (sparse) image.
    for (const end = Date.now() + 60_000; (Deno.statSync(image).blocks ?? 0) === 0;) {
      if (Date.now() > end) assert.fail(`no write reached ${image}: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill(signal);
    const status = await child.status;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    return { code: status.code, signal: status.signal, stdout: await stdout, stderr, image };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function assertInterrupted(signal: "SIGINT" | "SIGTERM", status: number): Promise<void> {
  const result = await interruptedLoad(signal);
  assert.equal(result.signal, null, "the process handles the signal and exits by itself");
  assert.equal(result.code, status, result.stderr);
  assert.match(result.stderr, new RegExp(`^virtio-blk-dm: ${signal}: stopping`, "m"));
  // The normal report, with what was measured, marked as interrupted.
  assert.match(result.stdout, /^vda: rw=randwrite, bs=4KiB/);
  const ios = /^ {2}write: IOPS=\S+, BW=.*\((\S+)\/(\d+)msec\)$/m.exec(result.stdout);
  assert.ok(ios, result.stdout);
  assert.notEqual(ios[1], "0B", "the writes done before the signal are counted");
  assert.match(result.stdout, /^ {2}stopped: interrupted/m);
  await assert.rejects(Deno.stat(result.image), Deno.errors.NotFound, "the image is left behind");
}

/** A case that makes the real process exit with each status. */
const CASES: Record<number, { name: string; produce: () => Promise<void> }> = {
  0: {
    name: "a job that found nothing wrong",
    produce: async () => {
      const { code, stdout, stderr } = await run();
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^vda /m);
    },
  },
  1: {
    name: "a load whose requests failed",
    produce: async () => {
      const dir = await Deno.makeTempDir();
      try {
        await Deno.writeFile(`${dir}/ro.img`, new Uint8Array(1 << 20));
        const { code, stdout } = await run(
          "-s",
          `9,virtio-blk,${dir}/ro.img,ro`,
          "--job",
          "load",
          "--rw=write",
        );
        assert.equal(code, 1);
        assert.match(stdout, /failed requests?/);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  },
  2: {
    name: "bad input",
    produce: async () => {
      const { code, stderr } = await run("-m", "1k");
      assert.equal(code, 2);
      assert.match(stderr, /^virtio-blk-dm: -m 1k: /);
    },
  },
  130: { name: "SIGINT during a load", produce: () => assertInterrupted("SIGINT", 130) },
  143: { name: "SIGTERM during a load", produce: () => assertInterrupted("SIGTERM", 143) },
};

Deno.test("--help lists exactly the exit statuses the cases below produce", async () => {
  const { code, stdout } = await run("--help");
  assert.equal(code, 0);
  const section = /^Exit status:\n((?: {2}\d+ +\S.*\n)+)/m.exec(stdout);
  assert.ok(section, stdout);
  const listed = section[1].trimEnd().split("\n").map((line) => Number(line.trim().split(" ")[0]));
  assert.deepEqual(listed, Object.keys(CASES).map(Number));
});

for (const [status, { name, produce }] of Object.entries(CASES)) {
  Deno.test(`exit status ${status}: ${name}`, produce);
}
