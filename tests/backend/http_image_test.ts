/**
 * The lazy HTTP image on Deno and Node (in a browser: tests/browser/): a
 * disk image on a web server on loopback (scripts/serve/static_server.ts,
 * which honours Range), read by the blockif threads through a helper
 * thread's fetch, a block at a time through the shared cache; writes go to
 * a memory overlay and never to the server; a server that answers wrongly
 * is an I/O error, not wrong data.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openBackend, prepareBackend } from "../../src/backend/backend.ts";
import type { HttpImageSpec } from "../../src/backend/http/http_driver.ts";
import { describeHttpImage } from "../../src/backend/http/http_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import type { LsblkJsonDevice } from "../../src/guest/jobs/lsblk.ts";
import { runUos } from "../../src/guest/uos_run.ts";
import { startStaticServer, type StaticServer } from "../../scripts/serve/static_server.ts";
import { needsTools } from "../helpers/skip.ts";
import { type ROGUE_ANSWERS, startServerThread } from "../helpers/server_thread.ts";
import { blkid, run } from "../guest/tools.ts";

const MiB = 1 << 20;
const TOOLS = needsTools("mkfs.ext4", "blkid");

/** A directory for images, removed afterwards. */
function imageDirectory(): { dir: string } & AsyncDisposable {
  const dir = mkdtempSync(join(tmpdir(), "virtio-blk-http-"));
  return {
    dir,
    [Symbol.asyncDispose]: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
  };
}

