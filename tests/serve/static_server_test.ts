/**
 * The page's and the images' server (scripts/serve/static_server.ts): one
 * byte range as RFC 9110 §14 says, the cross-origin-isolation headers,
 * nothing outside its directories whatever the path says, nothing written;
 * and its command (scripts/serve.ts) refuses bad options with one line.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { connect } from "node:net";
import { parseRange, startStaticServer } from "../../scripts/serve/static_server.ts";

Deno.test("static server: Range headers give one byte range or none", () => {
  assert.deepEqual(parseRange("bytes=0-0", 100), [0, 0]);
  assert.deepEqual(parseRange("bytes=10-19", 100), [10, 19]);
  assert.deepEqual(parseRange("bytes=90-", 100), [90, 99]);
  assert.deepEqual(parseRange("bytes=90-500", 100), [90, 99], "the end is clipped");
  assert.deepEqual(parseRange("bytes=-10", 100), [90, 99], "the last 10 bytes");
  assert.deepEqual(parseRange("bytes=-500", 100), [0, 99]);
  assert.equal(parseRange("bytes=100-", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=0-0", 0), "unsatisfiable");
  for (const ignored of [undefined, "bytes=0-1,4-5", "items=0-1", "bytes=5-2", "bytes=-", "junk"]) {
    assert.equal(parseRange(ignored, 100), undefined, `${ignored}: the whole file`);
  }
  assert.equal(parseRange("bytes=99999999999999999999-", 100), "unsatisfiable");
});

/** Sends `GET path` as written and returns the whole answer. */
function rawGet(base: string, path: string): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    let answer = "";
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => answer += chunk);
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
  });
}

Deno.test("static server: ranges, isolation headers, and nothing outside its directory", async () => {
  const dir = mkdtempSync(join(tmpdir(), "virtio-blk-serve-"));
  const bytes = new Uint8Array(1000).map((_, i) => i & 0xff);
  writeFileSync(join(dir, "disk.img"), bytes);
  const server = await startStaticServer({ mounts: [{ prefix: "/images/", directory: dir }] });
  try {
    const ranged = await fetch(`${server.url}images/disk.img`, {
      headers: { Range: "bytes=10-19" },
    });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), "bytes 10-19/1000");
    assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), bytes.subarray(10, 20));
    assert.equal(ranged.headers.get("cross-origin-opener-policy"), "same-origin");
    assert.equal(ranged.headers.get("cross-origin-embedder-policy"), "require-corp");
    assert.equal(ranged.headers.get("cross-origin-resource-policy"), "cross-origin");
    assert.match(ranged.headers.get("access-control-expose-headers")!, /Content-Range/);

    const beyond = await fetch(`${server.url}images/disk.img`, {
      headers: { Range: "bytes=1000-" },
    });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), "bytes */1000");
    await beyond.body?.cancel();

    const whole = await fetch(`${server.url}images/disk.img`);
    assert.equal(whole.status, 200);
    assert.equal((await whole.arrayBuffer()).byteLength, 1000);

    // %2f survives URL normalisation: the server decodes it into `..` segments.
    for (const path of ["images/..%2f..%2f..%2fetc%2fpasswd", "images/%2e%2e%2f%2e%2e%2fhosts"]) {
      const outside = await fetch(`${server.url}${path}`);
      assert.equal(outside.status, 404, path);
      await outside.body?.cancel();
    }
    // A literal `..` path as a client that does not normalise sends it.
    const raw = await rawGet(server.url, "/images/../../../../etc/passwd");
    assert.match(raw, /^HTTP\/1\.1 404 /);
    for (const method of ["PUT", "POST", "DELETE"]) {
      const refused = await fetch(`${server.url}images/disk.img`, { method, body: "x" });
      assert.equal(refused.status, 405, method);
      await refused.body?.cancel();
    }
    assert.deepEqual(new Uint8Array(Deno.readFileSync(join(dir, "disk.img"))), bytes);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("static server: without isolation it sends no COOP/COEP", async () => {
  const dir = mkdtempSync(join(tmpdir(), "virtio-blk-serve-"));
  writeFileSync(join(dir, "index.html"), "<p>hi</p>");
  const server = await startStaticServer({
    mounts: [{ prefix: "/", directory: dir }],
    isolate: false,
  });
  try {
    const page = await fetch(server.url);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(page.headers.get("cross-origin-opener-policy"), null);
    assert.equal(page.headers.get("cross-origin-embedder-policy"), null);
    await page.body?.cancel();
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test({
  name: "serve command: a bad option is one line naming it, exit status 2",
  ignore: typeof Deno.execPath !== "function" || process.versions.deno === undefined,
  fn() {
    const script = new URL("../../scripts/serve.ts", import.meta.url).pathname;
    for (
      const [args, message] of [
        [["--port=http"], "serve: --port=http is not a port number (0-65535)"],
        [["--port=70000"], "serve: --port=70000 is not a port number (0-65535)"],
        [["--images=/no/such/dir"], "serve: --images=/no/such/dir is not a directory"],
        [["--colour"], "serve: Unknown option '--colour'"],
      ] as const
    ) {
      const run = spawnSync(Deno.execPath(), ["run", "-A", script, ...args], { encoding: "utf8" });
      assert.equal(run.status, 2, args.join(" "));
      assert.equal(run.stderr.trim(), message);
      assert.equal(run.stdout, "");
    }
  },
});
