/**
 * Without FFI the back end cannot run: the entry point says so with one
 * VirtioBlkError (UNSUPPORTED) and creates nothing.
 */

import assert from "node:assert/strict";

Deno.test("vhost-user: without FFI permission the entry point throws UNSUPPORTED and creates no socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vhost-noffi-" });
  try {
    const server = new URL("../../src/vhost_user/server.ts", import.meta.url).href;
    const memory = new URL("../../src/backend/memory_backend.ts", import.meta.url).href;
    const script = `
      import { serveVhostUserBlk } from "${server}";
      import { MemoryBackend } from "${memory}";
      try {
        const s = serveVhostUserBlk({ socketPath: "${dir}/s.sock", device: { backend: MemoryBackend.create(4096) } });
        console.log("no error");
        await s.close();
      } catch (error) {
        console.log(error.name, error.code, error.message);
      }`;
    const main = `${dir}/main.ts`;
    await Deno.writeTextFile(main, script);
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--allow-read", "--allow-write", main],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const text = new TextDecoder().decode(stdout);
    assert.match(text, /^VirtioBlkError UNSUPPORTED .*--allow-ffi/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["main.ts"], "no socket");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
