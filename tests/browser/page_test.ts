/// <reference lib="dom" />
/**
 * The web page in headless Chromium (Debian's `chromium`, driven by
 * playwright-core from the npm registry), against the real page, the real
 * browser build and the real server (scripts/serve/static_server.ts): the
 * page is cross-origin isolated; the verified load job passes on an OPFS
 * disk, and what it wrote is read back and verified after a reload; an ext4
 * image served over HTTP shows its label and UUID in the page's lsblk, and
 * so does a local image picked in the page (copied into the OPFS); the
 * guest's writes to a lazy image go to the overlay, never to the server,
 * and an OPFS overlay keeps them across a reload; an OPFS disk's range=
 * window is all the guest touches, and ro keeps the file unchanged;
 * without handle modes one I/O thread serves an OPFS disk;
 * without isolation the page says what is missing. A screenshot of the page
 * after a load is kept (in `$VIRTIO_BLK_ARTIFACTS`, or the temporary
 * directory) for the README.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type Browser, chromium, type Page } from "playwright-core";
import { buildBrowser, ROOT } from "../../scripts/build_browser.ts";
import { startStaticServer, type StaticServer } from "../../scripts/serve/static_server.ts";
import { findCommand } from "../../scripts/system_tools.ts";
import { needsTools } from "../helpers/skip.ts";
import { blkid, run } from "../guest/tools.ts";

const MiB = 1 << 20;
const SKIP = needsTools("chromium", "mkfs.ext4", "blkid");

/** What the page's status line says once a job ends (`web/app.ts`). */
interface Finished {
  readonly state: string;
  readonly text: string;
  readonly result: {
    exitCode: number;
    load?: {
      write: { ios: number };
      verify: { checked: number; mismatches: number } | null;
      errors: unknown[];
    };
    blockdevices?: Record<string, unknown>[];
  };
}

/** Clicks `button` and waits for the job it starts to end. */
async function runJob(page: Page, button: string): Promise<Finished> {
  await page.evaluate(() => document.getElementById("status")!.dataset.state = "clicked");
  await page.click(button);
  await page.waitForFunction(
    () => ["done", "failed"].includes(document.getElementById("status")!.dataset.state!),
    null,
    { timeout: 180_000 },
  );
  return await page.evaluate(() => {
    const status = document.getElementById("status")!;
    return {
      state: status.dataset.state!,
      text: status.textContent!,
      result: JSON.parse(status.dataset.result ?? "null"),
    };
  });
}

/** Sets the load job's fields. */
async function loadOptions(page: Page, options: Record<string, string>): Promise<void> {
  for (const [field, value] of Object.entries(options)) {
    if (field === "rw") await page.selectOption("#rw", value);
    else await page.fill(`#${field}`, value);
  }
}

/** Opens the page at `path` and waits until it has set itself up. */
async function open(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage();
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById("status")!.textContent !== "");
  return page;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

