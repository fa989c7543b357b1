/**
 * The blockif request pool on its own, driven step by step on one thread:
 * its ordering policy (which requests wait, BLOCKED, behind which earlier
 * ones, and in what order they are released), what a reset of one queue
 * does to the others' requests, and how its counters change for the
 * threads that read them without the lock.
 *
 * The policy (src/blockif/request_pool.ts): a READ, WRITE, DISCARD or
 * WRITE_ZEROES waits while an earlier request still in pendq or busyq
 * overlaps it (range by range) and one of the two changes the medium; every
 * other kind (FLUSH, GET_ID, …) neither waits nor makes anything wait; a
 * device with `no_bst_block` has none of its requests wait.
 */

import assert from "node:assert/strict";
import {
  BlkRequest,
  RequestField,
  RequestKind,
  type RequestKindCode,
} from "../../src/blk/request.ts";
import { SECTOR_SIZE } from "../../src/blk/spec.ts";
import { ElementState, PoolWord } from "../../src/blockif/pool_layout.ts";
import { RequestPool } from "../../src/blockif/request_pool.ts";
import { beforeAtomicOps } from "../helpers/atomic_hooks.ts";

const SEG_MAX = 4;

/** A parsed request of `kind` for sectors [sector, sector + sectors). */
function request(kind: RequestKindCode, sector = 0, sectors = 0): BlkRequest {
  const r = new BlkRequest(SEG_MAX);
  r.fields[r.base + RequestField.KIND] = kind;
  r.fields[r.base + RequestField.SECTOR] = sector;
  r.fields[r.base + RequestField.DATA_LENGTH] = sectors * SECTOR_SIZE;
  return r;
}

const KINDS = {
  READ: RequestKind.READ,
  WRITE: RequestKind.WRITE,
  FLUSH: RequestKind.FLUSH,
  GET_ID: RequestKind.GET_ID,
} as const;
type KindName = keyof typeof KINDS;

/** Sector ranges [start, end) of a later request around an earlier one's [8, 16). */
const EARLIER: readonly [number, number] = [8, 16];
const LATER_RANGES: readonly (readonly [number, number])[] = [
  [8, 16], // the same
  [4, 12], // over its start
  [12, 20], // over its end
  [10, 12], // inside it
  [0, 24], // around it
  [7, 9], // its first sector and the one before
  [15, 17], // its last sector and the one after
  [0, 8], // adjacent, before
  [16, 24], // adjacent, after
  [32, 40], // apart
];

/** Whether two sector ranges share a sector, by listing the sectors (not the pool's formula). */
function shareASector(a: readonly [number, number], b: readonly [number, number]): boolean {
  for (let s = a[0]; s < a[1]; s++) if (s >= b[0] && s < b[1]) return true;
  return false;
}

function isData(kind: KindName): boolean {
  return kind === "READ" || kind === "WRITE";
}

/** A request in flight: its kind and sector range. */
type InFlight = readonly [KindName, readonly [number, number]];

/** What the policy says of a `later` request submitted while `earlier` ones are in flight. */
function shouldWait(
  earlier: readonly InFlight[],
  later: KindName,
  laterRange: readonly [number, number],
): boolean {
  return earlier.some(([kind, range]) =>
    isData(kind) && isData(later) && (kind === "WRITE" || later === "WRITE") &&
    shareASector(range, laterRange)
  );
}

/** In the "blocked" case, a write of the earlier request's first sector makes it wait. */
const BLOCKER: InFlight = ["WRITE", [EARLIER[0], EARLIER[0] + 1]];

/** Where the earlier request is when the later one is submitted. */
const WHERE = ["pending", "blocked", "busy", "finished"] as const;

