/**
 * Whom a drain wakes. A worker that drains the ring (worker dispatch) runs
 * one of the requests it queued itself once it is done; every other request
 * it made runnable needs another worker, so it wakes one for each, counted
 * over all its passes over the ring. A guest that adds requests while the
 * drainer is at it (one more per pass: a guest trickling requests) must
 * get them run side by side, not one after another by the drainer. The
 * device thread (device dispatch) runs none and wakes a worker for each.
 * Requests that wait behind a conflicting one (BLOCKED) wake nobody yet:
 * the worker that finishes the conflicting request wakes one for them.
 *
 * The drainer runs on the test's thread; the guest adds the next batch the
 * moment a pass ends, and the wake-ups it asks for are counted.
 */

import assert from "node:assert/strict";
import type { Dispatch } from "../../src/blockif/server.ts";
import { PoolWord } from "../../src/blockif/pool_layout.ts";
import { RequestType } from "../../src/blk/spec.ts";
import { RawGuest } from "../helpers/raw_guest.ts";
import { InThreadWorker } from "./in_thread_worker.ts";

/** A request of a batch: a read or write of 8 sectors at `sector`. */
interface Io {
  readonly write?: boolean;
  readonly sector: number;
}

/** Drains `batches`, the guest offering the next one each time a pass ends. */
function drainInPasses(dispatch: Dispatch, batches: readonly (readonly Io[])[]) {
  let rig!: InThreadWorker;
  const guest = RawGuest.create({
    device: {
      engine: (context) => (rig = new InThreadWorker(context, { dispatch, elements: 16 })),
    },
  });
  const heads = batches.map((batch) =>
    batch.map((io) =>
      guest.request({
        type: io.write ? RequestType.OUT : RequestType.IN,
        sector: io.sector,
        data: 4096,
      })
        .head
    )
  );
  const queue = rig.queues[0];
  let offered = 0;
  const offerNext = () => {
    if (offered < heads.length) guest.offer(...heads[offered++]);
  };
  offerNext();
  const endDrain = queue.endDrain.bind(queue);
  queue.endDrain = () => {
    endDrain();
    offerNext(); // the guest adds requests while the drainer finishes its pass
  };
  const words = rig.pool.words;
  const notify = Atomics.notify;
  let woken = 0;
  Atomics.notify = ((array: Int32Array, index: number, count?: number) => {
    if (array === words && index === PoolWord.WAKE) woken += count ?? Infinity;
    return notify(array, index, count);
  }) as typeof Atomics.notify;
  let queued;
  try {
    queued = rig.worker.drain(0);
  } finally {
    Atomics.notify = notify;
  }
  const result = {
    passes: offered,
    queued,
    runnable: rig.pool.runnableCount,
    woken,
  };
  return { result, guest, rig };
}

const reads = (...sectors: number[]): Io[] => sectors.map((sector) => ({ sector }));

Deno.test("worker dispatch: a guest trickling requests, one per pass, gets a worker woken for each but the drainer's own", async () => {
  const { result, guest } = drainInPasses("worker", [reads(0), reads(8), reads(16), reads(24)]);
  try {
    assert.deepEqual(result, { passes: 4, queued: 4, runnable: 4, woken: 3 });
  } finally {
    await guest.close();
  }
});

Deno.test("worker dispatch: the drainer keeps one request over all its passes, whatever their sizes", async () => {
  const cases: [string, Io[][], number][] = [
    ["one request in one pass: the drainer runs it", [reads(0)], 0],
    ["three in one pass", [reads(0, 8, 16)], 2],
    ["two, then one", [reads(0, 8), reads(16)], 2],
    ["one, then two", [reads(0), reads(8, 16)], 2],
    ["a write; then a read behind it and another read: the other read needs a worker", [
      [{ write: true, sector: 0 }],
      [{ sector: 0 }, { sector: 64 }],
    ], 1],
  ];
  for (const [name, batches, woken] of cases) {
    const { result, guest } = drainInPasses("worker", batches);
    try {
      const requests = batches.flat().length;
      assert.equal(result.queued, requests, name);
      assert.equal(result.woken, woken, name);
    } finally {
      await guest.close();
    }
  }
});

Deno.test("worker dispatch: requests that wait behind a conflicting one wake nobody", async () => {
  // A write, then a read of the same sectors in the next pass: the read waits for the write.
  const { result, guest, rig } = drainInPasses("worker", [[{ write: true, sector: 0 }], reads(0)]);
  try {
    assert.deepEqual(result, { passes: 2, queued: 2, runnable: 1, woken: 0 });
    assert.equal(rig.pool.counts().blocked, 1);
  } finally {
    await guest.close();
  }
});

Deno.test("device dispatch: the device thread wakes a worker for every runnable request", async () => {
  const { result, guest } = drainInPasses("device", [reads(0), reads(8), reads(16), reads(24)]);
  try {
    assert.deepEqual(result, { passes: 4, queued: 4, runnable: 4, woken: 4 });
  } finally {
    await guest.close();
  }
});
