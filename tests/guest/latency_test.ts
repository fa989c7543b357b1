import assert from "node:assert/strict";
import fc from "fast-check";
import { bucketOf, bucketValue, LatencyHistogram } from "../../src/guest/jobs/latency.ts";

/** Relative error the 64 sub-buckets per power of two allow. */
const TOLERANCE = 1 / 64;

function near(actual: number, expected: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= expected * TOLERANCE,
    `${what}: ${actual} is not within 1/64 of ${expected}`,
  );
}

Deno.test("latency: percentiles of a uniform distribution 1…100000 ns", () => {
  const h = new LatencyHistogram();
  // In a scrambled order: the histogram must not depend on it.
  for (let i = 0; i < 100_000; i++) h.record(((i * 7919) % 100_000) + 1);
  const s = h.summary();
  assert.equal(s.count, 100_000);
  assert.equal(s.minNs, 1);
  assert.equal(s.maxNs, 100_000);
  assert.equal(s.meanNs, 50_000.5);
  near(s.stdevNs, Math.sqrt((100_000 * 100_001) / 12), "stdev");
  near(s.percentilesNs["50"], 50_000, "p50");
  near(s.percentilesNs["90"], 90_000, "p90");
  near(s.percentilesNs["99"], 99_000, "p99");
  near(s.percentilesNs["99.9"], 99_900, "p99.9");
});

Deno.test("latency: a rare slow tail shows at p99.9 and not below", () => {
  const h = new LatencyHistogram();
  for (let i = 0; i < 9_980; i++) h.record(20_000); // 20 µs
  for (let i = 0; i < 20; i++) h.record(5_000_000); // 5 ms: 0.2 %
  const p = h.summary().percentilesNs;
  near(p["50"], 20_000, "p50");
  near(p["90"], 20_000, "p90");
  near(p["99"], 20_000, "p99");
  near(p["99.9"], 5_000_000, "p99.9");
});

Deno.test("latency: small values are exact and equal values give that value at every percentile", () => {
  const exact = new LatencyHistogram();
  for (let v = 0; v < 100; v++) exact.record(v);
  assert.equal(exact.percentile(50), 49);
  assert.equal(exact.percentile(100), 99);
  const same = new LatencyHistogram();
  for (let i = 0; i < 10; i++) same.record(123_457);
  assert.deepEqual(Object.values(same.summary().percentilesNs), [
    123_457,
    123_457,
    123_457,
    123_457,
  ]);
});

Deno.test("latency: empty, negative and huge values", () => {
  assert.deepEqual(new LatencyHistogram().summary(), {
    count: 0,
    minNs: 0,
    maxNs: 0,
    meanNs: 0,
    stdevNs: 0,
    percentilesNs: { "50": 0, "90": 0, "99": 0, "99.9": 0 },
  });
  const h = new LatencyHistogram();
  h.record(-5);
  h.record(3.6e12); // an hour
  assert.equal(h.summary().minNs, 0);
  near(h.percentile(100), 3.6e12, "an hour");
});

Deno.test("latency: every value falls in a bucket whose middle is within 1/64 of it", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (v) => {
      const middle = bucketValue(bucketOf(v));
      assert.ok(Math.abs(middle - v) <= Math.max(0.5, v * TOLERANCE), `${v} -> ${middle}`);
    }),
    { numRuns: 2000 },
  );
  let previous = -1;
  for (let v = 0; v < 1 << 20; v += 37) {
    const bucket = bucketOf(v);
    assert.ok(bucket >= previous, `bucket of ${v} goes back`);
    previous = bucket;
  }
});

Deno.test("latency: histograms recorded apart (a load's shares on several vCPUs) merge into the histogram of all their values", () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.nat(10_000_000), { maxLength: 200 }), { minLength: 1, maxLength: 4 }),
      (shares) => {
        const whole = new LatencyHistogram();
        const parts = shares.map((values) => {
          const part = new LatencyHistogram();
          for (const value of values) {
            part.record(value);
            whole.record(value);
          }
          return part;
        });
        // Through structured cloning, as the shares' results cross threads.
        const merged = LatencyHistogram.merged(parts.map((part) => structuredClone(part.state())));
        const [got, want] = [merged.summary(), whole.summary()];
        assert.deepEqual(
          { ...got, meanNs: 0, stdevNs: 0 },
          { ...want, meanNs: 0, stdevNs: 0 },
        );
        // Sums in another order may differ in the last bits.
        assert.ok(Math.abs(got.meanNs - want.meanNs) <= 1e-9 * Math.max(1, want.meanNs));
        assert.ok(Math.abs(got.stdevNs - want.stdevNs) <= 1e-6 * Math.max(1, want.stdevNs));
      },
    ),
  );
});