Deno.test("BLOCKED: every pair of kinds and overlaps, the earlier one pending, blocked, busy or finished", () => {
  const states = { [ElementState.BLOCKED]: "BLOCKED", [ElementState.PENDING]: "PENDING" };
  for (const earlier of Object.keys(KINDS) as KindName[]) {
    for (const later of Object.keys(KINDS) as KindName[]) {
      for (const range of LATER_RANGES) {
        for (const where of WHERE) {
          const pool = new RequestPool({ elements: 4, segMax: SEG_MAX });
          const inFlight: InFlight[] = [];
          if (where === "blocked") {
            // The earlier request itself waits behind a write of its first sector.
            const [start, end] = BLOCKER[1];
            pool.enqueue(request(RequestKind.WRITE, start, end - start), 0, 0);
            inFlight.push(BLOCKER);
          }
          const earlierState = pool.enqueue(
            request(KINDS[earlier], EARLIER[0], EARLIER[1] - EARLIER[0]),
            0,
            0,
          );
          if (where === "blocked" && !isData(earlier)) {
            assert.equal(earlierState, ElementState.PENDING, `${earlier} never waits`);
            continue;
          }
          assert.equal(
            earlierState,
            where === "blocked" ? ElementState.BLOCKED : ElementState.PENDING,
          );
          if (where === "busy" || where === "finished") {
            const taken = pool.takeRunnable();
            assert.equal(pool.state(taken), ElementState.BUSY);
            if (where === "finished") pool.finish(taken);
          }
          const state = pool.enqueue(request(KINDS[later], range[0], range[1] - range[0]), 0, 0);
          if (where !== "finished") inFlight.push([earlier, EARLIER]);
          const expected = shouldWait(inFlight, later, range);
          const what = `${later} [${range}) after a ${where} ${earlier} [${EARLIER})`;
          assert.equal(
            states[state as 1 | 2],
            expected ? "BLOCKED" : "PENDING",
            what,
          );
        }
      }
    }
  }
});

/**
 * Submits the release-order scenario and checks each step. The submission
 * counter starts at `sequence`, so the order is also checked across its wrap.
 */
function releaseOrder(sequence: number): void {
  const pool = new RequestPool({ elements: 8, segMax: SEG_MAX });
  pool.words[PoolWord.SEQUENCE] = sequence | 0;
  const submit = (kind: RequestKindCode, sector: number, sectors: number) => {
    const state = pool.enqueue(request(kind, sector, sectors), 0, 0);
    assert.ok(state >= 0, "an element was free");
    return state;
  };
  // Element indexes follow submission here (a fresh pool hands out 0, 1, 2, …).
  const [a, b, c, d, e, f] = [0, 1, 2, 3, 4, 5];
  assert.equal(submit(RequestKind.WRITE, 0, 8), ElementState.PENDING, "A: write [0,8)");
  assert.equal(submit(RequestKind.READ, 0, 8), ElementState.BLOCKED, "B: read [0,8) behind A");
  assert.equal(
    submit(RequestKind.WRITE, 4, 8),
    ElementState.BLOCKED,
    "C: write [4,12) behind A, B",
  );
  assert.equal(submit(RequestKind.READ, 16, 8), ElementState.PENDING, "D: read [16,24)");
  assert.equal(submit(RequestKind.READ, 8, 4), ElementState.BLOCKED, "E: read [8,12) behind C");
  assert.equal(submit(RequestKind.FLUSH, 0, 0), ElementState.PENDING, "F: flush");
  const take = () => pool.takeRunnable();
  // Runnable requests are taken in submission order.
  assert.deepEqual([take(), take(), take(), take()], [a, d, f, -1]);
  assert.equal(pool.finish(a), 1, "A done: B runs; C still waits for B, E for C");
  assert.equal(pool.state(b), ElementState.PENDING);
  assert.deepEqual([pool.state(c), pool.state(e)], [ElementState.BLOCKED, ElementState.BLOCKED]);
  assert.deepEqual([take(), take()], [b, -1]);
  assert.equal(pool.finish(d), 0, "D and F release nothing");
  assert.equal(pool.finish(f), 0);
  assert.equal(pool.finish(b), 1, "B done: C runs; E still waits for C");
  assert.deepEqual([take(), take()], [c, -1]);
  assert.equal(pool.state(e), ElementState.BLOCKED);
  assert.equal(pool.finish(c), 1, "C done: E runs");
  assert.deepEqual([take(), take()], [e, -1]);
  pool.finish(e);
  assert.deepEqual(pool.counts(), { free: 8, pending: 0, runnable: 0, blocked: 0, busy: 0 });
}

Deno.test("BLOCKED: requests are released in submission order, one conflict at a time", () => {
  releaseOrder(0);
});

Deno.test("BLOCKED: the order holds across the wrap of the submission counter", () => {
  releaseOrder(0x7fff_fffe);
});

