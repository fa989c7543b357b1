/**
 * The browser build (scripts/build_browser.ts): one ES module bundled by
 * esbuild from browser.ts, with a worker entry point per kind of thread,
 * and nothing in it that reaches Node or Deno — checked from esbuild's own
 * record of what went into the bundle (its metafile), not only by reading
 * the output.
 */

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildBrowser,
  BUNDLE,
  runtimeGlobalsIn,
  THREAD_ENTRY_NAMES,
} from "../../scripts/build_browser.ts";

Deno.test("browser build: the bundle holds the browser-safe sources only and imports nothing at run time", async () => {
  const dir = mkdtempSync(join(tmpdir(), "virtio-blk-bundle-")) + "/";
  try {
    const build = await buildBrowser(dir);
    assert.deepEqual(build.bundleImports, [], "no module is left for the browser to import");
    assert.ok(build.bundleInputs.includes("browser.ts"));
    assert.ok(build.bundleInputs.includes("src/backend/opfs/opfs_driver.ts"));
    assert.ok(build.bundleInputs.includes("src/backend/http/http_driver.ts"));
    const outside = build.bundleInputs.filter((input) =>
      !/^(src\/.*|mod\.ts|browser\.ts)$/.test(input)
    );
    assert.deepEqual(outside, [], "every module bundled is one of ours");
    // The Node and FFI halves of the runtime seams are not among them.
    for (const nodeOnly of ["src/runtime/node_thread.ts", "src/backend/file_driver.ts"]) {
      assert.ok(!build.bundleInputs.includes(nodeOnly), `${nodeOnly} is not bundled`);
    }
    const bundle = readFileSync(join(dir, BUNDLE), "utf8");
    assert.deepEqual(runtimeGlobalsIn(bundle), []);
    // A worker entry point per kind of thread, each importing the one bundle.
    for (const name of THREAD_ENTRY_NAMES) {
      const entry = readFileSync(join(dir, `${name}.js`), "utf8");
      assert.match(entry, new RegExp(`from "\\./${BUNDLE.replace(".", "\\.")}"`));
    }
    assert.deepEqual(
      [...THREAD_ENTRY_NAMES].sort(),
      ["fetch_thread", "opfs_probe_worker", "uos_worker", "worker"],
    );
    // Each module names its source in import.meta.url (how plug-ins register in one file).
    assert.match(bundle, /import\.meta\.url \+ "#src\/backend\/opfs\/opfs_driver\.ts"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("browser build: the check for runtime globals finds Deno and node: uses in any form", () => {
  assert.deepEqual(
    runtimeGlobalsIn(
      `const a = Deno.readFileSync(p); import x from "node:fs"; await import("node:path");` +
        ` require("node:worker_threads"); const b = myDeno.x; const c = "Deno";`,
    ),
    ["Deno.readFileSync", "node:fs", "node:path", "node:worker_threads"],
  );
});
