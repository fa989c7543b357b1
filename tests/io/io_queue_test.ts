/**
 * The I/O-queue contract, for every kind of queue: what a caller submits
 * with a token comes back with that token and 0 or a negative result that
 * keeps its cause, and the data moved between the medium and guest memory
 * exactly as asked. Run against the synchronous adapter over each file
 * backend and against io_uring (Deno on Linux).
 */

import assert from "node:assert/strict";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { describeFile } from "../../src/backend/file_spec.ts";
import { openBackend } from "../../src/backend/backend.ts";
import type { FileBackendSpec } from "../../src/backend/file_driver.ts";
import {
  IO_SHORT,
  IoOp,
  type IoQueue,
  IoRanges,
  type IoRequest,
  IoVector,
} from "../../src/io/io_queue.ts";
import { SyncIoQueue } from "../../src/io/sync_io_queue.ts";
import { UringContext, UringIoQueue } from "../../src/io/io_uring/uring_io_queue.ts";
import { ioUringUnavailable } from "../../src/io/io_uring/sys.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { isDeno } from "../../src/runtime/is_deno.ts";
import { skipWhen } from "../helpers/skip.ts";

interface QueueKind {
  readonly name: string;
  readonly skip: { ignore: boolean };
  open(spec: FileBackendSpec): IoQueue & { dispose(): void };
}

const KINDS: QueueKind[] = [
  {
    name: "sync over node-fs",
    skip: { ignore: false },
    open(spec) {
      const file: FileBackendSpec = { ...spec, io: "node-fs" };
      const queue = new SyncIoQueue(openBackend(file), 8);
      return Object.assign(queue, { dispose: () => queue.close() });
    },
  },
  {
    name: "sync over fsfile",
    skip: skipWhen("io queue tests over Deno.FsFile", isDeno() ? undefined : "Deno only"),
    open(spec) {
      const file: FileBackendSpec = { ...spec, io: "fsfile" };
      const queue = new SyncIoQueue(openBackend(file), 8);
      return Object.assign(queue, { dispose: () => queue.close() });
    },
  },
  {
    name: "io_uring",
    skip: skipWhen("io queue tests over io_uring", ioUringUnavailable()),
    open(spec) {
      const context = new UringContext(8, 4);
      const queue = new UringIoQueue(context, spec);
      return Object.assign(queue, {
        dispose: () => {
          queue.close();
          context.close();
        },
      });
    },
  },
];

const memory = SharedGuestMemory.allocate(1 << 20);
const region = memory.regions[0];

function request(
  op: IoRequest["op"],
  offset: number,
  pieces: [number, number][],
  durable = false,
  mayBlock = false,
): IoRequest {
  const vector = new IoVector(4);
  for (const [at, length] of pieces) vector.push(region, at, length);
  return { op, offset, vector, ranges: new IoRanges(4), durable, mayBlock };
}

/** Submits, commits and reaps until every token has a result. */
function run(queue: IoQueue, requests: IoRequest[]): number[] {
  const results: number[] = new Array(requests.length).fill(NaN);
  requests.forEach((r, token) => assert.ok(queue.submit(r, token), `submit ${token}`));
  queue.commit();
  let left = requests.length;
  while (left > 0) {
    left -= queue.reap((token, result) => (results[token] = result));
    if (left > 0) queue.wait();
  }
  assert.equal(queue.inFlight, 0);
  return results;
}