/** Queue 0's write [0,8) and queue 1's read of it behind it; queue 0 is then reset. */
function twoQueues() {
  const pool = new RequestPool({ elements: 4, segMax: SEG_MAX });
  assert.equal(pool.enqueue(request(RequestKind.WRITE, 0, 8), 0, 1), ElementState.PENDING);
  assert.equal(pool.enqueue(request(RequestKind.READ, 0, 8), 1, 1), ElementState.BLOCKED);
  return pool;
}

Deno.test("abandon: another queue's request released by the drop wakes a worker that found nothing", () => {
  const pool = new RequestPool({ elements: 4, segMax: SEG_MAX });
  const words = pool.words;
  // Queue 0: a write a worker runs, and a write behind it; queue 1: a read behind that one.
  pool.enqueue(request(RequestKind.WRITE, 0, 8), 0, 1);
  assert.equal(pool.takeRunnable(), 0);
  assert.equal(pool.enqueue(request(RequestKind.WRITE, 4, 8), 0, 1), ElementState.BLOCKED);
  assert.equal(pool.enqueue(request(RequestKind.READ, 8, 4), 1, 1), ElementState.BLOCKED);
  // Another worker looks for work, finds none and is about to sleep on WAKE …
  const seen = Atomics.load(words, PoolWord.WAKE);
  assert.equal(pool.takeRunnable(), -1);
  // … when queue 0 is reset: its waiting write is dropped, and queue 1's read may run.
  assert.equal(pool.abandon(0, 2), 1);
  assert.deepEqual(pool.counts(), { free: 2, pending: 1, runnable: 1, blocked: 0, busy: 1 });
  assert.equal(
    Atomics.wait(words, PoolWord.WAKE, seen, 0),
    "not-equal",
    "WAKE moved: the worker's sleep on what it saw ends at once",
  );
  assert.equal(pool.takeRunnable(), 2, "and it takes the read");
});

Deno.test("abandon: RUNNABLE goes from its old value to its new one, never through 0", () => {
  const pool = twoQueues();
  const seen = new Set<number>();
  // What a thread reading without the lock could see at each step of abandon().
  beforeAtomicOps(pool.words, () => seen.add(pool.runnableCount), () => pool.abandon(0, 2));
  seen.add(pool.runnableCount);
  // One runnable request before (queue 0's write), one after (queue 1's read).
  assert.deepEqual([...seen], [1], "a worker looking without the lock always sees 1");
});

/** The counters threads read without the pool's lock. */
const UNLOCKED_READS = {
  free: PoolWord.FREE_COUNT,
  runnable: PoolWord.RUNNABLE,
  busy: PoolWord.BUSY_COUNT,
} as const;

Deno.test("the counters read without the lock change only by Atomics read-modify-writes", () => {
  const pool = new RequestPool({ elements: 4, segMax: SEG_MAX });
  const words = pool.words;
  // What the counters would hold if only the atomic read-modify-writes changed them.
  const modelled = new Map<number, number>();
  const reset = () => {
    for (const index of Object.values(UNLOCKED_READS)) modelled.set(index, words[index]);
  };
  const { add, sub } = Atomics;
  Atomics.add = ((array: Int32Array, index: number, value: number) => {
    if (array === words && modelled.has(index)) modelled.set(index, modelled.get(index)! + value);
    return add(array, index, value);
  }) as typeof Atomics.add;
  Atomics.sub = ((array: Int32Array, index: number, value: number) => {
    if (array === words && modelled.has(index)) modelled.set(index, modelled.get(index)! - value);
    return sub(array, index, value);
  }) as typeof Atomics.sub;
  const steps: [string, () => unknown][] = [
    ["enqueue a write", () => pool.enqueue(request(RequestKind.WRITE, 0, 8), 0, 1)],
    ["enqueue a read behind it", () => pool.enqueue(request(RequestKind.READ, 0, 8), 1, 1)],
    ["enqueue a flush", () => pool.enqueue(request(RequestKind.FLUSH), 0, 1)],
    ["take the write", () => pool.takeRunnable()],
    ["finish it (releases the read)", () => pool.finish(0)],
    ["take the read", () => pool.takeRunnable()],
    ["enqueue a write behind the read", () => pool.enqueue(request(RequestKind.WRITE, 0, 8), 0, 1)],
    ["abandon queue 0 (the flush and that write)", () => pool.abandon(0, 2)],
    ["take: nothing is left", () => pool.takeRunnable()],
  ];
  try {
    reset();
    for (const [step, run] of steps) {
      run();
      for (const [name, index] of Object.entries(UNLOCKED_READS)) {
        assert.equal(words[index], modelled.get(index), `${step}: ${name}`);
      }
    }
  } finally {
    Atomics.add = add;
    Atomics.sub = sub;
  }
  assert.deepEqual(pool.counts(), { free: 3, pending: 0, runnable: 0, blocked: 0, busy: 1 });
});

