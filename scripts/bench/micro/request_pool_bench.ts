/**
 * The blockif request pool's critical sections: 64 requests through
 * enqueue (freeq → pendq, with the conflict check), takeRunnable (pendq →
 * busyq) and finish (busyq → freeq), for reads (no scan while no write is in
 * flight) and for writes to distinct sectors (each scans the ones before it).
 *
 *     deno task bench:micro
 */

import { BlkRequest, parseRequest } from "../../../src/blk/request.ts";
import { RequestType } from "../../../src/blk/spec.ts";
import { RequestPool } from "../../../src/blockif/request_pool.ts";
import { BATCH, CAPACITY_SECTORS, offerAll, popAll, publishAll, queueFixture } from "./fixtures.ts";

const SEG_MAX = 126;

/** BATCH parsed requests of `type` at distinct sectors. */
function requests(type: number): BlkRequest[] {
  const f = queueFixture({ type, segments: 1, segmentBytes: 4096, indirect: false });
  const limits = { capacity: CAPACITY_SECTORS, segMax: SEG_MAX };
  const parsed: BlkRequest[] = [];
  offerAll(f);
  popAll(f, (chain) => {
    const request = new BlkRequest(SEG_MAX);
    parseRequest(chain, f.memory, limits, request);
    parsed.push(request);
  });
  publishAll(f);
  return parsed;
}

const kinds = [
  { name: "reads", type: RequestType.IN },
  { name: "writes", type: RequestType.OUT },
];

for (const [i, { name, type }] of kinds.entries()) {
  const batch = requests(type);
  const pool = new RequestPool({ elements: BATCH, segMax: SEG_MAX });
  const taken = new Int32Array(BATCH);
  Deno.bench({
    name: `pool: enqueue, takeRunnable, finish ${BATCH} ${name}`,
    group: "pool",
    baseline: i === 0,
    fn() {
      for (const request of batch) {
        if (pool.enqueue(request, 0, 1) < 0) throw new Error("freeq ran dry");
      }
      for (let k = 0; k < BATCH; k++) taken[k] = pool.takeRunnable();
      for (let k = 0; k < BATCH; k++) pool.finish(taken[k]);
    },
  });
}
