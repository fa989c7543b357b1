/**
 * Multi-conn: a pool opens as many connections as asked when the export
 * offers NBD_FLAG_CAN_MULTI_CONN (nbdkit's memory plugin; qemu-nbd with
 * --shared above 1) and one otherwise (qemu-nbd --shared=1), the server sees that
 * many, data written on one is read on another, and a FLUSH on one covers
 * writes completed on the others.
 */

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { NbdClient } from "../../src/nbd/client.ts";
import { connectionCount, NbdPool } from "../../src/nbd/pool.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer } from "./nbd_server.ts";
import { pattern } from "./pattern.ts";

const skip = needsTools("nbdkit", "qemu-nbd");
const KiB = 1024;

/** The connection numbers nbdkit's log filter recorded. */
function connections(log: string): Set<number> {
  return new Set(
    [...readFileSync(log, "utf8").matchAll(/connection=(\d+) Connect/g)].map((m) => Number(m[1])),
  );
}

Deno.test({
  name: "multi-conn offered (nbdkit memory): 4 connections, shared data, requests spread over all",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit((
      dir,
    ) => ["--filter=log", "memory", "4M", `logfile=${dir}/log`]);
    await using pool = await NbdPool.open(server.uri, 4);
    assert.equal(pool.clients.length, 4);
    assert.ok(pool.export.canMultiConn);
    assert.deepEqual(
      connections(`${server.dir}/log`),
      new Set([1, 2, 3, 4]),
      "the server saw four",
    );
    // Each thread its own connection: write on one, flush on another, read on a third.
    await Promise.all(
      [0, 1, 2, 3].map((i) =>
        pool.client(i).write(i * 64 * KiB, pattern(i * 64 * KiB, 64 * KiB, 1))
      ),
    );
    await pool.client(1).flush();
    const bytes = new Uint8Array(256 * KiB);
    await pool.client(2).read(0, bytes);
    assert.deepEqual(bytes, pattern(0, 256 * KiB, 1));
    assert.equal(pool.client(5), pool.clients[1], "threads beyond the connections share them");
    const log = readFileSync(`${server.dir}/log`, "utf8");
    for (const connection of [1, 2, 3, 4]) {
      assert.match(
        log,
        new RegExp(`connection=${connection} Write`),
        `connection ${connection} wrote`,
      );
    }
  },
});

Deno.test({
  name: "multi-conn not offered (qemu-nbd --shared=1): one connection, whatever is asked",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/disk.img`, new Uint8Array(1 << 20));
      return `${dir}/disk.img`;
    }, { shared: 1 });
    await using pool = await NbdPool.open(server.uri, 4);
    assert.equal(pool.export.canMultiConn, false);
    assert.equal(pool.clients.length, 1);
    assert.equal(connectionCount(pool.export, 4), 1);
    assert.equal(pool.client(3), pool.clients[0]);
    await pool.client(3).write(0, pattern(0, 4 * KiB, 2));
  },
});

Deno.test({
  name: "multi-conn offered by qemu-nbd (--shared=8, read-only): one connection per thread",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/disk.img`, pattern(0, 1 << 20, 3));
      return `${dir}/disk.img`;
    }, { args: ["-r"] });
    await using pool = await NbdPool.open(server.uri, 3);
    assert.ok(pool.export.canMultiConn && pool.export.readOnly);
    assert.equal(pool.clients.length, 3);
    const reads = pool.clients.map(async (client, i) => {
      const bytes = new Uint8Array(4 * KiB);
      await client.read(i * 4 * KiB, bytes);
      assert.deepEqual(bytes, pattern(i * 4 * KiB, 4 * KiB, 3));
    });
    await Promise.all(reads);
  },
});

Deno.test({
  name: "a connection for another thread must find the same export (expect)",
  ignore: skip.ignore,
  fn: async () => {
    await using small = await NbdServer.nbdkit(() => ["memory", "1M"]);
    await using large = await NbdServer.nbdkit(() => ["memory", "2M"]);
    const first = await NbdClient.connect(small.uri);
    try {
      // The export's description is plain data: what a worker thread receives.
      const expect = structuredClone(first.export);
      const second = await NbdClient.connect(small.uri, { expect });
      await second.close();
      await assert.rejects(
        NbdClient.connect(large.uri, { expect }),
        /not the export the other connections have: the export size changed from 1048576 to 2097152 bytes/,
      );
    } finally {
      await first.close();
    }
  },
});
