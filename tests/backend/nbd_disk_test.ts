/**
 * A disk on an NBD server, through the whole device, with each engine: the
 * in-process one and the blockif worker threads (worker and device-model
 * dispatch). Against nbdkit and qemu-nbd started by the tests: what the
 * guest writes is what the server holds (read back by `qemu-img convert`
 * of the export), a read-only export makes a read-only device, one
 * connection per thread when the server offers multi-conn and one in all
 * when it does not, and a server that dies or stops answering gives IOERR
 * statuses (never a hang) after which the device serves again once the
 * server is back, without losing an acknowledged write.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { describeNbd, type NbdOptions } from "../../src/backend/nbd_spec.ts";
import type { DiscardOptions } from "../../src/blk/device.ts";
import type { EngineFactory } from "../../src/blk/engine.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { main } from "../../src/cli/main.ts";
import { RangeFlag, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { RequestFailed } from "../../src/guest/virtio_blk_driver.ts";
import { type Harness, harness, MiB, pattern } from "../helpers/harness.ts";
import { sendRanges } from "../helpers/range_request.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer, qcow2From } from "../nbd/nbd_server.ts";

const qemuNbd = needsTools("qemu-nbd", "qemu-img");
const nbdkit = needsTools("nbdkit");

/** The engines a disk runs on. */
const ENGINES: readonly { name: string; engine: () => EngineFactory }[] = [
  { name: "in-process engine", engine: () => (context) => new InlineEngine(context) },
  { name: "worker threads", engine: () => workerEngine({ workers: 3 }) },
  { name: "device dispatch", engine: () => workerEngine({ workers: 2, dispatch: "device" }) },
];

/** A device over the export `uri` names, on `engine`, and its guest driver. */
async function nbdDisk(
  uri: string,
  engine: EngineFactory,
  options: NbdOptions = {},
  discard?: DiscardOptions,
): Promise<Harness> {
  const backend = await describeNbd(uri, options);
  const h = harness({ diskBytes: 512, device: { backend, engine, discard } });
  await h.disk.device.ready();
  return h;
}

/** A zeroed raw image of `bytes`, in the server's directory. */
function rawImage(bytes: number): (dir: string) => string {
  return (dir) => {
    writeFileSync(`${dir}/disk.img`, new Uint8Array(bytes));
    return `${dir}/disk.img`;
  };
}

/** Whether `promise` rejects with the IOERR status. */
async function assertIoErr(promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof RequestFailed, `${what}: ${error}`);
    assert.equal(error.status, 1, `${what}: IOERR`);
    return true;
  });
}

/** The export's bytes as `qemu-img convert` reads them over NBD. */
function convertExport(uri: string, dir: string): Uint8Array {
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "raw", uri, `${dir}/out.raw`]);
  return new Uint8Array(readFileSync(`${dir}/out.raw`));
}

