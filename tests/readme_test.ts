/**
 * The README's library example runs as written (with its import pointed at
 * this checkout's mod.ts).
 */

import assert from "node:assert/strict";

Deno.test("the README's library example runs and prints what it wrote", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = /## Library\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, "the README has a ts block under ## Library");
  const mod = new URL("../mod.ts", import.meta.url).href;
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/example.ts`;
    await Deno.writeTextFile(script, block.replace(`from "./mod.ts"`, `from "${mod}"`));
    const output = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", script] })
      .output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.match(stdout, /Uint8Array\(512\) \[\s+7, 7, 7/);
    assert.match(stdout, /ACRN--[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}/);
    assert.match(
      stdout,
      /CLOSED virtio-blk device on RAM disk [0-9a-f]{16} is closed \(its registers read all ones\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
