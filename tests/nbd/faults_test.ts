/**
 * Faults: a server killed in the middle of a load (qemu-nbd, SIGKILL, on
 * 127.0.0.1): writes in flight fail instead of hanging, the client
 * reconnects with back-off once the server is back, the load goes on, and
 * no acknowledged write is lost (the image holds every one). Requests that
 * find no connection fail within their timeout, naming why; and a server
 * that comes back with another export is not used until the right one
 * is back.
 */

import assert from "node:assert/strict";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { ERRNO } from "../../src/io/errno.ts";
import { NbdClient } from "../../src/nbd/client.ts";
import { NbdRequestError } from "../../src/nbd/errors.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer } from "./nbd_server.ts";
import { firstDifference, pattern } from "./pattern.ts";

const skip = needsTools("qemu-nbd");
const BLOCK = 4096;
const BLOCKS = 4096; // 16 MiB

Deno.test({
  name:
    "a server killed mid-load: in-flight writes fail, the client reconnects, no acknowledged write is lost",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/disk.img`, new Uint8Array(BLOCK * BLOCKS));
      return `${dir}/disk.img`;
    }, { transport: "tcp" });
    const lines: string[] = [];
    const client = await NbdClient.connect(server.uri, {
      requestTimeoutMs: 5000,
      reconnectDelayMs: 20,
      maxReconnectDelayMs: 200,
      log: (line) => lines.push(line),
    });
    const acknowledged: number[] = [];
    const failures: NbdRequestError[] = [];
    let next = 0;
    let killed = false;
    let down = false;
    let restarted = false;
    let afterRestart = 0;
    try {
      // 16 writers, each writing the next unwritten block with its own data, until
      // 100 writes were acknowledged after the restart.
      const writer = async () => {
        while (afterRestart < 100 && next < BLOCKS) {
          const block = next++;
          try {
            await client.write(block * BLOCK, pattern(block * BLOCK, BLOCK, block));
            acknowledged.push(block);
            if (restarted) afterRestart++;
          } catch (error) {
            assert.ok(error instanceof NbdRequestError, String(error));
            failures.push(error);
          }
          if (!killed && acknowledged.length === 200) {
            killed = true;
            await server.stop("SIGKILL");
            down = true;
          }
          if (down && !restarted && failures.length > 0) {
            restarted = true;
            await server.start();
          }
        }
      };
      await Promise.all(Array.from({ length: 16 }, writer));
      assert.ok(
        killed && restarted && afterRestart >= 100,
        `load ran past the restart (${afterRestart})`,
      );
      assert.ok(failures.length > 0, "some writes failed while the server was gone");
      for (const failure of failures) {
        assert.ok(
          ([ERRNO.ECONNRESET, ERRNO.ETIMEDOUT] as number[]).includes(failure.errno),
          `failed with ${failure.message}`,
        );
      }
      assert.ok(client.reconnects >= 1);
      assert.ok(
        lines.some((line) => /connection lost: .*; reconnecting/.test(line)),
        lines.join("\n"),
      );
      assert.ok(lines.some((line) => /reconnected/.test(line)), lines.join("\n"));
      await client.flush();
      // Every acknowledged write is in the image, and reads back through the client.
      const image = readFileSync(`${server.dir}/disk.img`);
      const readBack = new Uint8Array(BLOCK);
      for (const block of acknowledged) {
        const expected = pattern(block * BLOCK, BLOCK, block);
        const at = firstDifference(image.subarray(block * BLOCK, (block + 1) * BLOCK), expected);
        assert.equal(at, -1, `acknowledged block ${block} lost (image differs at byte ${at})`);
        await client.read(block * BLOCK, readBack);
        assert.deepEqual(readBack, expected, `block ${block} through the client`);
      }
    } finally {
      await client.close();
    }
  },
});

Deno.test({
  name: "no server to reconnect to: requests fail with ETIMEDOUT within their timeout, naming why",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/disk.img`, new Uint8Array(1 << 20));
      return `${dir}/disk.img`;
    });
    await using client = await NbdClient.connect(server.uri, {
      requestTimeoutMs: 300,
      reconnectDelayMs: 20,
    });
    await server.stop();
    await assert.rejects(client.read(0, new Uint8Array(512)), (error: unknown) => {
      assert.ok(error instanceof NbdRequestError);
      assert.ok(
        ([ERRNO.ECONNRESET, ERRNO.ETIMEDOUT] as number[]).includes(error.errno),
        error.message,
      );
      return true;
    });
    await assert.rejects(client.read(0, new Uint8Array(512)), (error: unknown) => {
      assert.ok(error instanceof NbdRequestError);
      assert.equal(error.errno, ERRNO.ETIMEDOUT);
      assert.match(
        error.message,
        /read of 512 bytes at 0 failed: ETIMEDOUT \(not sent within 300 ms: no connection to the server \(.*cannot connect: .*(ENOENT|ECONNREFUSED)/,
      );
      return true;
    });
    assert.equal(client.connected, false);
  },
});

Deno.test({
  name:
    "a server back with another export (resized) is not used; the client waits for the right one",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.qemuNbd((dir) => {
      writeFileSync(`${dir}/disk.img`, pattern(0, 1 << 20, 1));
      return `${dir}/disk.img`;
    });
    const image = `${server.dir}/disk.img`;
    const lines: string[] = [];
    await using client = await NbdClient.connect(server.uri, {
      requestTimeoutMs: 300,
      reconnectDelayMs: 10,
      maxReconnectDelayMs: 50,
      log: (line) => lines.push(line),
    });
    await server.stop();
    truncateSync(image, 2 << 20);
    await server.start();
    const refusedLine = /the export size changed from 1048576 to 2097152 bytes/;
    // Requests wait for a usable connection and fail within their timeout.
    await assert.rejects(client.read(0, new Uint8Array(512)), /ETIMEDOUT|ECONNRESET/);
    while (!lines.some((line) => refusedLine.test(line))) {
      await assert.rejects(client.read(0, new Uint8Array(512)), /ETIMEDOUT/);
    }
    assert.equal(client.connected, false);
    assert.equal(
      lines.filter((line) => refusedLine.test(line)).length,
      1,
      "logged once, not per attempt",
    );

    await server.stop();
    truncateSync(image, 1 << 20);
    await server.start();
    const bytes = new Uint8Array(4096);
    for (;;) {
      try {
        await client.read(0, bytes);
        break;
      } catch (error) {
        assert.equal((error as NbdRequestError).errno, ERRNO.ETIMEDOUT);
      }
    }
    assert.deepEqual(bytes, pattern(0, 4096, 1));
    assert.ok(client.connected);
  },
});
