/**
 * A real Linux guest (Debian's 6.1 kernel, its own virtio_blk driver) on
 * our vhost-user-blk back end, booted by QEMU under TCG (issue 7). Each boot
 * takes 15–20 s; the tests are skipped, with the programs named, only when
 * QEMU or a program the guest is built from is missing (`npm test` installs
 * them when it runs as root).
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import type { BlkDeviceOptions } from "../../src/blk/device.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { serveVhostUserBlk, type VhostUserBlkServer } from "../../src/vhost_user/server.ts";
import { bootGuest, GUEST_TOOLS, result, run, sha256 } from "../../scripts/guest/run_guest.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";
import { needsTools, skipWhen } from "../helpers/skip.ts";
import { fileSpaceUnavailable } from "../../src/backend/file_space.ts";

const TOOLS = needsTools(...GUEST_TOOLS);

const MiB = 1 << 20;

interface Served {
  server: VhostUserBlkServer;
  socket: string;
  logs: string[];
}

/** A back end on a socket in `dir`. */
function serve(dir: string, name: string, device: BlkDeviceOptions): Served {
  const socket = `${dir}/${name}.sock`;
  const logs: string[] = [];
  const server = serveVhostUserBlk({ socketPath: socket, device, log: (m) => logs.push(m) });
  return { server, socket, logs };
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vhost-guest-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function sparseImage(path: string, size: number): Promise<void> {
  const file = await Deno.open(path, { create: true, write: true, truncate: true });
  await file.truncate(size);
  file.close();
}

async function eventually(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

/** Guest memory mappings of this process (QEMU's RAM memfd), from /proc/self/maps. */
function guestMappings(): string[] {
  return Deno.readTextFileSync("/proc/self/maps").split("\n").filter((line) =>
    line.includes("memory-backend-memfd")
  );
}

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `guest (modern, ${io.name}): fio verify passes, then ext4 files written in the guest check out on the host`,
    ignore: TOOLS.ignore || io.skip.ignore,
    async fn() {
      await withDir(async (dir) => {
        const image = `${dir}/disk.img`;
        await sparseImage(image, 128 * MiB);
        // The in-process engine (the back end's default), or the worker engine
        // on io_uring (ACRN's aio=io_uring): the same device either way.
        const { server, socket, logs } = serve(
          dir,
          "blk",
          io.name === "io_uring"
            ? { backend: describeFile(image, { aio: "io_uring" }), engine: workerEngine() }
            : { backend: describeFile(image) },
        );
        let boot;
        try {
          boot = await bootGuest({
            disks: [`vhost:${socket}`],
            run: ["info.sh", "fio_verify.sh", "check.sh"],
          });
        } finally {
          await server.close();
        }
        assert.equal(boot.rc, 0, boot.output);
        const disk = result(boot, "disk");
        assert.equal(disk.disk, "vda");
        assert.equal(Number(disk.size_bytes), 128 * MiB, "the guest sees the image's size");
        assert.equal(disk.ro, "0");
        assert.equal(result(boot, "pci").device, "0x1042", "a modern virtio-blk function");
        assert.equal(result(boot, "fio_verify").fio_verify, "PASS");
        assert.equal(result(boot, "check").check, "PASS");
        assert.deepEqual(logs, [], "nothing refused");

        // On the host: the file system is clean and holds the same files.
        const fsck = await run("e2fsck", ["-fn", image]);
        assert.equal(fsck.code, 0, fsck.text);
        const files = boot.results.filter((r) => "file" in r);
        assert.equal(files.length, 3);
        for (const { file, sha256: guestSum } of files) {
          const dumped = await run("debugfs", ["-R", `cat /${file}`, image]);
          assert.equal(dumped.code, 0, dumped.text);
          assert.equal(await sha256(dumped.stdout), guestSum, `${file} read by debugfs`);
        }
      });
    },
  });
}

Deno.test({
  name:
    "guest (legacy, worker engine): a disable-modern guest negotiates without VERSION_1; fio verify and ext4 pass",
  ignore: TOOLS.ignore,
  async fn() {
    await withDir(async (dir) => {
      const image = `${dir}/disk.img`;
      await sparseImage(image, 96 * MiB);
      const { server, socket, logs } = serve(dir, "blk", {
        backend: describeFile(image),
        engine: workerEngine(),
      });
      let boot;
      try {
        boot = await bootGuest({
          disks: [`vhost:${socket}`],
          run: ["info.sh", "fio_verify.sh", "check.sh"],
          legacy: true,
          env: { MB: "8" },
        });
      } finally {
        await server.close();
      }
      assert.equal(boot.rc, 0, boot.output);
      assert.equal(result(boot, "pci").device, "0x1001", "a legacy virtio-blk function");
      assert.equal(Number(result(boot, "disk").size_bytes), 96 * MiB);
      assert.equal(result(boot, "fio_verify").fio_verify, "PASS");
      assert.equal(result(boot, "check").check, "PASS");
      assert.deepEqual(logs, []);
      const fsck = await run("e2fsck", ["-fn", image]);
      assert.equal(fsck.code, 0, fsck.text);
    });
  },
});

