/**
 * The NBD client against qemu-nbd (Debian qemu-utils), on a Unix socket
 * and on 127.0.0.1: what it reads is what the image holds, what it writes
 * lands in the image, many requests share one connection, a qcow2 image
 * reads as raw data (unallocated clusters as zeros, sent as holes), TRIM
 * and WRITE_ZEROES reach the file, and refusals are clear.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { VirtioBlkError } from "../../src/errors.ts";
import { ERRNO } from "../../src/io/errno.ts";
import { NbdClient } from "../../src/nbd/client.ts";
import { NbdRequestError } from "../../src/nbd/errors.ts";
import { NbdOp } from "../../src/nbd/operation.ts";
import type { ByteVector } from "../../src/nbd/scatter.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer, qcow2From } from "./nbd_server.ts";
import { firstDifference, pattern } from "./pattern.ts";

const skip = needsTools("qemu-nbd", "qemu-img");
const MiB = 1 << 20;

/** An image file of `bytes` of the pattern of `seed`, in the server's directory. */
function patternImage(bytes: number, seed: number): (dir: string) => string {
  return (dir) => {
    writeFileSync(`${dir}/disk.img`, pattern(0, bytes, seed));
    return `${dir}/disk.img`;
  };
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  assert.equal(at, -1, `${what}: first difference at byte ${at}`);
}

for (const transport of ["unix", "tcp"] as const) {
  Deno.test({
    name: `qemu-nbd over ${transport}: reads return the image's bytes, writes land in it`,
    ignore: skip.ignore,
    fn: async () => {
      await using server = await NbdServer.qemuNbd(patternImage(16 * MiB, 1), { transport });
      await using client = await NbdClient.connect(server.uri);
      const info = client.export;
      assert.equal(info.size, 16 * MiB);
      assert.equal(info.name, "disk");
      assert.equal(info.negotiation, "go");
      assert.ok(info.structuredReplies, "qemu-nbd agrees to structured replies");
      assert.ok(info.blockSizeAdvertised, "qemu-nbd answers NBD_INFO_BLOCK_SIZE");
      assert.ok(
        !info.readOnly && info.canFlush && info.canFua && info.canTrim && info.canWriteZeroes,
      );
      for (
        const [offset, length] of [[0, 512], [4096, 4096], [1000 * 512, 65536], [
          16 * MiB - 512,
          512,
        ], [0, 16 * MiB]]
      ) {
        const bytes = new Uint8Array(length);
        await client.read(offset, bytes);
        assertSame(bytes, pattern(offset, length, 1), `read of ${length} at ${offset}`);
      }
      await client.write(8192, pattern(8192, MiB, 2));
      await client.write(12 * MiB, pattern(12 * MiB, 4096, 3), { fua: true });
      await client.flush();
      const file = readFileSync(`${server.dir}/disk.img`);
      assertSame(file.subarray(8192, 8192 + MiB), pattern(8192, MiB, 2), "written range");
      assertSame(
        file.subarray(12 * MiB, 12 * MiB + 4096),
        pattern(12 * MiB, 4096, 3),
        "FUA write",
      );
      assertSame(file.subarray(0, 8192), pattern(0, 8192, 1), "bytes before the write");
      assertSame(
        file.subarray(8192 + MiB, 12 * MiB),
        pattern(8192 + MiB, 12 * MiB - 8192 - MiB, 1),
        "bytes after",
      );
    },
  });
}

