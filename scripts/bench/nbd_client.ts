/**
 * The NBD client over loopback, against qemu-nbd serving a raw image from
 * the page cache: 4 KiB random and 1 MiB sequential reads at queue depth 1
 * and 32, on TCP (127.0.0.1) and a Unix socket, one connection, in Deno
 * and (compiled with the package's compiler) on Node; and, for reference,
 * QEMU's own NBD client (`qemu-img bench`, sequential only) on the same
 * export.
 *
 *     deno run -A scripts/bench/nbd_client.ts [--seconds 3] [--no-node] [--no-reference]
 *
 * Prints one table: operations and MiB per second, latency p50 and p99.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { compile, PACKAGE_DIR, ROOT } from "../build_npm.ts";
import { NbdServer, type Transport } from "../../tests/nbd/nbd_server.ts";
import { type LoadCase, type LoadResult, runLoads } from "./nbd_client_load.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    "no-node": { type: "boolean", default: false },
    "no-reference": { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const IMAGE_BYTES = 256 << 20;

const CASES: LoadCase[] = [
  { size: 4096, depth: 1, pattern: "random", seconds },
  { size: 4096, depth: 32, pattern: "random", seconds },
  { size: 1 << 20, depth: 1, pattern: "sequential", seconds },
  { size: 1 << 20, depth: 32, pattern: "sequential", seconds },
];

interface Row {
  readonly client: string;
  readonly transport: Transport;
  readonly result: LoadResult;
}

/** An image of data (not zeros: qemu-nbd would answer holes), read once so it is cached. */
function makeImage(dir: string): string {
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
  const file = Deno.openSync(`${dir}/disk.img`, { write: true, create: true });
  for (let written = 0; written < IMAGE_BYTES; written += block.length) {
    block[0] = written >>> 20;
    file.writeSync(block);
  }
  file.close();
  Deno.readFileSync(`${dir}/disk.img`);
  return `${dir}/disk.img`;
}

function nodeLoads(uri: string): LoadResult[] {
  const output = execFileSync(
    "node",
    [`${PACKAGE_DIR}scripts/bench/nbd_client_load.js`, uri, JSON.stringify(CASES)],
    { encoding: "utf8", maxBuffer: 1 << 20 },
  );
  return JSON.parse(output) as LoadResult[];
}

/** QEMU's NBD client: `qemu-img bench` reads `count` × `size` sequentially at `depth`. */
function qemuImgBench(uri: string, load: LoadCase): LoadResult {
  const count = load.size === 4096 ? (load.depth === 1 ? 20000 : 100000) : 1000;
  const output = execFileSync("qemu-img", [
    "bench",
    "-f",
    "raw",
    "-c",
    String(count),
    "-d",
    String(load.depth),
    "-s",
    String(load.size),
    uri,
  ], { encoding: "utf8" });
  const elapsed = Number(/Run completed in ([0-9.]+) seconds/.exec(output)?.[1]);
  return {
    ...load,
    pattern: "sequential",
    operations: count,
    operationsPerSecond: count / elapsed,
    bytesPerSecond: (count * load.size) / elapsed,
    p50: NaN,
    p99: NaN,
  };
}

if (!values["no-node"]) {
  compile({ entries: [`${ROOT}scripts/bench/nbd_client_load.ts`], declarations: false });
}
const rows: Row[] = [];
for (const transport of ["tcp", "unix"] as const) {
  await using server = await NbdServer.qemuNbd(makeImage, { transport });
  for (const result of await runLoads(server.uri, CASES)) {
    rows.push({ client: `deno ${Deno.version.deno}`, transport, result });
  }
  if (!values["no-node"]) {
    const version = execFileSync("node", ["--version"], { encoding: "utf8" }).trim();
    for (const result of nodeLoads(server.uri)) {
      rows.push({ client: `node ${version}`, transport, result });
    }
  }
  if (!values["no-reference"]) {
    for (const load of CASES) {
      rows.push({ client: "qemu-img bench", transport, result: qemuImgBench(server.uri, load) });
    }
  }
}

const header = ["client", "transport", "read", "QD", "ops/s", "MiB/s", "p50 µs", "p99 µs"];
const table = rows.map(({ client, transport, result }) => [
  client,
  transport,
  `${result.size === 4096 ? "4 KiB" : "1 MiB"} ${result.pattern}`,
  String(result.depth),
  Math.round(result.operationsPerSecond).toLocaleString("en-US"),
  (result.bytesPerSecond / (1 << 20)).toFixed(0),
  Number.isNaN(result.p50) ? "-" : String(result.p50),
  Number.isNaN(result.p99) ? "-" : String(result.p99),
]);
const widths = header.map((title, i) =>
  Math.max(title.length, ...table.map((row) => row[i].length))
);
const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join("  ");
console.log(line(header));
for (const row of table) console.log(line(row));
