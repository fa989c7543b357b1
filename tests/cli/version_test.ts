/**
 * `--version`: the program's name and the version written in deno.json,
 * the one place it is kept (the npm package's package.json is made from it).
 */

import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";

/** deno.json's version, from the nearest deno.json above this file (the checkout's). */
function denoJsonVersion(): string {
  for (let dir = new URL("./", import.meta.url); dir.pathname !== "/"; dir = new URL("../", dir)) {
    let text: string;
    try {
      text = Deno.readTextFileSync(new URL("deno.json", dir));
    } catch {
      continue;
    }
    return JSON.parse(text).version;
  }
  throw new Error("no deno.json above this test");
}

Deno.test("--version prints the program's name and deno.json's version, and nothing else", async () => {
  let stdout = "", stderr = "";
  const status = await main(["--version"], {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
  });
  assert.equal(status, 0);
  assert.equal(stdout, `virtio-blk-dm ${denoJsonVersion()}\n`);
  assert.equal(stderr, "");
});
