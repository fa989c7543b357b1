/**
 * The bookkeeping of a structured read's chunks: any order, no overlap,
 * every byte once, a bounded number of separate ranges.
 */

import assert from "node:assert/strict";
import { Coverage, CoverageResult, MAX_FRAGMENTS } from "../../src/nbd/coverage.ts";

Deno.test("chunks in any order cover a read exactly once; any byte again is an overlap", () => {
  const coverage = new Coverage();
  for (let seed = 1; seed <= 20; seed++) {
    coverage.reset();
    // 256 chunks of 16 bytes in a shuffled order (a small LCG, reproducible).
    const order = Array.from({ length: 256 }, (_, i) => i);
    let state = seed;
    for (let i = order.length - 1; i > 0; i--) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const j = state % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const chunk of order) {
      assert.equal(coverage.add(chunk * 16, chunk * 16 + 16), CoverageResult.ADDED, `seed ${seed}`);
    }
    assert.equal(coverage.covered, 4096);
    for (const at of [0, 15, 16, 2000, 4095]) {
      assert.equal(coverage.add(at, at + 1), CoverageResult.OVERLAP, `byte ${at}, seed ${seed}`);
    }
    assert.equal(
      coverage.add(4096, 4097),
      CoverageResult.ADDED,
      "past the end is the caller's check",
    );
  }
});

Deno.test("partial overlaps on either side are refused, and nothing is counted for them", () => {
  const coverage = new Coverage();
  assert.equal(coverage.add(100, 200), CoverageResult.ADDED);
  assert.equal(coverage.add(300, 400), CoverageResult.ADDED);
  assert.equal(coverage.add(50, 101), CoverageResult.OVERLAP);
  assert.equal(coverage.add(199, 250), CoverageResult.OVERLAP);
  assert.equal(coverage.add(250, 301), CoverageResult.OVERLAP);
  assert.equal(coverage.add(0, 1000), CoverageResult.OVERLAP);
  assert.equal(coverage.covered, 200);
  assert.equal(coverage.add(200, 300), CoverageResult.ADDED, "the gap, joining both sides");
  assert.equal(coverage.add(0, 100), CoverageResult.ADDED);
  assert.equal(coverage.covered, 400);
});

Deno.test(`more than ${MAX_FRAGMENTS} separate ranges are refused; ranges that join do not count`, () => {
  const coverage = new Coverage();
  for (let i = 0; i < MAX_FRAGMENTS; i++) {
    assert.equal(coverage.add(4 * i, 4 * i + 1), CoverageResult.ADDED);
  }
  assert.equal(coverage.add(4 * MAX_FRAGMENTS, 4 * MAX_FRAGMENTS + 1), CoverageResult.FRAGMENTED);
  assert.equal(coverage.add(2, 3), CoverageResult.FRAGMENTED, "a new range between two");
  assert.equal(coverage.add(1, 4), CoverageResult.ADDED, "filling a gap merges two ranges");
  assert.equal(
    coverage.add(4 * MAX_FRAGMENTS, 4 * MAX_FRAGMENTS + 1),
    CoverageResult.ADDED,
    "room again",
  );
});