function withImage(size: number, body: (path: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "ioq-" });
  try {
    const path = `${dir}/disk.img`;
    writeFileSync(path, Uint8Array.from({ length: size }, (_, i) => (i * 13 + (i >> 9)) & 0xff));
    body(path);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

for (const kind of KINDS) {
  Deno.test(
    `io queue (${kind.name}): reads and writes move exactly the bytes asked, segment by segment`,
    { ignore: kind.skip.ignore },
    () => {
      withImage(64 << 10, (path) => {
        const before = new Uint8Array(readFileSync(path));
        const queue = kind.open(describeFile(path));
        try {
          region.bytes.fill(0xee, 0, 32 << 10);
          const results = run(queue, [
            request(IoOp.READ, 4096, [[0, 4096]]),
            request(IoOp.READ, 512, [[8192, 512], [16384, 1024]]),
          ]);
          assert.deepEqual(results, [0, 0]);
          assert.deepEqual(region.bytes.slice(0, 4096), before.slice(4096, 8192));
          assert.deepEqual(region.bytes.slice(8192, 8704), before.slice(512, 1024));
          assert.deepEqual(region.bytes.slice(16384, 17408), before.slice(1024, 2048));

          region.bytes.fill(0x5a, 20000, 21024);
          region.bytes.fill(0xa5, 30000, 30512);
          assert.deepEqual(
            run(queue, [request(IoOp.WRITE, 32768, [[20000, 1024], [30000, 512]], true)]),
            [0],
          );
          // From a thread with nothing else to do (io_uring: pwritev2 on the thread).
          region.bytes.fill(0x3c, 40000, 41024);
          region.bytes.fill(0xc3, 50000, 50512);
          assert.deepEqual(
            run(queue, [request(IoOp.WRITE, 49152, [[40000, 1024], [50000, 512]], true, true)]),
            [0],
          );
          assert.deepEqual(
            run(queue, [request(IoOp.FLUSH, 0, [])]),
            [0],
          );
          const after = new Uint8Array(readFileSync(path));
          assert.deepEqual(after.slice(32768, 33792), new Uint8Array(1024).fill(0x5a));
          assert.deepEqual(after.slice(33792, 34304), new Uint8Array(512).fill(0xa5));
          assert.deepEqual(after.slice(0, 32768), before.slice(0, 32768));
          assert.deepEqual(after.slice(34304, 49152), before.slice(34304, 49152));
          assert.deepEqual(after.slice(49152, 50176), new Uint8Array(1024).fill(0x3c));
          assert.deepEqual(after.slice(50176, 50688), new Uint8Array(512).fill(0xc3));
          assert.deepEqual(after.slice(50688), before.slice(50688));
        } finally {
          queue.dispose();
        }
      });
    },
  );

  Deno.test(
    `io queue (${kind.name}): nothing leaves the range= window; reading past the end of the file is short`,
    { ignore: kind.skip.ignore },
    () => {
      withImage(64 << 10, (path) => {
        const before = new Uint8Array(readFileSync(path));
        const queue = kind.open(describeFile(path, { range: { start: 16, size: 16 } }));
        try {
          const results = run(queue, [
            request(IoOp.READ, 0, [[0, 8192]]), // the whole window: fine
            request(IoOp.READ, 4096, [[0, 8192]]), // ends 4 KiB past the window
            request(IoOp.WRITE, 8192, [[0, 512]]), // starts past the window
          ]);
          assert.deepEqual(results, [0, IO_SHORT, IO_SHORT]);
          assert.deepEqual(new Uint8Array(readFileSync(path)), before);
          // The file shrinks under the device: what lies past its end reads short.
          truncateSync(path, 8192 + 4096);
          assert.deepEqual(run(queue, [request(IoOp.READ, 0, [[0, 8192]])]), [IO_SHORT]);
        } finally {
          queue.dispose();
        }
      });
    },
  );

  Deno.test(
    `io queue (${kind.name}): DISCARD and WRITE_ZEROES zero their ranges; one leaving the window runs none`,
    { ignore: kind.skip.ignore },
    () => {
      withImage(64 << 10, (path) => {
        const before = new Uint8Array(readFileSync(path));
        // Device bytes 0–8191 are file bytes 8192–16383.
        const queue = kind.open(describeFile(path, { range: { start: 16, size: 16 } }));
        try {
          const ranged = (op: IoRequest["op"], list: [number, number, boolean?][]) => {
            const r = request(op, 0, []);
            for (const [offset, length, unmap] of list) {
              r.ranges.push(offset, length, unmap ?? false);
            }
            return r;
          };
          const results = run(queue, [
            ranged(IoOp.WRITE_ZEROES, [[0, 512], [4096, 1024, true]]),
            ranged(IoOp.WRITE_ZEROES, [[1024, 512], [8192 - 512, 1024]]),
            ranged(IoOp.WRITE_ZEROES, [[2048, 512], [8192, 512]]),
            ranged(IoOp.DISCARD, [[3072, 512], [8192 - 512, 513]]),
          ]);
          assert.deepEqual(results, [0, IO_SHORT, IO_SHORT, IO_SHORT]);
          const expected = before.slice();
          expected.fill(0, 8192, 8192 + 512);
          expected.fill(0, 8192 + 4096, 8192 + 5120);
          assert.deepEqual(new Uint8Array(readFileSync(path)), expected, "only the first ran");
        } finally {
          queue.dispose();
        }
      });
    },
  );

  Deno.test(
    `io queue (${kind.name}): a transfer of no bytes succeeds, at the end of the medium too (not "end of file")`,
    { ignore: kind.skip.ignore },
    () => {
      withImage(8192, (path) => {
        const before = new Uint8Array(readFileSync(path));
        const queue = kind.open(describeFile(path));
        try {
          const results = run(queue, [
            request(IoOp.READ, 4096, []),
            request(IoOp.READ, 8192, []), // at the very end
            request(IoOp.WRITE, 8192, []),
            request(IoOp.WRITE, 0, [], true), // durable: a sync, nothing written
          ]);
          assert.deepEqual(results, [0, 0, 0, 0]);
          assert.deepEqual(new Uint8Array(readFileSync(path)), before);
        } finally {
          queue.dispose();
        }
      });
    },
  );

  Deno.test(`io queue (${kind.name}): a failing medium's errno comes back as -errno`, {
    ignore: kind.skip.ignore,
  }, () => {
    withImage(8192, (path) => {
      const queue = kind.open(describeFile(path, { readOnly: true }));
      try {
        const [result] = run(queue, [request(IoOp.WRITE, 0, [[0, 512]])]);
        assert.ok(
          result < 0 && result !== IO_SHORT,
          `a write to a read-only medium fails: ${result}`,
        );
      } finally {
        queue.dispose();
      }
    });
  });
}