Deno.test({
  name:
    "qemu-nbd: 64 requests in flight on one connection each complete once, by token, with their own data",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd(patternImage(8 * MiB, 4));
    const results = new Map<number, number>();
    const count = 64;
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    await using client = await NbdClient.connect(server.uri, {
      onComplete: (token, result) => {
        assert.ok(!results.has(token), `token ${token} completed twice`);
        results.set(token, result);
        if (results.size === count) allDone();
      },
    });
    // One shared buffer, as guest memory is: each request scatters into
    // two pieces of it, apart, so a misplaced byte shows.
    const memory = new Uint8Array(new SharedArrayBuffer(count * 3 * 8192));
    const requests: { offset: number; length: number; at: number }[] = [];
    for (let token = 0; token < count; token++) {
      const length = 4096 * (1 + (token % 3));
      const offset = ((token * 7919) % 2000) * 4096;
      const at = token * 3 * 8192;
      const half = length / 2;
      const vector: ByteVector = {
        count: 2,
        regions: [{ bytes: memory }, { bytes: memory }],
        offsets: [at, at + 2 * 8192],
        lengths: [half, half],
      };
      requests.push({ offset, length, at });
      client.submit({ op: NbdOp.READ, offset, length, vector }, token);
    }
    assert.equal(client.inFlight, count);
    await done;
    for (const [token, { offset, length, at }] of requests.entries()) {
      assert.equal(results.get(token), 0, `token ${token}`);
      const half = length / 2;
      assertSame(
        memory.subarray(at, at + half),
        pattern(offset, half, 4),
        `token ${token}, first piece`,
      );
      assertSame(
        memory.subarray(at + 2 * 8192, at + 2 * 8192 + half),
        pattern(offset + half, half, 4),
        `token ${token}, second piece`,
      );
    }
    assert.equal(client.inFlight, 0);

    // And writes from shared memory, gathered from two pieces each.
    results.clear();
    const written = new Promise<void>((resolve) => (allDone = resolve));
    for (const [token, { at, length }] of requests.entries()) {
      const half = length / 2;
      const offset = 4 * 1024 * 1024 + token * 12288;
      memory.set(pattern(offset, half, 12), at);
      memory.set(pattern(offset + half, half, 12), at + 2 * 8192);
      const vector: ByteVector = {
        count: 2,
        regions: [{ bytes: memory }, { bytes: memory }],
        offsets: [at, at + 2 * 8192],
        lengths: [half, half],
      };
      client.submit({ op: NbdOp.WRITE, offset, length, vector }, token);
    }
    await written;
    const file = readFileSync(`${server.dir}/disk.img`);
    for (const [token, { length }] of requests.entries()) {
      assert.equal(results.get(token), 0, `write ${token}`);
      const offset = 4 * 1024 * 1024 + token * 12288;
      assertSame(
        file.subarray(offset, offset + length),
        pattern(offset, length, 12),
        `write ${token}`,
      );
    }
  },
});

Deno.test({
  name:
    "qemu-nbd: a read of 40 MiB (more than its 32 MiB maximum payload) is split and comes back whole",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd(patternImage(40 * MiB, 5));
    await using client = await NbdClient.connect(server.uri);
    assert.equal(client.export.maximumPayload, 32 * MiB);
    const bytes = new Uint8Array(40 * MiB);
    await client.read(0, bytes);
    assertSame(bytes, pattern(0, 40 * MiB, 5), "40 MiB read");
    await client.write(0, pattern(0, 40 * MiB, 6));
    assertSame(readFileSync(`${server.dir}/disk.img`), pattern(0, 40 * MiB, 6), "40 MiB write");
  },
});