Deno.test({
  name: "guest: ro is honoured (writes fail, image unchanged) and range= exposes only its window",
  ignore: TOOLS.ignore,
  async fn() {
    await withDir(async (dir) => {
      // vda: a read-only image with known content.
      const roImage = `${dir}/ro.img`;
      const roBytes = new Uint8Array(32 * MiB);
      for (let i = 0; i < roBytes.length; i += 512) roBytes[i] = (i / 512) & 0xff;
      await Deno.writeFile(roImage, roBytes);
      const roSum = await sha256(roBytes);
      // vdb: sectors [16384, +32768) (8 MiB to 24 MiB) of a 64 MiB image filled with 0x11.
      const rangeImage = `${dir}/range.img`;
      await Deno.writeFile(rangeImage, new Uint8Array(64 * MiB).fill(0x11));
      const window = { start: 16384, size: 32768 };

      const ro = serve(dir, "ro", { backend: describeFile(roImage, { readOnly: true }) });
      const ranged = serve(dir, "range", { backend: describeFile(rangeImage, { range: window }) });
      let boot;
      try {
        boot = await bootGuest({
          disks: [`vhost:${ro.socket}`, `vhost:${ranged.socket}`],
          run: ["info.sh", "ro_check.sh", "range_check.sh"],
          env: { RO_DEV: "/dev/vda", RANGE_DEV: "/dev/vdb" },
        });
      } finally {
        await ro.server.close();
        await ranged.server.close();
      }
      assert.equal(boot.rc, 0, boot.output);
      const disks = boot.results.filter((r) => "disk" in r);
      assert.deepEqual(
        disks.map((d) => [d.disk, Number(d.size_bytes), d.ro]),
        [["vda", 32 * MiB, "1"], ["vdb", 16 * MiB, "0"]],
      );
      const roCheck = result(boot, "ro_check");
      assert.equal(roCheck.ro_check, "PASS");
      assert.equal(roCheck.sha256, roSum, "the guest reads the image");
      assert.equal(await sha256(await Deno.readFile(roImage)), roSum, "the image is unchanged");

      const rangeCheck = result(boot, "range_check");
      assert.equal(rangeCheck.range_check, "PASS");
      assert.equal(rangeCheck.sha256, await sha256(new Uint8Array(16 * MiB).fill(0x5a)));
      const after = await Deno.readFile(rangeImage);
      assert.ok(
        after.subarray(0, 8 * MiB).every((b) => b === 0x11),
        "before the window: untouched",
      );
      assert.ok(after.subarray(8 * MiB, 24 * MiB).every((b) => b === 0x5a), "the window: written");
      assert.ok(after.subarray(24 * MiB).every((b) => b === 0x11), "after the window: untouched");
    });
  },
});

Deno.test({
  name:
    "guest: QEMU killed mid-I/O; the back end survives, drops the mappings and serves the next QEMU",
  ignore: TOOLS.ignore,
  async fn() {
    await withDir(async (dir) => {
      const image = `${dir}/disk.img`;
      await sparseImage(image, 96 * MiB);
      const { server, socket } = serve(dir, "blk", {
        backend: describeFile(image),
        engine: workerEngine(),
      });
      try {
        const pidfile = `${dir}/qemu.pid`;
        let killed = false;
        let mappedWhileRunning = 0;
        const first = await bootGuest({
          disks: [`vhost:${socket}`],
          run: ["load.sh"],
          env: { LOAD_SECONDS: "120" },
          pidfile,
          onLine: (line) => {
            if (!line.includes("load=started")) return;
            // Let fio get going, then kill QEMU with requests in flight.
            setTimeout(() => {
              mappedWhileRunning = guestMappings().length;
              Deno.kill(Number(Deno.readTextFileSync(pidfile).trim()), "SIGKILL");
              killed = true;
            }, 2000);
          },
        });
        assert.ok(killed, `QEMU was killed during the load:\n${first.output}`);
        assert.notEqual(first.rc, 0);
        assert.ok(mappedWhileRunning > 0, "guest memory was mapped while QEMU ran");
        await eventually(() => server.session === undefined, "the session ends at EOF");
        assert.deepEqual(guestMappings(), [], "the guest memory is unmapped");

        const second = await bootGuest({ disks: [`vhost:${socket}`], run: ["fio_verify.sh"] });
        assert.equal(second.rc, 0, second.output);
        assert.equal(result(second, "fio_verify").fio_verify, "PASS");
        assert.equal(server.connections, 2);
      } finally {
        await server.close();
      }
    });
  },
});

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `guest (modern, mq=2, ${io.name}): with num-queues=2 and -smp 2 the guest has two blk-mq queues, a fio verify job per CPU passes, and both queues carried requests`,
    ignore: TOOLS.ignore || io.skip.ignore,
    async fn() {
      await withDir(async (dir) => {
        const image = `${dir}/disk.img`;
        await sparseImage(image, 64 * MiB);
        const { server, socket, logs } = serve(dir, "blk", {
          backend: describeFile(image, { aio: io.name === "io_uring" ? "io_uring" : undefined }),
          engine: workerEngine(),
          queues: 2,
        });
        let boot;
        try {
          boot = await bootGuest({
            disks: [`vhost:${socket}`],
            run: ["mq.sh"],
            smp: 2,
            numQueues: 2,
          });
        } finally {
          await server.close();
        }
        assert.equal(boot.rc, 0, boot.output);
        const mq = result(boot, "mq_queues");
        assert.deepEqual([mq.mq_queues, mq.cpus], ["2", "2"], "/sys/block/vda/mq/ has 0 and 1");
        assert.equal(result(boot, "mq_fio").mq_fio, "PASS");
        // Each request queue has its own MSI-X vector: both raised interrupts.
        const queues = boot.results.filter((r) => "queue" in r);
        assert.deepEqual(queues.map((r) => r.queue).sort(), ["0", "1"], boot.output);
        for (const { queue, interrupts } of queues) {
          assert.ok(Number(interrupts) > 0, `queue ${queue} completed requests`);
        }
        assert.deepEqual(logs, [], "nothing refused");
      });
    },
  });
}

