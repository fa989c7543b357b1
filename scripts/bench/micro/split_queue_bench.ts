/**
 * The split queue's hot paths: a drain pass popping 64 chains (walking and
 * copying their descriptors, direct and through indirect tables) and
 * returning 64 chains on the used ring with the interrupt decision, with
 * and without EVENT_IDX.
 *
 *     deno task bench:micro
 */

import { RequestType } from "../../../src/blk/spec.ts";
import { BATCH, offerAll, popAll, publishAll, queueFixture } from "./fixtures.ts";

const read = { type: RequestType.IN, segments: 1, segmentBytes: 4096 };

for (const indirect of [false, true]) {
  const f = queueFixture({ ...read, indirect });
  Deno.bench({
    name: `pop ${BATCH} chains of 3 descriptors, ${indirect ? "indirect" : "direct"}`,
    group: "pop",
    baseline: !indirect,
    fn(b) {
      offerAll(f);
      b.start();
      const popped = popAll(f);
      b.end();
      if (popped !== BATCH) throw new Error(`popped ${popped} of ${BATCH}`);
      publishAll(f);
    },
  });
}

const scattered = queueFixture({
  type: RequestType.IN,
  segments: 16,
  segmentBytes: 4096,
  indirect: true,
});
Deno.bench({
  name: `pop ${BATCH} chains of 18 descriptors, indirect`,
  group: "pop",
  fn(b) {
    offerAll(scattered);
    b.start();
    popAll(scattered);
    b.end();
    publishAll(scattered);
  },
});

for (const eventIdx of [false, true]) {
  const f = queueFixture({ ...read, indirect: true }, eventIdx);
  Deno.bench({
    name: `publish ${BATCH} used elements + needsInterrupt, ${eventIdx ? "EVENT_IDX" : "flags"}`,
    group: "publish",
    baseline: !eventIdx,
    fn(b) {
      offerAll(f);
      popAll(f);
      b.start();
      publishAll(f);
      b.end();
    },
  });
}
