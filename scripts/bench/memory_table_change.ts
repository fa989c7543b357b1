/**
 * How long a vhost-user memory-table change takes while the ring runs: the
 * time from SET_MEM_TABLE (with REPLY_ACK) to its ack, as QEMU sees it, on a
 * back end with the default blockif engine (8 workers) over a file.
 *
 *     deno run -A scripts/bench/memory_table_change.ts [--rounds 20]
 *
 * Prints the median, min and max in milliseconds. Run it on two commits to
 * compare (the device used to be rebuilt, threads and file handles with it).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { describeFile } from "../../src/backend/file_spec.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { encodeMemoryTable, Request } from "../../src/vhost_user/messages.ts";
import { serveVhostUserBlk } from "../../src/vhost_user/server.ts";
import { FakeFrontEnd, QemuFeatures } from "../../tests/vhost_user/front_end.ts";

const { values } = parseArgs({ args: Deno.args, options: { rounds: { type: "string" } } });
const rounds = Number(values.rounds ?? 20);

const dir = await Deno.makeTempDir({ prefix: "memtable-bench-" });
const image = `${dir}/disk.img`;
await Deno.writeFile(image, new Uint8Array(16 << 20));
const socketPath = `${dir}/vblk.sock`;
const server = serveVhostUserBlk({
  socketPath,
  device: { backend: describeFile(image), engine: workerEngine() },
  log: () => {},
});
const fe = FakeFrontEnd.connect(socketPath);
const times: number[] = [];
try {
  await fe.handshake();
  await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "table" });
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    const ack = await fe.acked(Request.SET_MEM_TABLE, encodeMemoryTable([fe.region()]), [
      fe.memfd,
    ]);
    times.push(performance.now() - start);
    if (ack !== 0n) throw new Error(`SET_MEM_TABLE refused (${ack})`);
  }
} finally {
  fe.close();
  server.close();
  await server.closed;
  await Deno.remove(dir, { recursive: true });
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(
  `memory-table change with the ring running (8 workers, ${rounds} rounds): ` +
    `median ${median.toFixed(1)} ms, min ${times[0].toFixed(1)} ms, max ${
      times.at(-1)!.toFixed(1)
    } ms`,
);
