import assert from "node:assert/strict";
import { BlockOrder, MAX_BLOCKS, Random } from "../../src/guest/jobs/block_order.ts";

function pass(order: BlockOrder): number[] {
  const seen: number[] = [];
  for (let block = order.next(); block >= 0; block = order.next()) seen.push(block);
  return seen;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

Deno.test("block order: sequential visits 0…n-1 once per pass", () => {
  const order = new BlockOrder(5, false, 1);
  assert.deepEqual(pass(order), [0, 1, 2, 3, 4]);
  assert.equal(order.next(), -1);
  order.nextPass();
  assert.deepEqual(pass(order), [0, 1, 2, 3, 4]);
});

Deno.test("block order: random visits every block exactly once per pass, for any count", () => {
  for (const n of [1, 2, 3, 7, 64, 1000, 4097]) {
    const order = new BlockOrder(n, true, 42);
    for (let p = 0; p < 3; p++) {
      const seen = pass(order);
      assert.deepEqual([...seen].sort((a, b) => a - b), range(n), `n=${n} pass ${p}`);
      order.nextPass();
    }
  }
});

Deno.test("block order: random order depends on seed and pass, and repeats for the same seed", () => {
  const a = new BlockOrder(4096, true, 1);
  const first = pass(a);
  a.nextPass();
  const second = pass(a);
  assert.notDeepEqual(first, second);
  assert.deepEqual(pass(new BlockOrder(4096, true, 1)), first);
  assert.notDeepEqual(pass(new BlockOrder(4096, true, 2)), first);
  // Scattered, not a disguised sequential walk: about half the steps go up.
  const ups = first.slice(1).filter((v, i) => v > first[i]).length;
  assert.ok(ups > 4096 * 0.4 && ups < 4096 * 0.6, `${ups} of 4095 steps go up`);
  const jumps = first.slice(1).filter((v, i) => Math.abs(v - first[i]) > 64).length;
  assert.ok(jumps > 4096 * 0.9, `${jumps} of 4095 steps jump more than 64 blocks`);
});

Deno.test("block order: the full 2^32-block range works without per-block memory", () => {
  const order = new BlockOrder(MAX_BLOCKS, true, 7);
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const block = order.next();
    assert.ok(block >= 0 && block < MAX_BLOCKS);
    seen.add(block);
  }
  assert.equal(seen.size, 10_000);
  assert.throws(() => new BlockOrder(0, true, 1), RangeError);
  assert.throws(() => new BlockOrder(MAX_BLOCKS + 1, true, 1), RangeError);
});

Deno.test("block order: the mix generator is deterministic per seed and spreads over its range", () => {
  const draw = (seed: number) => {
    const r = new Random(seed);
    return Array.from({ length: 10_000 }, () => r.below(100));
  };
  const values = draw(9);
  assert.deepEqual(draw(9), values);
  assert.notDeepEqual(draw(10), values);
  assert.ok(values.every((v) => Number.isInteger(v) && v >= 0 && v < 100));
  const below30 = values.filter((v) => v < 30).length;
  assert.ok(below30 > 2700 && below30 < 3300, `${below30} of 10000 below 30`);
});