/**
 * A parsed DISCARD or WRITE_ZEROES of sector `ranges` (as `parseRequest`
 * records it: its ranges, and the span they lie in).
 */
function ranged(kind: RequestKindCode, ranges: readonly (readonly [number, number])[]): BlkRequest {
  const r = new BlkRequest(SEG_MAX);
  const f = r.fields;
  f[r.base + RequestField.KIND] = kind;
  f[r.base + RequestField.SEGMENT_COUNT] = ranges.length;
  ranges.forEach(([start, end], i) => {
    f[r.base + RequestField.SEGMENTS + 2 * i] = start;
    f[r.base + RequestField.SEGMENTS + 2 * i + 1] = end - start;
  });
  const low = Math.min(...ranges.map(([start]) => start));
  const high = Math.max(...ranges.map(([, end]) => end));
  f[r.base + RequestField.SECTOR] = low;
  f[r.base + RequestField.DATA_LENGTH] = (high - low) * SECTOR_SIZE;
  return r;
}

for (const kind of ["DISCARD", "WRITE_ZEROES"] as const) {
  Deno.test(`BLOCKED: each range of a ${kind} conflicts as a write's does; the gaps between them do not`, () => {
    const code = RequestKind[kind];
    // Earlier: ranges [0, 4) and [20, 24); their span [0, 24) holds gaps.
    const cases: [string, BlkRequest, number][] = [
      ["a write in the gap", request(RequestKind.WRITE, 8, 4), ElementState.PENDING],
      ["a read in the gap", request(RequestKind.READ, 4, 16), ElementState.PENDING],
      ["a write over the second range", request(RequestKind.WRITE, 22, 1), ElementState.BLOCKED],
      ["a read of the first range", request(RequestKind.READ, 3, 2), ElementState.BLOCKED],
      ["a discard of the gap", ranged(RequestKind.DISCARD, [[4, 20]]), ElementState.PENDING],
      [
        "a write-zeroes meeting the second range",
        ranged(RequestKind.WRITE_ZEROES, [[10, 11], [23, 30]]),
        ElementState.BLOCKED,
      ],
      ["a flush", request(RequestKind.FLUSH), ElementState.PENDING],
    ];
    for (const [what, later, expected] of cases) {
      const pool = new RequestPool({ elements: 4, segMax: SEG_MAX });
      assert.equal(pool.enqueue(ranged(code, [[0, 4], [20, 24]]), 0, 0), ElementState.PENDING);
      assert.equal(pool.enqueue(later, 0, 0), expected, what);
    }
    // And it waits behind an earlier read it would change.
    const pool = new RequestPool({ elements: 4, segMax: SEG_MAX });
    assert.equal(pool.enqueue(request(RequestKind.READ, 2, 1), 0, 0), ElementState.PENDING);
    assert.equal(pool.enqueue(ranged(code, [[0, 4]]), 0, 0), ElementState.BLOCKED);
  });
}

Deno.test("no_bst_block (ordered false): an overlapping write, read or discard is not held back", () => {
  const pool = new RequestPool({ elements: 8, segMax: SEG_MAX });
  const unordered = (r: BlkRequest) => pool.enqueue(r, 0, 0, 0, false);
  assert.equal(unordered(request(RequestKind.WRITE, 0, 8)), ElementState.PENDING);
  assert.equal(unordered(request(RequestKind.WRITE, 0, 8)), ElementState.PENDING);
  assert.equal(unordered(request(RequestKind.READ, 4, 8)), ElementState.PENDING);
  assert.equal(unordered(ranged(RequestKind.DISCARD, [[2, 3]])), ElementState.PENDING);
  assert.equal(pool.counts().blocked, 0);
  // The same request from an ordered device waits.
  assert.equal(pool.enqueue(request(RequestKind.READ, 4, 8), 0, 0), ElementState.BLOCKED);
});
