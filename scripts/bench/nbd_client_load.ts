/**
 * The load of the NBD client benchmark (`nbd_client.ts`): reads of one
 * size at a fixed queue depth, random or sequential, for a fixed time,
 * through {@linkcode NbdClient.submit} (the token path an I/O queue uses),
 * each completion submitting the next read into the same buffer. Reports
 * operations per second, bytes per second and latency percentiles.
 *
 * Runtime-neutral (node: modules only): the benchmark runs it in Deno, and
 * compiled, on Node:
 *
 *     node nbd_client_load.js <uri> '<cases as JSON>'   → results as JSON on stdout
 *
 * @module
 */

import process from "node:process";
import { NbdClient } from "../../src/nbd/client.ts";
import { NbdOp } from "../../src/nbd/operation.ts";

/** One measurement. */
export interface LoadCase {
  /** Bytes per read. */
  readonly size: number;
  /** Reads in flight. */
  readonly depth: number;
  readonly pattern: "random" | "sequential";
  readonly seconds: number;
}

/** What a measurement found. */
export interface LoadResult extends LoadCase {
  readonly operations: number;
  readonly operationsPerSecond: number;
  readonly bytesPerSecond: number;
  /** Latency percentiles, microseconds. */
  readonly p50: number;
  readonly p99: number;
}

/** Runs each case against `uri` on one connection; a short warm-up first. */
export async function runLoads(uri: string, cases: readonly LoadCase[]): Promise<LoadResult[]> {
  let handler: (token: number, result: number) => void = () => {};
  const client = await NbdClient.connect(uri, {
    onComplete: (token, result) => handler(token, result),
  });
  try {
    await measure(
      client,
      { size: 4096, depth: 8, pattern: "random", seconds: 0.5 },
      (h) => (handler = h),
    );
    const results: LoadResult[] = [];
    for (const load of cases) results.push(await measure(client, load, (h) => (handler = h)));
    return results;
  } finally {
    await client.close();
  }
}

async function measure(
  client: NbdClient,
  load: LoadCase,
  setHandler: (handler: (token: number, result: number) => void) => void,
): Promise<LoadResult> {
  const { size, depth } = load;
  const span = Math.floor(client.export.size / size) * size;
  // One buffer, as guest memory is: each slot its own part of it.
  const memory = new Uint8Array(new SharedArrayBuffer(size * depth));
  const vectors = Array.from({ length: depth }, (_, slot) => ({
    count: 1,
    regions: [{ bytes: memory }],
    offsets: [slot * size],
    lengths: [size],
  }));
  const started = new Float64Array(depth);
  const latencies: number[] = [];
  let cursor = 0;
  let random = 0x12345678;
  const nextOffset = () => {
    if (load.pattern === "sequential") {
      const offset = cursor;
      cursor = (cursor + size) % span;
      return offset;
    }
    random = (Math.imul(random, 1103515245) + 12345) >>> 0;
    return (random % (span / size)) * size;
  };
  const request = { op: NbdOp.READ, offset: 0, length: size, vector: vectors[0] };
  const submit = (slot: number) => {
    request.offset = nextOffset();
    request.vector = vectors[slot];
    started[slot] = performance.now();
    client.submit(request, slot);
  };
  const begin = performance.now();
  const end = begin + load.seconds * 1000;
  let operations = 0;
  let active = depth;
  await new Promise<void>((resolve, reject) => {
    setHandler((slot, result) => {
      const now = performance.now();
      if (result !== 0) {
        reject(new Error(`read failed: ${result}`));
        return;
      }
      latencies.push(now - started[slot]);
      operations++;
      if (now < end) submit(slot);
      else if (--active === 0) resolve();
    });
    for (let slot = 0; slot < depth; slot++) submit(slot);
    client.commit();
  });
  const elapsed = (performance.now() - begin) / 1000;
  latencies.sort((a, b) => a - b);
  const percentile = (p: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 1000);
  return {
    ...load,
    operations,
    operationsPerSecond: operations / elapsed,
    bytesPerSecond: (operations * size) / elapsed,
    p50: percentile(0.5),
    p99: percentile(0.99),
  };
}

// Run directly (compiled, on Node): print the results of the cases in argv.
const [entry, uri, casesJson] = process.argv.slice(1);
if (entry !== undefined && /nbd_client_load\.[jt]s$/.test(entry) && uri !== undefined) {
  const results = await runLoads(uri, JSON.parse(casesJson) as LoadCase[]);
  process.stdout.write(JSON.stringify(results) + "\n");
}