for (const { name, engine } of ENGINES) {
  Deno.test({
    name: `NBD disk (${name}, qemu-nbd serving qcow2): what the guest writes, the export holds`,
    ignore: qemuNbd.ignore,
    fn: async () => {
      await using server = await NbdServer.qemuNbd((dir) => {
        execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", `${dir}/disk.qcow2`, "8M"]);
        return `${dir}/disk.qcow2`;
      }, { format: "qcow2" });
      const h = await nbdDisk(server.uri, engine());
      try {
        assert.equal(h.driver.info.capacity, 8 * MiB / 512);
        assert.equal(h.driver.info.readOnly, false);
        const writes: [number, Uint8Array][] = [
          [0, pattern(4096, 1)],
          [2048, pattern(65536, 2)],
          [8 * MiB / 512 - 8, pattern(4096, 3)],
        ];
        await Promise.all(writes.map(([sector, data]) => h.driver.write(sector, data)));
        await h.driver.flush();
        for (const [sector, data] of writes) {
          assert.deepEqual(await h.driver.read(sector, data.length), data);
        }
        // Never written: a qcow2 hole reads as zeros.
        assert.deepEqual(await h.driver.read(4096, 4096), new Uint8Array(4096));
      } finally {
        await h.close();
      }
      const exported = convertExport(server.uri, server.dir);
      for (const [sector, data] of [[0, pattern(4096, 1)], [2048, pattern(65536, 2)]] as const) {
        assert.deepEqual(exported.subarray(sector * 512, sector * 512 + data.length), data);
      }
    },
  });

  Deno.test({
    name: `NBD disk (${name}, qemu-nbd --discard=unmap): DISCARD punches holes in the server's ` +
      `file, WRITE_ZEROES zeros`,
    ignore: qemuNbd.ignore,
    fn: async () => {
      const bytes = 4 * MiB;
      await using server = await NbdServer.qemuNbd((dir) => {
        writeFileSync(`${dir}/disk.img`, pattern(bytes, 9));
        return `${dir}/disk.img`;
      }, { args: ["--discard=unmap"] });
      const image = `${server.dir}/disk.img`;
      const h = await nbdDisk(server.uri, engine(), {}, { maxSegments: 4 });
      try {
        const before = statSync(image).blocks;
        // Two ranges of 1 MiB each in one DISCARD: two NBD_CMD_TRIMs.
        const discarded = await sendRanges(h, RequestType.DISCARD, [[0, 2048], [4096, 2048]]);
        assert.equal(discarded, RequestStatus.OK);
        assert.ok(
          statSync(image).blocks <= before - 2 * 2048 + 64,
          `blocks ${before} → ${statSync(image).blocks}: the ranges were given back`,
        );
        // Zeros without unmap (NO_HOLE), and with it.
        assert.equal(
          await sendRanges(h, RequestType.WRITE_ZEROES, [[2048, 8], [3000, 8, RangeFlag.UNMAP]]),
          RequestStatus.OK,
        );
        assert.deepEqual(await h.driver.read(2048, 4096), new Uint8Array(4096));
        assert.deepEqual(await h.driver.read(3000, 4096), new Uint8Array(4096));
        // What no range covered is untouched.
        const file = new Uint8Array(readFileSync(image));
        assert.deepEqual(
          file.subarray(2056 * 512, 3000 * 512),
          pattern(bytes, 9).subarray(
            2056 * 512,
            3000 * 512,
          ),
        );
        // A range outside the disk: IOERR, nothing sent.
        assert.equal(
          await sendRanges(h, RequestType.DISCARD, [[8192 - 8, 16]]),
          RequestStatus.IOERR,
        );
      } finally {
        await h.close();
      }
    },
  });

  Deno.test({
    name: `NBD disk (${name}, nbdkit memory over TCP): write-through writes, reads, flush`,
    ignore: nbdkit.ignore,
    fn: async () => {
      await using server = await NbdServer.nbdkit(() => ["memory", "4M"], { transport: "tcp" });
      const h = await nbdDisk(server.uri, engine());
      try {
        assert.equal(h.driver.info.capacity, 4 * MiB / 512);
        const data = pattern(128 * 1024, 7);
        await h.driver.write(100, data);
        await h.driver.flush();
        assert.deepEqual(await h.driver.read(100, data.length), data);
        assert.deepEqual(await h.driver.read(0, 512), new Uint8Array(512));
      } finally {
        await h.close();
      }
    },
  });

  Deno.test({
    name: `NBD disk (${name}): a read-only export makes a read-only device`,
    ignore: nbdkit.ignore,
    fn: async () => {
      await using server = await NbdServer.nbdkit(() => ["-r", "pattern", "1M"]);
      const h = await nbdDisk(server.uri, engine());
      try {
        assert.equal(h.driver.info.readOnly, true, "VIRTIO_BLK_F_RO offered");
        await assertIoErr(h.driver.write(0, new Uint8Array(512)), "a write");
        // nbdkit's pattern plugin: each 8-byte word holds its own offset, big-endian.
        const block = await h.driver.read(1, 512);
        assert.equal(new DataView(block.buffer, block.byteOffset).getBigUint64(8), 520n);
      } finally {
        await h.close();
      }
    },
  });

  Deno.test({
    name: `NBD disk (${name}): a server killed mid-load gives IOERR, then serves once restarted`,
    ignore: qemuNbd.ignore,
    fn: async () => {
      await using server = await NbdServer.qemuNbd(rawImage(4 * MiB));
      const h = await nbdDisk(server.uri, engine(), {
        connection: { reconnectDelayMs: 20, maxReconnectDelayMs: 200 },
      });
      try {
        const acknowledged = pattern(8192, 11);
        await h.driver.write(64, acknowledged);
        // Frozen, the server holds the load's writes without answering; killed, it never will.
        server.pause();
        const load = Promise.allSettled(Array.from(
          { length: 16 },
          (_, i) => h.driver.write(1024 + 16 * i, pattern(8192, 20 + i)),
        ));
        await server.stop();
        const results = await load;
        for (const result of results) {
          if (result.status === "rejected") {
            assert.ok(result.reason instanceof RequestFailed, String(result.reason));
            assert.equal(result.reason.status, 1, "IOERR");
          }
        }
        assert.ok(results.some((r) => r.status === "rejected"), "the lost writes failed");
        await server.start();
        const later = pattern(4096, 12);
        await h.driver.write(3000, later);
        await h.driver.flush();
        assert.deepEqual(await h.driver.read(3000, 4096), later);
        assert.deepEqual(await h.driver.read(64, 8192), acknowledged);
        // What was acknowledged is in the server's file (raw: the export's bytes).
        const file = new Uint8Array(readFileSync(`${server.dir}/disk.img`));
        assert.deepEqual(file.subarray(64 * 512, 64 * 512 + 8192), acknowledged);
        assert.deepEqual(file.subarray(3000 * 512, 3000 * 512 + 4096), later);
      } finally {
        await h.close();
      }
    },
  });

  Deno.test({
    name: `NBD disk (${name}): a server that stops answering gives IOERR, then the device serves`,
    ignore: qemuNbd.ignore,
    fn: async () => {
      await using server = await NbdServer.qemuNbd(rawImage(4 * MiB));
      const h = await nbdDisk(server.uri, engine(), {
        connection: {
          requestTimeoutMs: 500,
          connectTimeoutMs: 500,
          reconnectDelayMs: 20,
          maxReconnectDelayMs: 200,
        },
      });
      try {
        await h.driver.write(8, pattern(4096, 1));
        server.pause();
        await assertIoErr(h.driver.read(8, 4096), "a read the server never answers");
        await assertIoErr(h.driver.write(16, pattern(4096, 2)), "a write it never answers");
        server.resume();
        // The stuck connection was dropped; a new one serves (the first
        // attempts may still meet the old timeout, so try until one is through).
        let read: Uint8Array | undefined;
        for (let attempt = 0; read === undefined && attempt < 20; attempt++) {
          read = await h.driver.read(8, 4096).catch(() => undefined);
        }
        assert.deepEqual(read, pattern(4096, 1));
        const data = pattern(4096, 3);
        await h.driver.write(200, data);
        assert.deepEqual(await h.driver.read(200, 4096), data);
      } finally {
        await h.close();
      }
    },
  });
}