/** A guest run of discard_check.sh on a `discard` disk (vda) and a read-only one (vdb). */
async function discardGuest(
  dir: string,
  io: (typeof IO_VARIANTS)[number],
  legacy: boolean,
): Promise<{ image: string; roImage: string; roBytes: Uint8Array }> {
  const image = `${dir}/disk.img`;
  await sparseImage(image, 128 * MiB);
  const roImage = `${dir}/ro.img`;
  const roBytes = pattern(16 * MiB);
  await Deno.writeFile(roImage, roBytes);
  const aio = io.name === "io_uring" ? "io_uring" : "threads";
  // ACRN's bare `discard`: the whole disk per segment, one segment.
  const disk = serve(dir, "blk", {
    backend: describeFile(image, { aio }),
    engine: workerEngine(),
    discard: {},
  });
  const ro = serve(dir, "ro", {
    backend: describeFile(roImage, { readOnly: true, aio }),
    engine: workerEngine(),
    discard: {},
  });
  let boot;
  try {
    boot = await bootGuest({
      disks: [`vhost:${disk.socket}`, `vhost:${ro.socket}`],
      run: ["info.sh", "discard_check.sh"],
      legacy,
      env: { DEV: "/dev/vda", RO_DEV: "/dev/vdb" },
    });
  } finally {
    await disk.server.close();
    await ro.server.close();
  }
  assert.equal(boot.rc, 0, boot.output);
  const limits = result(boot, "discard_max_bytes");
  assert.equal(Number(limits.discard_max_bytes), 128 * MiB, "max_discard_sectors: the disk");
  assert.ok(Number(limits.write_zeroes_max_bytes) > 0, "WRITE_ZEROES offered");
  assert.equal(Number(limits.ro_discard_max_bytes), 0, "no DISCARD on a read-only disk");
  assert.equal(result(boot, "discard_check").discard_check, "PASS", boot.output);
  assert.deepEqual([...disk.logs, ...ro.logs], [], "nothing refused");
  return { image, roImage, roBytes };
}

/** Bytes with every 512-byte sector numbered, so a change anywhere shows. */
function pattern(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 512) bytes[i] = (i / 512) & 0xff;
  return bytes;
}

const discardSkip = skipWhen("the guest's fstrim and blkdiscard", fileSpaceUnavailable());
const discardRuns = [
  ...IO_VARIANTS.map((io) => ({ io, legacy: false })),
  { io: IO_VARIANTS[0], legacy: true },
];
for (const { io, legacy } of discardRuns) {
  Deno.test({
    name: `guest (${legacy ? "legacy" : "modern"}, ${io.name}): fstrim on ext4 frees the image's ` +
      "blocks, blkdiscard -z leaves zeros, blkdiscard on ro fails",
    ignore: TOOLS.ignore || io.skip.ignore || discardSkip.ignore,
    async fn() {
      await withDir(async (dir) => {
        const { image, roImage, roBytes } = await discardGuest(dir, io, legacy);
        // 64 MiB were written and deleted: without the trim they would still be allocated.
        const allocated = Deno.statSync(image).blocks! * 512;
        assert.ok(allocated < 32 * MiB, `${allocated} bytes still allocated after fstrim`);
        assert.equal(Deno.statSync(image).size, 128 * MiB, "the image keeps its size");
        const bytes = await Deno.readFile(image);
        assert.ok(bytes.subarray(96 * MiB, 97 * MiB).every((b) => b === 0), "zeroed on the host");
        assert.deepEqual(await Deno.readFile(roImage), roBytes, "the read-only image is unchanged");
      });
    },
  });
}
