/**
 * The npm package as Node 20 sees it (run by `tests/node/run.ts` only,
 * against the built package this file is compiled into): it loads without
 * Deno, its declarations and modules name no `.ts` file, its manifest points
 * at files that exist, the Deno-only parts refuse cleanly, and `node cli.js`
 * is the command line.
 *
 * Each check that must not see the test shim's `Deno` global runs in a
 * plain `node` process.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The package root: this file is `<root>/tests/node/package_on_node.js`. */
const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));

/** Files under `dir` (package-relative), recursively. */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(join(PACKAGE, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(PACKAGE.length))
    .sort();
}

/** The package's own files: what `files` in package.json ships. */
function shippedFiles(): string[] {
  const entries = ["mod", "cli", "file", "vhost_user", "qmp"].flatMap((
    base,
  ) => [`${base}.js`, `${base}.d.ts`]);
  return [...entries, ...filesUnder("src"), ...filesUnder("bin")];
}

/** Runs `node` (no test shim) on an ES module `script`; returns its exit status and output. */
function plainNode(
  script: string,
  args: string[] = [],
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(
    process.execPath,
    ["--input-type=module", "--eval", script, "--", ...args],
    { encoding: "utf8", cwd: PACKAGE },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

Deno.test("every module of the package loads on plain Node and leaves no Deno global", () => {
  // Thread entry points (`…worker.js`, `…_thread.js`: started by
  // `siblingModule`) wait for their parent at load; the engine, CLI and
  // HTTP image tests start them as real threads.
  const modules = shippedFiles().filter((file) =>
    file.endsWith(".js") && !file.startsWith("bin/") && !/(worker|_thread)\.js$/.test(file)
  );
  assert.ok(modules.length > 50, `only ${modules.length} modules found`);
  const urls = modules.map((file) => new URL(file, `file://${PACKAGE}`).href);
  const { status, stdout, stderr } = plainNode(`
    for (const url of ${JSON.stringify(urls)}) await import(url);
    console.log(typeof globalThis.Deno);
  `);
  assert.equal(status, 0, stderr);
  assert.equal(stdout.trim(), "undefined");
});

Deno.test("no module or declaration of the package names a .ts file", () => {
  const offenders = shippedFiles().filter((file) => {
    const text = fs.readFileSync(join(PACKAGE, file), "utf8")
      // JSDoc examples may show the Deno import ("./mod.ts"); code may not.
      .replace(/\/\*[\s\S]*?\*\//g, "");
    return /(from|import)\s*\(?\s*["'][^"']*\.ts["']/.test(text) ||
      /new URL\(\s*["'][^"']*\.ts["']/.test(text);
  });
  assert.deepEqual(offenders, []);
});

Deno.test("package.json: exports, types, bin and engines point at files that exist", () => {
  const manifest = JSON.parse(fs.readFileSync(join(PACKAGE, "package.json"), "utf8"));
  assert.equal(manifest.type, "module");
  assert.equal(manifest.engines.node, ">=20");
  const deno = JSON.parse(
    fs.readFileSync(new URL("../../../../deno.json", import.meta.url), "utf8"),
  );
  assert.deepEqual(manifest.exports["."], { types: "./mod.d.ts", import: "./mod.js" });
  // The sub-path exports deno.json declares, each with its declarations.
  for (const [name, source] of Object.entries(deno.exports as Record<string, string>)) {
    const base = source.replace(/\.ts$/, "");
    assert.deepEqual(manifest.exports[name], { types: `${base}.d.ts`, import: `${base}.js` });
    for (const file of Object.values(manifest.exports[name]) as string[]) {
      assert.ok(fs.existsSync(join(PACKAGE, file)), `${file} is missing`);
    }
  }
  assert.equal(manifest.version, deno.version);
  assert.equal(manifest.name, deno.name);
  const bins = Object.values(manifest.bin) as string[];
  assert.equal(bins.length, 1);
  for (const file of [manifest.exports["."].types, manifest.exports["."].import, ...bins]) {
    assert.ok(fs.existsSync(join(PACKAGE, file)), `${file} is missing`);
  }
  assert.ok((fs.statSync(join(PACKAGE, bins[0])).mode & 0o111) !== 0, "the bin is executable");
});

Deno.test("vhost-user on Node: the entry point throws UNSUPPORTED and creates no socket", () => {
  const dir = fs.mkdtempSync(join(tmpdir(), "vhost-node-"));
  try {
    const { status, stdout, stderr } = plainNode(`
      import { serveVhostUserBlk } from "./vhost_user.js";
      import { MemoryBackend } from "./mod.js";
      try {
        await serveVhostUserBlk({
          socketPath: ${JSON.stringify(`${dir}/s.sock`)},
          device: { backend: MemoryBackend.create(4096) },
        });
        console.log("no error");
      } catch (error) {
        console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message }));
      }
    `);
    assert.equal(status, 0, stderr);
    const error = JSON.parse(stdout);
    assert.equal(error.name, "VirtioBlkError");
    assert.equal(error.code, "UNSUPPORTED");
    assert.match(error.message, /FFI/);
    assert.deepEqual(fs.readdirSync(dir), [], "no socket was created");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("file backends on Node: io defaults to node-fs and io=fsfile is INVALID_CONFIG", () => {
  const dir = fs.mkdtempSync(join(tmpdir(), "backend-node-"));
  try {
    const image = `${dir}/disk.img`;
    fs.writeFileSync(image, new Uint8Array(64 * 1024));
    const { status, stdout, stderr } = plainNode(`
      import { describeFile } from "./file.js";
      const spec = describeFile(${JSON.stringify(image)});
      let refused;
      try {
        describeFile(${JSON.stringify(image)}, { io: "fsfile" });
      } catch (error) {
        refused = { code: error.code, message: error.message };
      }
      console.log(JSON.stringify({ io: spec.io, refused }));
    `);
    assert.equal(status, 0, stderr);
    const result = JSON.parse(stdout);
    assert.equal(result.io, "node-fs");
    assert.equal(result.refused?.code, "INVALID_CONFIG");
    assert.match(result.refused.message, /fsfile.*needs Deno/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("node cli.js is the command line, as deno run cli.ts is; --version is the package's", () => {
  const dir = fs.mkdtempSync(join(tmpdir(), "cli-node-"));
  try {
    fs.writeFileSync(`${dir}/a.img`, new Uint8Array(1 << 20));
    const direct = spawnSync(process.execPath, ["cli.js", "-s", `5,virtio-blk,${dir}/a.img`], {
      cwd: PACKAGE,
      encoding: "utf8",
    });
    assert.equal(direct.status, 0, direct.stderr);
    assert.match(direct.stdout, /^vda +5 +1M /m);
    const help = spawnSync(process.execPath, ["cli.js", "--help"], {
      cwd: PACKAGE,
      encoding: "utf8",
    });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: virtio-blk-dm \[options\]/);
    const version = spawnSync(process.execPath, ["cli.js", "--version"], {
      cwd: PACKAGE,
      encoding: "utf8",
    });
    assert.equal(version.status, 0, version.stderr);
    const manifest = JSON.parse(fs.readFileSync(join(PACKAGE, "package.json"), "utf8"));
    assert.equal(version.stdout, `virtio-blk-dm ${manifest.version}\n`);
    // Imported, not run: nothing is printed.
    const imported = plainNode(`await import("./cli.js"); await import("./mod.js");`, [
      "-s",
      `5,virtio-blk,${dir}/a.img`,
    ]);
    assert.equal(imported.status, 0, imported.stderr);
    assert.equal(imported.stdout, "");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