Deno.test({
  name:
    "qemu-nbd -f qcow2: a qcow2 image made with qemu-img reads as raw data, its unallocated clusters as zeros",
  ignore: skip.ignore,
  fn: async () => {
    // 8 MiB: data in the first and fifth MiB, zeros elsewhere (unallocated in the qcow2).
    const raw = new Uint8Array(8 * MiB);
    raw.set(pattern(0, MiB, 7), 0);
    raw.set(pattern(4 * MiB, MiB, 7), 4 * MiB);
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/source.raw`, raw);
      return qcow2From(`${dir}/source.raw`, `${dir}/disk.qcow2`);
    }, { format: "qcow2" });
    await using client = await NbdClient.connect(server.uri);
    assert.equal(client.export.size, 8 * MiB);
    // Memory that is not zero: holes must be written as zeros, not skipped.
    const bytes = new Uint8Array(8 * MiB).fill(0xee);
    await client.read(0, bytes);
    assertSame(bytes, raw, "qcow2 read as raw");

    // Written through the client, read back by qemu-img from the export.
    await client.write(2 * MiB, pattern(2 * MiB, MiB, 8));
    await client.flush();
    raw.set(pattern(2 * MiB, MiB, 8), 2 * MiB);
    execFileSync("qemu-img", [
      "convert",
      "-f",
      "raw",
      "-O",
      "raw",
      server.uri,
      `${server.dir}/out.raw`,
    ]);
    assertSame(readFileSync(`${server.dir}/out.raw`), raw, "qemu-img convert of the export");
  },
});

Deno.test({
  name:
    "qemu-nbd --discard=unmap: TRIM punches holes in its file; WRITE_ZEROES punches only without NO_HOLE",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd(patternImage(8 * MiB, 9), {
      args: ["--discard=unmap"],
    });
    const image = `${server.dir}/disk.img`;
    const blocks = () => statSync(image).blocks;
    await using client = await NbdClient.connect(server.uri);
    const full = blocks();
    assert.ok(full >= (8 * MiB) / 512, "the image starts fully allocated");

    await client.writeZeroes(0, 2 * MiB, { noHole: true });
    await client.flush();
    assert.equal(blocks(), full, "NO_HOLE kept every block");

    await client.writeZeroes(2 * MiB, 2 * MiB);
    await client.flush();
    assert.ok(
      blocks() <= full - (2 * MiB) / 512,
      `WRITE_ZEROES punched 2 MiB (${full} → ${blocks()})`,
    );

    const beforeTrim = blocks();
    await client.trim(6 * MiB, MiB);
    await client.flush();
    assert.ok(
      blocks() <= beforeTrim - MiB / 512,
      `TRIM punched 1 MiB (${beforeTrim} → ${blocks()})`,
    );

    const bytes = new Uint8Array(8 * MiB).fill(0xee);
    await client.read(0, bytes);
    assertSame(
      bytes.subarray(0, 4 * MiB),
      new Uint8Array(4 * MiB),
      "zeroed ranges read as zeros",
    );
    assertSame(
      bytes.subarray(4 * MiB, 6 * MiB),
      pattern(4 * MiB, 2 * MiB, 9),
      "bytes between kept",
    );
    assertSame(bytes.subarray(7 * MiB), pattern(7 * MiB, MiB, 9), "bytes after the trim kept");
  },
});

Deno.test({
  name:
    "qemu-nbd -r: a read-only export refuses writes, TRIM and WRITE_ZEROES with EROFS before sending them",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd(patternImage(MiB, 10), { args: ["-r"] });
    await using client = await NbdClient.connect(server.uri);
    assert.ok(client.export.readOnly);
    const attempts = [
      client.write(0, new Uint8Array(512)),
      client.trim(0, 512),
      client.writeZeroes(0, 512),
    ];
    for (const attempt of attempts) {
      await assert.rejects(attempt, (error: unknown) => {
        assert.ok(error instanceof NbdRequestError);
        assert.equal(error.errno, ERRNO.EROFS);
        assert.match(error.message, /the export is read-only/);
        return true;
      });
    }
    const bytes = new Uint8Array(MiB);
    await client.read(0, bytes);
    assertSame(bytes, pattern(0, MiB, 10), "read-only export still reads");
    assertSame(
      readFileSync(`${server.dir}/disk.img`),
      pattern(0, MiB, 10),
      "nothing was written",
    );
  },
});

Deno.test({
  name: "qemu-nbd: an export name it does not serve is refused with one line naming it",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd(patternImage(MiB, 11));
    const uri = server.uri.replace("///disk?", "///nosuch?");
    await assert.rejects(NbdClient.connect(uri), (error: unknown) => {
      assert.ok(error instanceof VirtioBlkError);
      assert.equal(error.code, "BAD_BACKING_FILE");
      assert.ok(
        error.message.startsWith(`${uri}: the server has no export "nosuch"`),
        error.message,
      );
      assert.match(error.message, /NBD_OPT_GO: NBD_REP_ERR_UNKNOWN/);
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  },
});