Deno.test({
  name: "web page in headless Chromium",
  ignore: SKIP.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const work = mkdtempSync(join(tmpdir(), "virtio-blk-page-"));
    const dist = join(work, "dist") + "/";
    const images = join(work, "images");
    await buildBrowser(dist);
    Deno.mkdirSync(images);
    const ext4 = join(images, "ext4.img");
    writeFileSync(ext4, new Uint8Array(16 * MiB));
    await run("mkfs.ext4", ["-q", "-F", "-L", "webdisk", ext4]);
    const base = join(images, "base.img");
    writeFileSync(base, new Uint8Array(8 * MiB).fill(0xa5));
    const mounts = [
      { prefix: "/", directory: `${ROOT}web` },
      { prefix: "/dist/", directory: dist },
      { prefix: "/images/", directory: images },
    ];
    const servers: StaticServer[] = [];
    const browser = await chromium.launch({
      executablePath: findCommand("chromium"),
      // Root in a container has no user namespaces for Chromium's sandbox.
      args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
    });
    try {
      const server = await startStaticServer({ mounts });
      servers.push(server);

      await t.step("the page is served cross-origin isolated and finds OPFS", async () => {
        const page = await open(browser, server.url);
        assert.equal(await page.evaluate(() => globalThis.crossOriginIsolated), true);
        assert.equal(await page.isHidden("#missing"), true, "no message about missing parts");
        await page.close();
      });

      await t.step(
        "the verified load job passes on an OPFS disk, and its data is there after a reload",
        async () => {
          const page = await open(browser, server.url);
          await page.fill("#new-name", "disks/test.img");
          await page.fill("#new-size", "16");
          await page.click("#create");
          await page.waitForFunction(() =>
            document.getElementById("status")!.textContent === "Created disks/test.img."
          );
          await loadOptions(page, { rw: "randwrite", bs: "4k", iodepth: "16", size: "2M" });
          const written = await runJob(page, "#load");
          assert.equal(written.state, "done", written.text);
          assert.equal(written.result.exitCode, 0);
          assert.equal(written.result.load?.write.ios, 512);
          assert.deepEqual(written.result.load?.verify, {
            ...written.result.load?.verify,
            checked: 512,
            mismatches: 0,
          });
          const artifacts = process.env.VIRTIO_BLK_ARTIFACTS ?? tmpdir();
          const shot = join(artifacts, "browser_page.png");
          await page.screenshot({ path: shot, fullPage: true });
          console.log(`screenshot: ${shot}`);

          // The page again: the OPFS file from before, read back and checked block by block.
          await page.reload();
          await page.waitForFunction(() =>
            (document.getElementById("opfs-files") as HTMLSelectElement).value === "disks/test.img"
          );
          await loadOptions(page, { rw: "read", bs: "4k", iodepth: "16", size: "2M" });
          const read = await runJob(page, "#load");
          assert.equal(read.state, "done", read.text);
          assert.equal(read.result.load?.verify?.checked, 512, "every block written was read back");
          assert.equal(read.result.load?.verify?.mismatches, 0);
          await page.close();
        },
      );

      await t.step(
        "an ext4 image served over HTTP shows its label and UUID in the page's lsblk",
        async () => {
          const expected = await blkid(ext4);
          const page = await open(browser, `${server.url}?image=/images/ext4.img`);
          const listed = await runJob(page, "#lsblk");
          assert.equal(listed.state, "done", listed.text);
          const [disk] = listed.result.blockdevices!;
          assert.equal(disk.fstype, "ext4");
          assert.equal(disk.label, "webdisk");
          assert.equal(disk.uuid, expected.UUID);
          assert.equal(disk.ro, true);
          const table = await page.textContent("#output");
          assert.match(table!, new RegExp(`vda .*ext4 +webdisk +${expected.UUID}`));
          await page.close();
        },
      );

      await t.step(
        "a local image picked in the page is copied into the OPFS and boots",
        async () => {
          const expected = await blkid(ext4);
          const page = await open(browser, server.url);
          await page.setInputFiles("#pick", ext4);
          await page.waitForFunction(() =>
            document.getElementById("status")!.textContent === "Copied ext4.img to disks/ext4.img."
          );
          assert.equal(await page.inputValue("#opfs-files"), "disks/ext4.img");
          const listed = await runJob(page, "#lsblk");
          assert.equal(listed.state, "done", listed.text);
          const [disk] = listed.result.blockdevices!;
          assert.equal(disk.label, "webdisk");
          assert.equal(disk.uuid, expected.UUID);
          assert.equal(disk.ro, false, "an OPFS copy is writable");
          await page.close();
        },
      );

      await t.step(
        "the guest's writes to a lazy image go to the overlay, never to the server",
        async () => {
          const before = sha256(base);
          const asked = server.requests.length;
          const page = await open(browser, `${server.url}?image=/images/base.img`);
          await page.selectOption("#overlay", "memory");
          await loadOptions(page, { rw: "randrw", bs: "4k", iodepth: "8", size: "2M" });
          const loaded = await runJob(page, "#load");
          assert.equal(loaded.state, "done", loaded.text);
          assert.deepEqual(loaded.result.load?.errors, []);
          assert.ok(loaded.result.load!.write.ios > 0);
          assert.ok(loaded.result.load!.verify!.checked > 0);
          assert.equal(loaded.result.load?.verify?.mismatches, 0);
          assert.equal(sha256(base), before, "the image on the server is unchanged");
          const imageRequests = server.requests.slice(asked).filter((r) =>
            r.path === "/images/base.img"
          );
          assert.ok(imageRequests.length > 0);
          assert.ok(
            imageRequests.every((r) => r.method === "GET" && r.range !== undefined),
            "only Range reads of the image reached the server",
          );
          await page.close();
        },
      );

      await t.step(
        "an OPFS overlay keeps the guest's writes to a lazy image across a reload",
        async () => {
          const before = sha256(base);
          const url = `${server.url}?image=/images/base.img`;
          const page = await open(browser, url);
          await page.selectOption("#overlay", "opfs");
          await loadOptions(page, { rw: "randwrite", bs: "4k", iodepth: "8", size: "2M" });
          const written = await runJob(page, "#load");
          assert.equal(written.state, "done", written.text);
          assert.equal(written.result.load?.verify?.checked, 512);
          await page.reload();
          await page.waitForFunction(() => document.getElementById("status")!.textContent !== "");
          await page.selectOption("#overlay", "opfs");
          await loadOptions(page, { rw: "read", bs: "4k", iodepth: "8", size: "2M" });
          const read = await runJob(page, "#load");
          assert.equal(read.state, "done", read.text);
          assert.equal(read.result.load?.verify?.checked, 512, "every block written came back");
          assert.equal(read.result.load?.verify?.mismatches, 0);
          assert.equal(sha256(base), before, "the image on the server is unchanged");
          // The overlay names its image: another image is refused it, and it stays as it is.
          const refused = await page.evaluate(async () => {
            const lib = await import("/dist/virtio-blk.js") as typeof import("../../browser.ts");
            const before = (await lib.listOpfsFiles("overlays"))[0];
            const answer = await lib.describeHttpImage("/images/ext4.img", {
              overlay: { opfs: "overlays/base.img.cow" },
            }).then(() => "accepted", (error) => `${error.code}: ${error.message}`);
            return { answer, before, after: (await lib.listOpfsFiles("overlays"))[0] };
          });
          assert.match(
            refused.answer,
            /^INVALID_CONFIG: OPFS overlay overlays\/base\.img\.cow belongs to .*base\.img/,
          );
          assert.deepEqual(refused.after, refused.before);
          await page.close();
        },
      );

      await t.step(
        "an OPFS disk's range= window is all the guest touches, and ro keeps it unchanged",
        async () => {
          const page = await open(browser, server.url);
          const found = await page.evaluate(async () => {
            const lib = await import("/dist/virtio-blk.js") as typeof import("../../browser.ts");
            const MiB = 1 << 20;
            const fileBytes = async (name: string) => {
              const root = await navigator.storage.getDirectory();
              const disks = await root.getDirectoryHandle("disks");
              const file = await (await disks.getFileHandle(name)).getFile();
              return new Uint8Array(await file.arrayBuffer());
            };
            const run = async (backend: import("../../browser.ts").BackendSpec, job: string) => {
              const vm = await lib.VirtualMachine.create({
                disks: [{ slot: 3, func: 0, device: { backend } }],
              });
              let text = "";
              try {
                const result = job === "lsblk"
                  ? await lib.runUos(vm, { kind: "lsblk", json: true }, {
                    stdout: (t) => text += t,
                  })
                  : await lib.runUos(vm, {
                    kind: "load",
                    disk: "vda",
                    options: lib.parseLoadOptions({
                      rw: job,
                      bs: "64k",
                      size: "1M",
                      verify: "crc32c",
                    }),
                    json: false,
                    progress: false,
                  });
                return { result, text };
              } finally {
                await vm.close();
              }
            };
            const touched = (bytes: Uint8Array, from: number, to: number) =>
              bytes.subarray(from, to).some((b) => b !== 0);

            await lib.createOpfsDisk("disks/window.img", 4 * MiB);
            // Sectors 2048..4095: the second MiB of the file.
            const windowed = await lib.describeOpfsFile("disks/window.img", {
              range: { start: 2048, size: 2048 },
            });
            const written = await run(windowed, "write");
            const bytes = await fileBytes("window.img");

            await lib.createOpfsDisk("disks/ro.img", 2 * MiB);
            const readOnly = await lib.describeOpfsFile("disks/ro.img", { readOnly: true });
            const listed = await run(readOnly, "lsblk");
            const refused = await run(readOnly, "write");
            return {
              windowSize: windowed.size,
              writeExit: written.result.exitCode,
              checked: written.result.load?.verify?.checked,
              before: touched(bytes, 0, MiB),
              inside: [0, 1, 2, 3].map((q) =>
                touched(bytes, MiB + q * MiB / 4, MiB + (q + 1) * MiB / 4)
              ),
              after: touched(bytes, 2 * MiB, 4 * MiB),
              ro: JSON.parse(listed.text).blockdevices[0].ro,
              roExit: refused.result.exitCode,
              roWriteErrors: refused.result.load?.errorCount,
              roTouched: touched(await fileBytes("ro.img"), 0, 2 * MiB),
            };
          });
          assert.equal(found.windowSize, MiB);
          assert.equal(found.writeExit, 0);
          assert.equal(found.checked, 16);
          assert.deepEqual(found.inside, [true, true, true, true], "the window was written");
          assert.equal(found.before, false, "nothing before the window");
          assert.equal(found.after, false, "nothing after the window");
          assert.equal(found.ro, true);
          assert.notEqual(found.roExit, 0, "the writes of a load on a read-only disk fail");
          assert.ok(found.roWriteErrors! > 0);
          assert.equal(found.roTouched, false, "the read-only file is unchanged");
          await page.close();
        },
      );

      await t.step("without handle modes an OPFS disk is served by one I/O thread", async () => {
        const page = await open(browser, server.url);
        const found = await page.evaluate(async () => {
          const lib = await import("/dist/virtio-blk.js") as typeof import("../../browser.ts");
          await lib.createOpfsDisk("disks/exclusive.img", 4 << 20);
          const described = await lib.describeOpfsFile("disks/exclusive.img");
          // What describeOpfsFile says in a browser whose handles have no modes (before
          // Chromium 121): plain "readwrite" handles, each of which locks the file.
          const exclusive: import("../../browser.ts").OpfsBackendSpec = {
            ...described,
            mode: "readwrite" as const,
            capabilities: { ...described.capabilities, handles: "exclusive" },
          };
          const load = async (backend: import("../../browser.ts").OpfsBackendSpec) => {
            const vm = await lib.VirtualMachine.create({
              disks: [{ slot: 3, func: 0, device: { backend } }],
            });
            try {
              const result = await lib.runUos(vm, {
                kind: "load",
                disk: "vda",
                options: lib.parseLoadOptions({
                  rw: "randwrite",
                  bs: "4k",
                  iodepth: "16",
                  size: "1M",
                  verify: "crc32c",
                }),
                json: false,
                progress: false,
              });
              return {
                checked: result.load?.verify?.checked,
                mismatches: result.load?.verify?.mismatches,
              };
            } finally {
              await vm.close();
            }
          };
          const oneThread = await load(exclusive);
          // The same handles on every thread: the second cannot open the file.
          const everyThread = await load({
            ...exclusive,
            capabilities: { ...exclusive.capabilities, handles: "per-thread" },
          }).then((r) => `served: ${JSON.stringify(r)}`, (error) => `refused: ${error.message}`);
          return { modes: described.mode, oneThread, everyThread };
        });
        assert.equal(found.modes, "readwrite-unsafe", "this Chromium has handle modes");
        assert.deepEqual(found.oneThread, { checked: 256, mismatches: 0 });
        assert.match(found.everyThread, /^refused: .*exclusive\.img/);
        await page.close();
      });

      await t.step("without cross-origin isolation the page says what is missing", async () => {
        const plain = await startStaticServer({ mounts, isolate: false });
        servers.push(plain);
        const page = await open(browser, plain.url);
        assert.equal(await page.evaluate(() => globalThis.crossOriginIsolated), false);
        assert.equal(await page.isVisible("#missing"), true);
        assert.match((await page.textContent("#missing"))!, /not cross-origin isolated/);
        assert.equal(await page.getAttribute("#status", "data-state"), "unsupported");
        assert.equal(await page.isDisabled("#load"), true, "nothing to click that cannot work");
        await page.close();
      });
    } finally {
      await browser.close();
      for (const server of servers) await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
});
