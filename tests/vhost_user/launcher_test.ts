/**
 * The checkout's launcher, `./virtio-blk-dm`, the way a script uses it:
 * `./virtio-blk-dm --vhost-user S … & kill $!`. The PID the user started
 * must be the back end itself (the launcher `exec`s Deno), so one SIGTERM to
 * it stops the back end and removes its socket — a wrapper that forwards no
 * signal would leave it running, holding its socket and image.
 */

import assert from "node:assert/strict";

const LAUNCHER = new URL("../../virtio-blk-dm", import.meta.url).pathname;

async function waitFor(condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("launcher: the PID a user starts is the back end; one SIGTERM stops it and removes its socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "launcher-" });
  try {
    const image = `${dir}/disk.img`;
    await Deno.writeFile(image, new Uint8Array(1 << 20));
    const socket = `${dir}/vblk.sock`;
    const child = new Deno.Command(LAUNCHER, {
      args: ["--vhost-user", socket, "-s", `9,virtio-blk,${image}`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = child.stderr.pipeTo(new WritableStream());
    try {
      await waitFor(() => exists(socket), "the back end to listen on its socket");
      // exec: no wrapper process is left between the user and the back end.
      assert.equal(Deno.readLinkSync(`/proc/${child.pid}/exe`), Deno.realPathSync(Deno.execPath()));
      child.kill("SIGTERM");
      const status = await child.status;
      assert.equal(status.signal, null, "the back end handles SIGTERM and exits by itself");
      assert.equal(status.code, 143, "a run SIGTERM ended exits 128 + 15");
      assert.equal(exists(socket), false, "the socket is removed");
      assert.equal(exists(`/proc/${child.pid}`), false, "nothing of it keeps running");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await stderr;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
