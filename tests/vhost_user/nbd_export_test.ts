/**
 * A disk on an NBD server, exported over vhost-user-blk: a front end's
 * ring requests reach the NBD server (as read back through a client of
 * the export), on the worker threads and on the in-process engine.
 */

import assert from "node:assert/strict";
import { describeNbd } from "../../src/backend/nbd_spec.ts";
import type { EngineFactory } from "../../src/blk/engine.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { NbdClient } from "../../src/nbd/client.ts";
import { serveVhostUserBlk } from "../../src/vhost_user/server.ts";
import { pattern } from "../helpers/harness.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer } from "../nbd/nbd_server.ts";
import { DATA_BUFFER, FakeFrontEnd, QemuFeatures } from "./front_end.ts";

const ENGINES: readonly { name: string; engine: EngineFactory }[] = [
  { name: "worker threads", engine: workerEngine({ workers: 2 }) },
  { name: "in-process engine", engine: (context) => new InlineEngine(context) },
];

for (const { name, engine } of ENGINES) {
  Deno.test({
    name:
      `vhost-user export of an NBD disk (${name}): ring writes reach the server, reads return them`,
    ignore: needsTools("nbdkit").ignore,
    fn: async () => {
      await using nbd = await NbdServer.nbdkit(() => ["memory", "4M"]);
      const backend = await describeNbd(nbd.uri);
      const server = serveVhostUserBlk({
        socketPath: `${nbd.dir}/blk.sock`,
        device: { backend, engine },
        log: () => {},
      });
      try {
        const fe = FakeFrontEnd.connect(server.socketPath);
        try {
          await fe.handshake();
          await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
          const data = pattern(8192, 5);
          fe.bytes.set(data, DATA_BUFFER);
          const write = await fe.request(RequestType.OUT, 24, { gpa: DATA_BUFFER, length: 8192 });
          assert.equal(write.status, RequestStatus.OK);
          fe.bytes.fill(0, DATA_BUFFER, DATA_BUFFER + 8192);
          const read = await fe.request(RequestType.IN, 24, { gpa: DATA_BUFFER, length: 8192 });
          assert.equal(read.status, RequestStatus.OK);
          assert.deepEqual(fe.bytes.subarray(DATA_BUFFER, DATA_BUFFER + 8192), data);
          assert.equal(await fe.stopRing(), 2);
        } finally {
          fe.close();
        }
      } finally {
        await server.close();
      }
      await using client = await NbdClient.connect(nbd.uri);
      const held = new Uint8Array(8192);
      await client.read(24 * 512, held);
      assert.deepEqual(held, pattern(8192, 5));
    },
  });
}
