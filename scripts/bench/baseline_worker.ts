/**
 * A raw-baseline thread: positional reads or writes of the benchmark file
 * with `node:fs` (one pread64/pwrite64 per request, plus fdatasync for
 * write-through) straight into a SharedArrayBuffer, with no ring, pool or
 * hand-off — what the same runtime does without the device. The runner
 * starts every thread of a measurement at once and stops them together
 * through the control words (baseline_layout.ts); nothing per request
 * crosses threads except a sequential job's shared block cursor.
 *
 * @module
 */

import { closeSync, fdatasyncSync, openSync, readSync, writeSync } from "node:fs";
import { Random } from "../../src/guest/jobs/block_order.ts";
import { parentChannel } from "../../src/runtime/thread.ts";
import {
  type BaselineJob,
  ControlWord,
  type FromBaselineWorker,
  type ToBaselineWorker,
} from "./baseline_layout.ts";
import { LatencyCounts } from "./latency_counts.ts";

const parent = await parentChannel();
const post = (message: FromBaselineWorker) => parent.postMessage(message);
let control: Int32Array | undefined;
let fd = -1;

parent.onMessage((raw) => {
  const message = raw as ToBaselineWorker;
  try {
    switch (message.type) {
      case "open":
        control = new Int32Array(message.control);
        fd = openSync(message.path, "r+");
        post({ type: "opened" });
        break;
      case "run":
        post(run(control!, message.job));
        break;
      case "close":
        if (fd >= 0) closeSync(fd);
        fd = -1;
        break;
    }
  } catch (error) {
    post({ type: "error", message: error instanceof Error ? error.message : String(error) });
  }
});

function run(words: Int32Array, job: BaselineJob): FromBaselineWorker {
  const { bs, blocks, sync } = job;
  const write = job.rw === "write" || job.rw === "randwrite";
  const sequential = job.rw === "read" || job.rw === "write";
  const buffer = new Uint8Array(new SharedArrayBuffer(bs));
  if (write) {
    // Non-zero data to write; getRandomValues may refuse a view of shared memory.
    const pattern = new Uint8Array(Math.min(bs, 65536));
    crypto.getRandomValues(pattern);
    for (let at = 0; at < bs; at += pattern.length) buffer.set(pattern.subarray(0, bs - at), at);
  }
  const random = new Random(job.seed);
  const latency = new LatencyCounts();
  const sampleMask = job.sampleEvery - 1; // a power of two
  let requests = 0;
  let ios = 0;
  let errors = 0;

  Atomics.add(words, ControlWord.READY, 1);
  Atomics.notify(words, ControlWord.READY);
  Atomics.wait(words, ControlWord.GO, job.go);
  while (Atomics.load(words, ControlWord.STOP) === 0) {
    const block = sequential
      ? (Atomics.add(words, ControlWord.CURSOR, 1) >>> 0) % blocks
      : random.below(blocks);
    const position = block * bs;
    const timed = (requests++ & sampleMask) === 0;
    const started = timed ? performance.now() : 0;
    const done = write
      ? writeSync(fd, buffer, 0, bs, position)
      : readSync(fd, buffer, 0, bs, position);
    if (write && sync) fdatasyncSync(fd);
    if (timed) latency.record((performance.now() - started) * 1e6);
    if (done === bs) ios++;
    else errors++;
  }
  return { type: "done", ios, bytes: ios * bs, errors, counts: latency.counts };
}