/** A directory of images served on loopback. */
async function imageServer(): Promise<{ dir: string; server: StaticServer } & AsyncDisposable> {
  const dir = mkdtempSync(join(tmpdir(), "virtio-blk-http-"));
  const server = await startStaticServer({ mounts: [{ prefix: "/images/", directory: dir }] });
  return {
    dir,
    server,
    async [Symbol.asyncDispose]() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `size` bytes whose every 512-byte sector starts with its own number. */
function numberedImage(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  for (let sector = 0; sector < size / 512; sector++) view.setUint32(sector * 512, sector, true);
  return bytes;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

async function lsblk(vm: VirtualMachine): Promise<LsblkJsonDevice[]> {
  let text = "";
  await runUos(vm, { kind: "lsblk", json: true }, { stdout: (t) => text += t });
  return JSON.parse(text).blockdevices;
}

Deno.test({
  name:
    "lazy HTTP image: the guest's lsblk shows the label and UUID of an ext4 image on a web server",
  ignore: TOOLS.ignore,
  async fn() {
    await using images = await imageServer();
    const path = join(images.dir, "ext4.img");
    writeFileSync(path, new Uint8Array(16 * MiB));
    await run("mkfs.ext4", ["-q", "-F", "-L", "served", path]);
    const expected = await blkid(path);
    const backend = await describeHttpImage(`${images.server.url}images/ext4.img`);
    assert.equal(backend.readOnly, true);
    assert.equal(backend.size, 16 * MiB);
    const vm = await VirtualMachine.create({
      memoryBytes: 32 * MiB,
      disks: [{ slot: 3, func: 0, device: { backend } }],
    });
    try {
      const [disk] = await lsblk(vm);
      assert.equal(disk.fstype, "ext4");
      assert.equal(disk.label, "served");
      assert.equal(disk.uuid, expected.UUID);
      assert.equal(disk.ro, true);
    } finally {
      await vm.close();
    }
    // Only reads of the image reached the server, each a Range request.
    const asked = images.server.requests.filter((r) => r.path === "/images/ext4.img");
    assert.ok(asked.length > 1);
    assert.ok(asked.every((r) => r.method === "GET" && r.status === 206 && r.range), "ranges");
  },
});

Deno.test("lazy HTTP image: the guest's writes go to a memory overlay, never to the server", async () => {
  await using images = await imageServer();
  const path = join(images.dir, "base.img");
  writeFileSync(path, numberedImage(8 * MiB));
  const before = sha256(path);
  const backend = await describeHttpImage(`${images.server.url}images/base.img`, {
    overlay: "memory",
  });
  assert.equal(backend.readOnly, false);
  const load = (rw: string) =>
    runUos(vm, {
      kind: "load",
      disk: "vda",
      options: parseLoadOptions({ rw, bs: "4k", iodepth: "8", size: "2M", verify: "crc32c" }),
      json: false,
      progress: false,
    });
  const vm = await VirtualMachine.create({
    memoryBytes: 32 * MiB,
    disks: [{ slot: 3, func: 0, device: { backend } }],
  });
  try {
    const written = await load("randwrite");
    assert.equal(written.exitCode, 0);
    assert.equal(written.load?.write.ios, 512);
    assert.equal(written.load?.verify?.mismatches, 0);
    assert.equal(written.load?.verify?.checked, 512);
    // A second run reads the overlay's blocks back (the seed's pattern, written above).
    const read = await load("read");
    assert.equal(read.exitCode, 0);
    assert.equal(read.load?.verify?.checked, 512);
  } finally {
    await vm.close();
  }
  assert.equal(sha256(path), before, "the image on the server is unchanged");
  assert.deepEqual(
    [...new Set(images.server.requests.map((r) => r.method))],
    ["GET"],
    "the server saw reads only",
  );
});

/** Opens `spec` on this thread as a blockif worker would (prepare, then open). */
async function openHere(spec: HttpImageSpec) {
  await prepareBackend(spec);
  return openBackend(spec);
}

Deno.test("lazy HTTP image: reads see the overlay's sectors and the image's around them, and fetch each cache block once", async () => {
  await using images = await imageDirectory();
  const image = numberedImage(4 * MiB);
  writeFileSync(join(images.dir, "n.img"), image);
  await using server = await startServerThread({
    kind: "static",
    directory: images.dir,
    prefix: "/images/",
  });
  const spec = await describeHttpImage(`${server.url}images/n.img`, {
    overlay: "memory",
    blockBytes: 64 * 1024,
  });
  const backend = await openHere(spec);
  try {
    const ranges = async () =>
      (await server.requests()).filter((r) => r.path === "/images/n.img" && r.range !== "bytes=0-0")
        .map((r) => r.range);
    const out = new Uint8Array(8192);
    backend.read(3 * 65536 + 512, out, 0, 8192);
    assert.deepEqual(out, image.subarray(3 * 65536 + 512, 3 * 65536 + 512 + 8192));
    assert.deepEqual(await ranges(), ["bytes=196608-262143"], "one whole cache block");
    backend.read(3 * 65536, out, 0, 4096);
    assert.deepEqual(
      (await ranges()).length,
      1,
      "the second read of the block came from the cache",
    );
    // A read across three blocks, the first cached: one request for the other two.
    const wide = new Uint8Array(3 * 65536);
    backend.read(3 * 65536, wide, 0, wide.length);
    assert.deepEqual(wide, image.subarray(3 * 65536, 6 * 65536));
    assert.deepEqual(await ranges(), ["bytes=196608-262143", "bytes=262144-393215"]);

    // Write sectors 9 and 10; a read over sectors 8..11 takes 9 and 10 from the overlay.
    const sectors = new Uint8Array(1024).fill(0xee);
    backend.write(9 * 512, sectors, 0, 1024);
    const mixed = new Uint8Array(4 * 512);
    backend.read(8 * 512, mixed, 0, mixed.length);
    assert.deepEqual(mixed.subarray(0, 512), image.subarray(8 * 512, 9 * 512));
    assert.ok(mixed.subarray(512, 1536).every((b) => b === 0xee));
    assert.deepEqual(mixed.subarray(1536), image.subarray(11 * 512, 12 * 512));
    backend.flush();
  } finally {
    backend.close();
  }
});

Deno.test("lazy HTTP image: without an overlay it is read-only, and a write is refused", async () => {
  await using images = await imageDirectory();
  writeFileSync(join(images.dir, "ro.img"), new Uint8Array(MiB));
  await using server = await startServerThread({
    kind: "static",
    directory: images.dir,
    prefix: "/images/",
  });
  const spec = await describeHttpImage(`${server.url}images/ro.img`, { cacheBytes: 0 });
  assert.equal(spec.readOnly, true);
  assert.equal(spec.cache, undefined);
  const backend = await openHere(spec);
  try {
    assert.throws(
      () => backend.write(0, new Uint8Array(512), 0, 512),
      (e) => e instanceof VirtioBlkError && e.code === "IO_ERROR" && /read-only/.test(e.message),
    );
    // Without a cache a read asks for exactly its bytes.
    backend.read(1024, new Uint8Array(512), 0, 512);
    assert.deepEqual((await server.requests()).at(-1)?.range, "bytes=1024-1535");
  } finally {
    backend.close();
  }
});

Deno.test("lazy HTTP image: describing refuses what cannot be a disk, with one clear line", async (t) => {
  await using images = await imageServer();
  writeFileSync(join(images.dir, "odd.img"), new Uint8Array(1000));
  writeFileSync(join(images.dir, "empty.img"), new Uint8Array(0));
  writeFileSync(join(images.dir, "fine.img"), new Uint8Array(MiB));
  const refused = async (url: string, pattern: RegExp, options = {}) => {
    await assert.rejects(
      describeHttpImage(url, options),
      (e) => e instanceof VirtioBlkError && pattern.test(e.message) && !e.message.includes("\n"),
    );
  };
  const base = `${images.server.url}images/`;
  await t.step("missing", () => refused(`${base}none.img`, /HTTP 404/));
  await t.step(
    "odd size",
    () => refused(`${base}odd.img`, /1000 bytes\) is not a multiple of 512/),
  );
  await t.step("empty", () => refused(`${base}empty.img`, /is empty/));
  await t.step("not http", () => refused("file:///etc/passwd", /not an http: or https: URL/));
  await t.step("no server", async () => {
    const closed = await startStaticServer({ mounts: [] });
    await closed.close();
    await refused(`${closed.url}x.img`, /cannot reach/);
  });
  await t.step(
    "bad cache block",
    () => refused(`${base}fine.img`, /power of two/, { blockBytes: 1000 }),
  );
  await t.step(
    "OPFS overlay outside a browser",
    () => refused(`${base}fine.img`, /Origin Private File System/, { overlay: { opfs: "o.cow" } }),
  );
});

Deno.test("lazy HTTP image: a server that answers anything but the bytes asked for is an I/O error", async (t) => {
  const size = MiB;
  const cases: [keyof typeof ROGUE_ANSWERS, RegExp][] = [
    ["the whole image (Range ignored)", /ignored the Range header/],
    ["other bytes", /sent bytes 0-511 instead/],
    ["a resized image", /is 2097152 bytes now, not 1048576/],
    ["too many bytes", /more bytes than asked/],
    ["too few bytes", /fewer bytes than asked \(10 of 512\)/],
    ["a server error", /HTTP 503/],
  ];
  for (const [answer, pattern] of cases) {
    await t.step(answer, async () => {
      await using server = await startServerThread({ kind: "rogue", answer, size });
      const spec = await describeHttpImage(server.url, { cacheBytes: 0 });
      const backend = await openHere(spec);
      try {
        const into = new Uint8Array(512).fill(0x55);
        assert.throws(
          () => backend.read(4096, into, 0, 512),
          (e) => e instanceof VirtioBlkError && e.code === "IO_ERROR" && pattern.test(e.message),
        );
        assert.ok(into.every((b) => b === 0x55), "nothing of a wrong answer reached the caller");
        // The next read is answered again (the channel is not left broken).
        assert.throws(() => backend.read(8192, into, 0, 512), VirtioBlkError);
      } finally {
        backend.close();
      }
    });
  }
});