/** How many of nbdkit's connections carried writes, from its log filter's file. */
function writingConnections(log: string): number {
  const ids = new Set<string>();
  for (const match of log.matchAll(/connection=(\d+) Write /g)) ids.add(match[1]);
  return ids.size;
}

Deno.test({
  name: "NBD disk: one connection per worker thread when the server offers multi-conn",
  ignore: nbdkit.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit((dir) => [
      "--filter=log",
      "memory",
      "4M",
      `logfile=${dir}/log`,
    ]);
    const h = await nbdDisk(server.uri, workerEngine({ workers: 3 }));
    try {
      // Enough writes at once that every thread takes some.
      for (let round = 0; round < 8; round++) {
        await Promise.all(
          Array.from({ length: 24 }, (_, i) => h.driver.write(i * 64, pattern(4096, round + i))),
        );
      }
    } finally {
      await h.close();
    }
    const count = writingConnections(readFileSync(`${server.dir}/log`, "utf8"));
    assert.ok(count > 1, `writes went over ${count} connection(s)`);
  },
});

Deno.test({
  name: "NBD disk: without multi-conn one connection serves every worker thread",
  ignore: qemuNbd.ignore,
  fn: async () => {
    // One client at a time: a second connection would wait for the first to end.
    await using server = await NbdServer.qemuNbd(rawImage(1 * MiB), { shared: 1 });
    const h = await nbdDisk(server.uri, workerEngine({ workers: 3 }));
    try {
      const writes = Array.from({ length: 24 }, (_, i) => [i * 8, pattern(4096, i)] as const);
      await Promise.all(writes.map(([sector, data]) => h.driver.write(sector, data)));
      for (const [sector, data] of writes) {
        assert.deepEqual(await h.driver.read(sector, 4096), data);
      }
    } finally {
      await h.close();
    }
  },
});

Deno.test({
  name: "NBD disk: ext4 in a qcow2 image through qemu-nbd shows its label in the listing",
  ignore: needsTools("qemu-nbd", "qemu-img", "mkfs.ext4").ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/fs.img`, new Uint8Array(0));
      execFileSync("truncate", ["-s", "16M", `${dir}/fs.img`]);
      execFileSync("mkfs.ext4", ["-q", "-L", "overnbd", `${dir}/fs.img`]);
      return qcow2From(`${dir}/fs.img`, `${dir}/fs.qcow2`);
    }, { format: "qcow2" });
    let stdout = "", stderr = "";
    const status = await main(["-s", `9,virtio-blk,${server.uri},ro`, "--json"], {
      stdout: (text) => (stdout += text),
      stderr: (text) => (stderr += text),
    });
    assert.equal(status, 0, stderr);
    const [disk] = JSON.parse(stdout).blockdevices;
    assert.equal(disk.fstype, "ext4");
    assert.equal(disk.label, "overnbd");
    assert.equal(disk.size, 16 * MiB);
    assert.equal(disk.ro, true);
  },
});
