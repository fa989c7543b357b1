/**
 * The guest driver as a client of the device: requests of every shape it
 * can build, direct and indirect, and its limits.
 */

import assert from "node:assert/strict";
import { RequestType } from "../../src/blk/spec.ts";
import { harness, pattern } from "../helpers/harness.ts";

const SECTOR = 512;

Deno.test("driver: a direct request longer than the ring is refused at once, not left to time out", async () => {
  // seg_max above N - 2: only indirect tables can carry that many segments.
  const h = harness({ device: { queueSize: 8, segMax: 16 } });
  assert.equal(h.driver.usesIndirect, false);
  const buffers = {
    count: 7,
    address: new Array(7).fill(0x100000),
    length: new Array(7).fill(SECTOR),
  };
  assert.throws(() => h.driver.submit(RequestType.IN, 0, buffers), RangeError);
  // No waiting for ring space that never comes: the driver never waits for the device.
  let waits = 0;
  const wait = h.driver.wait.bind(h.driver);
  h.driver.wait = (timeoutMs) => {
    waits++;
    return wait(timeoutMs);
  };
  await assert.rejects(h.driver.execute(RequestType.IN, 0, buffers, 2_000), RangeError);
  assert.equal(waits, 0, "refused before any wait");
  h.driver.wait = wait;
  // Six segments fit (6 + 2 = 8 descriptors).
  const six = { count: 6, address: new Array(6).fill(0x100000), length: new Array(6).fill(SECTOR) };
  assert.deepEqual(await h.driver.execute(RequestType.IN, 0, six), {
    status: 0,
    usedLength: 6 * SECTOR + 1,
  });
  await h.close();
});

Deno.test("driver: with indirect tables, up to seg_max segments in one request", async () => {
  const h = harness({ device: { queueSize: 8, segMax: 16 }, driver: { indirect: true } });
  assert.equal(h.driver.usesIndirect, true);
  const data = pattern(16 * SECTOR, 31);
  h.medium.set(data);
  const base = h.allocator.alloc(16 * SECTOR, 512);
  const buffers = {
    count: 16,
    address: Array.from({ length: 16 }, (_, i) => base + i * SECTOR),
    length: new Array(16).fill(SECTOR),
  };
  assert.deepEqual(await h.driver.execute(RequestType.IN, 0, buffers), {
    status: 0,
    usedLength: 16 * SECTOR + 1,
  });
  assert.deepEqual(new Uint8Array(h.memory.buffer, base, 16 * SECTOR), data);
  await h.close();
});
