/**
 * QMP on the built-in machine, with the disks the command line makes from
 * `-s` options and the built-in guest in its vCPU Worker: `block_resize`
 * reaches the running guest's driver as a configuration-change interrupt
 * (its `watch` job reports the new capacity), the file changes size, and a
 * `range=` window, a read-only file and a block device are refused; a
 * `nodisk` drive is listed with no medium until `blockdev-change-medium`
 * inserts one, and then carries a verified load.
 */

import assert from "node:assert/strict";
import { machineDrives } from "../../src/cli/qmp_drives.ts";
import { diskConfig, parseSlotSpec, type SlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import type { UosJob, UosResult } from "../../src/guest/uos.ts";
import { QmpServer } from "../../src/qmp/server.ts";
import { StopFlag } from "../../src/sync/stop_flag.ts";
import { LoopDevice, loopDevicesUnavailable } from "../backend/file_fixtures.ts";
import { QmpClient } from "../helpers/qmp_client.ts";
import { skipWhen } from "../helpers/skip.ts";

const MiB = 1 << 20;
const guest = new URL("../../src/guest/uos_worker.ts", import.meta.url);

/** A machine of `-s` options with a QMP server on it. */
interface Machine {
  readonly vm: VirtualMachine;
  readonly qmp: QmpServer;
  readonly path: string;
  /** Lines the guest printed so far. */
  readonly output: string[];
  /** Runs a job in the guest, its lines going to `output`. */
  run(job: UosJob): Promise<UosResult>;
  /**
   * Runs the guest's `watch` job while `body` runs: `body` starts once the
   * watch listed the disks (from then on it reports every change), and the
   * watch ends after `body` (or at QMP `quit`). Returns the watch's lines.
   */
  watch(body: () => Promise<void>): Promise<string[]>;
}

async function withMachine(
  dir: string,
  slots: readonly string[],
  body: (machine: Machine) => Promise<void>,
): Promise<void> {
  const specs: SlotSpec[] = slots.map(parseSlotSpec);
  const vm = await VirtualMachine.create({
    memoryBytes: 64 * MiB,
    disks: await Promise.all(specs.map(diskConfig)),
  });
  // quit stops the running watch, as it stops the command line's run.
  let watching = new StopFlag();
  const path = `${dir}/qmp.sock`;
  const qmp = await QmpServer.listen({
    path,
    drives: machineDrives(specs, vm.disks.map((disk) => disk.function.device)),
    onQuit: () => watching.request(),
    log: () => {},
  });
  const output: string[] = [];
  let listeners: (() => void)[] = [];
  const run = async (job: UosJob) =>
    await vm.runVcpu(guest, job, (stream, text) => {
      if (stream !== "stdout") return;
      output.push(...text.split("\n"));
      for (const listener of listeners.splice(0)) listener();
    }) as UosResult;
  /** Resolves at a line matching `pattern` from `from` on; rejects if `job` ends first. */
  async function printed(pattern: RegExp, from: number, job: Promise<UosResult>): Promise<void> {
    let ended = false;
    void job.finally(() => {
      ended = true;
      for (const listener of listeners.splice(0)) listener();
    }).catch(() => {});
    for (;;) {
      if (output.slice(from).some((line) => pattern.test(line))) return;
      if (ended) throw new Error(`the guest job ended without ${pattern}:\n${output.join("\n")}`);
      await new Promise<void>((resolve) => (listeners = [...listeners, resolve]));
    }
  }
  const machine: Machine = {
    vm,
    qmp,
    path,
    output,
    run,
    async watch(body) {
      const stop = watching = new StopFlag();
      const from = output.length;
      const job = run({ kind: "watch", json: false, stop: stop.buffer });
      try {
        await printed(/^NAME /, from, job);
        await body();
      } finally {
        stop.request();
      }
      assert.equal((await job).exitCode, 0);
      return output.slice(from);
    },
  };
  try {
    await body(machine);
  } finally {
    watching.request();
    await qmp.close();
    await vm.close();
  }
}

/** The capacity changes among a watch's lines. */
function changes(lines: readonly string[]): string[] {
  return lines.filter((line) => line.includes("detected capacity change"));
}

/** The last listing line of `disk` among a watch's lines. */
function lastListed(lines: readonly string[], disk: string): string | undefined {
  return lines.findLast((line) => line.startsWith(`${disk} `));
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "machine-qmp-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function image(path: string, bytes: number, fill = 0): string {
  Deno.writeFileSync(path, new Uint8Array(bytes).fill(fill));
  return path;
}

Deno.test("qmp on the built-in machine: block_resize reaches the running guest as a config interrupt with the new capacity; range=, ro are refused", async () => {
  await withDir(async (dir) => {
    const disk = image(`${dir}/disk.img`, 32 * MiB);
    const ro = image(`${dir}/ro.img`, 4 * MiB, 0x11);
    const windowed = image(`${dir}/window.img`, 8 * MiB, 0x22);
    await withMachine(dir, [
      `9,virtio-blk,${disk}`,
      `10,virtio-blk,${ro},ro`,
      `11,virtio-blk,${windowed},range=2048/4096`,
    ], async (m) => {
      const client = await QmpClient.connect(m.path, { negotiate: true });
      try {
        const grown = await m.watch(async () => {
          assert.deepEqual(
            await client.command("block_resize", { device: "virtio0", size: 48 * MiB }),
            { return: {} },
          );
          assert.equal(Deno.statSync(disk).size, 48 * MiB, "the file grew");
        });
        assert.match(lastListed(grown.slice(0, 2), "vda") ?? "", /^vda\s+9\s+32M /);
        assert.deepEqual(changes(grown), [
          "vda: detected capacity change from 65536 to 98304 (48M)",
        ], grown.join("\n"));
        assert.match(lastListed(grown, "vda") ?? "", /^vda\s+9\s+48M /);

        // quit stops the watch, as it stops the command line's run.
        const shrunk = await m.watch(async () => {
          assert.deepEqual(
            await client.command("block_resize", { "node-name": "vda", size: 16 * MiB }),
            { return: {} },
          );
          assert.equal(Deno.statSync(disk).size, 16 * MiB, "the file shrank");
          assert.deepEqual(await client.command("quit"), { return: {} });
        });
        assert.deepEqual(changes(shrunk), [
          "vda: detected capacity change from 98304 to 32768 (16M)",
        ], shrunk.join("\n"));

        const refused = [
          [{ device: "virtio1", size: 8 * MiB }, /is read-only \(ro\)/],
          [{ device: "virtio2", size: 8 * MiB }, /is a range= window of its file/],
          [{ "node-name": "vdc", size: 2 * MiB }, /is a range= window of its file/],
        ] as const;
        for (const [args, desc] of refused) {
          const reply = await client.command("block_resize", args);
          assert.equal(reply.error?.class, "GenericError", JSON.stringify(reply));
          assert.match(reply.error.desc, desc);
        }
        assert.equal(Deno.statSync(ro).size, 4 * MiB);
        assert.equal(Deno.statSync(windowed).size, 8 * MiB);
        assert.deepEqual(
          m.vm.disks.map((d) => d.function.device.capacity),
          [16 * MiB / 512, 4 * MiB / 512, 4096],
        );
      } finally {
        client.close();
      }
    });
  });
});

const noLoop = loopDevicesUnavailable();
skipWhen("the block-device block_resize test", noLoop);

Deno.test({
  name: "qmp on the built-in machine: block_resize refuses a block device (its size is its own)",
  ignore: noLoop !== undefined,
  async fn() {
    await withDir(async (dir) => {
      using loop = new LoopDevice(image(`${dir}/backing.img`, 4 * MiB));
      await withMachine(dir, [`9,virtio-blk,${loop.path}`], async (m) => {
        const client = await QmpClient.connect(m.path, { negotiate: true });
        try {
          const reply = await client.command("block_resize", { device: "virtio0", size: 8 * MiB });
          assert.equal(reply.error?.class, "GenericError", JSON.stringify(reply));
          assert.match(reply.error.desc, /is a block device: its size is the device's own/);
          assert.equal(m.vm.disks[0].function.device.capacity, 4 * MiB / 512);
          assert.equal(Deno.statSync(`${dir}/backing.img`).size, 4 * MiB);
        } finally {
          client.close();
        }
      });
    });
  },
});

Deno.test("qmp on the built-in machine: nodisk is a disk with no medium until blockdev-change-medium inserts one; then a verified load runs on it", async () => {
  await withDir(async (dir) => {
    const medium = image(`${dir}/medium.img`, 16 * MiB);
    const other = image(`${dir}/other.img`, MiB);
    await withMachine(dir, ["9,virtio-blk,nodisk", `10,virtio-blk,${other}`], async (m) => {
      const listed = await m.run({ kind: "lsblk", json: true });
      assert.equal(listed.exitCode, 0);
      const before = JSON.parse(m.output.join("\n")).blockdevices;
      assert.deepEqual(
        before.map((d: { name: string; size: number; type: string; notes: string[] }) => [
          d.name,
          d.type,
          d.size,
          d.notes,
        ]),
        [["vda", "disk", 0, ["no medium"]], ["vdb", "disk", MiB, []]],
      );
      m.output.length = 0;

      const client = await QmpClient.connect(m.path, { negotiate: true });
      try {
        // The guest is running while the medium goes in: its driver hears of it.
        const inserted = await m.watch(async () => {
          // A file another drive writes to cannot go in too.
          const shared = await client.command("blockdev-change-medium", {
            device: "virtio0",
            filename: other,
          });
          assert.match(shared.error?.desc ?? "", /is in use by -s 10,virtio-blk,/);
          assert.deepEqual(
            await client.command("blockdev-change-medium", { device: "virtio0", filename: medium }),
            { return: {} },
          );
        });
        assert.match(lastListed(inserted.slice(0, 3), "vda") ?? "", /^vda\s+9\s+0B .* no medium$/);
        assert.deepEqual(changes(inserted), [
          "vda: detected capacity change from 0 to 32768 (16M)",
        ], inserted.join("\n"));
        assert.match(lastListed(inserted, "vda") ?? "", /^vda\s+9\s+16M .* no signature$/);

        const load = await m.run({
          kind: "load",
          disk: "vda",
          options: parseLoadOptions({ rw: "randwrite", bs: "4k", iodepth: "8", verify: "crc32c" }),
          json: false,
          progress: false,
        });
        assert.equal(load.exitCode, 0, m.output.join("\n"));
        assert.equal(load.load?.errorCount, 0);
        assert.equal(load.load?.verify?.mismatches, 0);
        assert.ok((load.load?.write.bytes ?? 0) >= 16 * MiB, "the whole medium was written");

        assert.deepEqual(await client.command("eject", { device: "virtio0" }), { return: {} });
        const from = m.output.length;
        await m.run({ kind: "lsblk", json: false });
        assert.match(lastListed(m.output.slice(from), "vda") ?? "", /^vda\s+9\s+0B .* no medium$/);
      } finally {
        client.close();
      }
    });
  });
});
