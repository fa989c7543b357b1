/**
 * One test per guest-triggerable bug class that peers shipped (reference
 * §6), driven through the legacy BAR with hand-written rings. Each asserts
 * the exact outcome — status byte and used length, or a broken queue with
 * its fault code — and that guest memory outside the device-writable
 * buffers of answered chains and the used ring is byte-for-byte unchanged.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { BlkRequest, parseRequest } from "../../src/blk/request.ts";
import { BlkConfig, REQUEST_HEADER_SIZE, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { UsedRing } from "../../src/virtio/ring_layout.ts";
import {
  DESCRIPTOR_SIZE,
  DescriptorFlag,
  DeviceStatus,
  featureBit,
  RingFeature,
} from "../../src/virtio/spec.ts";
import { Pop, QueueFault, type QueueFaultCode, SplitQueue } from "../../src/virtio/split_queue.ts";
import { DescriptorChain } from "../../src/virtio/descriptor_chain.ts";
import { ISR_CONFIG, ISR_QUEUE } from "../../src/virtio/transport_state.ts";
import { pattern } from "../helpers/harness.ts";
import {
  type BuiltRequest,
  type ChainBuffer,
  type Desc,
  type Range,
  RawGuest,
  type RawGuestOptions,
  STATUS_UNTOUCHED,
} from "../helpers/raw_guest.ts";
import { TruncatedBackend, WindowBackend } from "./backends.ts";

const SECTOR = 512;
const { OK, IOERR, UNSUPP } = RequestStatus;
const { NEXT, WRITE, INDIRECT } = DescriptorFlag;
const TWO_POW_64 = 1n << 64n;

// ---------------------------------------------------------------------------
// Helpers

/** What was true just before a kick. */
interface Kick {
  readonly before: Uint8Array;
  readonly usedIdx: number;
  readonly interrupts: number;
}

/** Offers `heads`, snapshots guest memory, then kicks. */
function kick(g: RawGuest, ...heads: number[]): Kick {
  g.takeIsr();
  g.offer(...heads);
  const k = { before: g.snapshot(), usedIdx: g.usedIdx, interrupts: g.interrupts };
  g.notify();
  return k;
}

/** An expected used element, and the status byte that goes with it (if any). */
interface Answer {
  readonly head: number;
  readonly len: number;
  readonly status?: { readonly at: number; readonly value: number };
}

/** A request answered with `value` and used length 1: only its status byte may change. */
function statusOnly(r: { head: number; status: number }, value: number): Answer {
  return { head: r.head, len: 1, status: { at: r.status, value } };
}

function byteAt(address: number): Range {
  return { start: address, length: 1 };
}

/**
 * The queue is healthy, the used ring holds exactly `answers` since the
 * kick, and guest memory changed only inside `allowed` and the used ring.
 */
function expectAnswered(g: RawGuest, k: Kick, answers: Answer[], allowed: Range[] = []): void {
  assert.deepEqual(g.usedSince(k.usedIdx), answers.map((a) => ({ id: a.head, len: a.len })));
  for (const a of answers) {
    if (a.status) assert.equal(g.u8(a.status.at), a.status.value, `status of head ${a.head}`);
  }
  assert.equal(g.queue.fault, QueueFault.NONE);
  assert.equal(g.queue.inFlight, 0);
  assert.equal(g.status & DeviceStatus.DEVICE_NEEDS_RESET, 0);
  const fromAnswers = answers.flatMap((a) => (a.status ? [byteAt(a.status.at)] : []));
  g.assertChangedOnly(k.before, [...fromAnswers, ...allowed, g.usedRange]);
}

/**
 * The kick broke the queue with `fault`: nothing was returned or written
 * (used.flags aside), DEVICE_NEEDS_RESET is set and one config interrupt was
 * raised. Then: a valid request is not served until a reset, after which the
 * device works again.
 */
function expectBroken(g: RawGuest, k: Kick, fault: QueueFaultCode, served: Answer[] = []): void {
  const name = Object.entries(QueueFault).find(([, v]) => v === g.queue.fault)?.[0];
  assert.equal(g.queue.fault, fault, `queue fault is ${name}`);
  assert.deepEqual(
    g.usedSince(k.usedIdx),
    served.map((a) => ({ id: a.head, len: a.len })),
    "only the chains ahead of the bad one were returned",
  );
  for (const a of served) if (a.status) assert.equal(g.u8(a.status.at), a.status.value);
  assert.equal(g.status & DeviceStatus.DEVICE_NEEDS_RESET, DeviceStatus.DEVICE_NEEDS_RESET);
  // Without EVENT_IDX every returned chain interrupts; the fault adds one.
  assert.equal(g.interrupts, k.interrupts + served.length + 1);
  assert.equal(
    g.takeIsr(),
    ISR_CONFIG | (served.length > 0 ? ISR_QUEUE : 0),
    "a configuration-change interrupt",
  );
  const statuses = served.flatMap((a) => (a.status ? [byteAt(a.status.at)] : []));
  g.assertChangedOnly(k.before, [
    ...statuses,
    served.length > 0 ? g.usedRange : {
      start: g.ring.used + UsedRing.FLAGS,
      length: 2,
    },
  ]);

  const valid = g.request({ type: RequestType.OUT, sector: 0, data: pattern(SECTOR, 77) });
  const again = kick(g, valid.head);
  assert.deepEqual(g.changes(again.before), [], "a broken queue pops nothing");
  assert.equal(g.interrupts, again.interrupts, "and does not interrupt again");
  assert.equal(g.queue.fault, fault);

  g.init();
  const after = g.request({ type: RequestType.OUT, sector: 0, data: pattern(SECTOR, 78) });
  const k2 = kick(g, after.head);
  expectAnswered(g, k2, [statusOnly(after, OK)]);
}

/** A 16-byte request header in guest memory. */
function header(g: RawGuest, type: number, sector: number | bigint = 0): number {
  const at = g.alloc(REQUEST_HEADER_SIZE);
  g.writeHeader(at, type, sector);
  return at;
}

/** A status byte preset to {@linkcode STATUS_UNTOUCHED}. */
function statusByte(g: RawGuest): number {
  return g.alloc(1, STATUS_UNTOUCHED);
}

/** Writes `buffers` as a direct chain on fresh descriptor indexes. */
function chain(g: RawGuest, buffers: ChainBuffer[]): number {
  return g.chain(buffers, g.takeDescriptors(buffers.length));
}

/** A well-formed OUT request of one sector, to place next to a bad one. */
function goodWrite(g: RawGuest, sector = 0): BuiltRequest {
  return g.request({ type: RequestType.OUT, sector, data: pattern(SECTOR, sector + 1) });
}

function guest(options: RawGuestOptions = {}): RawGuest {
  return RawGuest.create(options);
}

/**
 * Offers `head` again (it must not be in flight) and parses it as the
 * device does, with the device's limits: the reason it is rejected.
 */
function reasonRejected(g: RawGuest, head: number): string {
  g.offer(head);
  const view = new SplitQueue(g.memory, g.disk.device.queueState);
  const popped = new DescriptorChain(g.disk.device.maxChain);
  assert.equal(view.beginDrain(), true);
  assert.equal(view.pop(popped), Pop.CHAIN);
  view.endDrain();
  const segMax = g.read(LegacyRegister.CONFIG + BlkConfig.SEG_MAX, 4);
  const parsed = new BlkRequest(segMax);
  parseRequest(popped, g.memory, { capacity: g.disk.device.capacity, segMax }, parsed);
  return parsed.describe().error;
}

// ---------------------------------------------------------------------------
// Class 1

Deno.test("§6 class 1: avail.idx running more than N ahead breaks the queue before anything is popped", async (t) => {
  await t.step("N ahead is a full ring: every request is served", async () => {
    const g = guest({ device: { queueSize: 8 } });
    const requests = Array.from(
      { length: 8 },
      (_, i) =>
        g.request({ type: RequestType.OUT, sector: i, data: pattern(SECTOR, i), indirect: true }),
    );
    const k = kick(g, ...requests.map((r) => r.head));
    expectAnswered(g, k, requests.map((r) => statusOnly(r, OK)));
    await g.close();
  });

  for (const ahead of [9, 0x8000, 0xffff]) {
    await t.step(`${ahead} ahead of the device (queue size 8)`, async () => {
      const g = guest({ device: { queueSize: 8 } });
      const r = g.request({ type: RequestType.OUT, sector: 0, data: pattern(SECTOR, 1) });
      for (let slot = 0; slot < 8; slot++) g.setAvailEntry(slot, r.head);
      g.availIdx = ahead;
      const k = kick(g);
      assert.equal(g.u8(r.status), STATUS_UNTOUCHED);
      assert.ok(g.medium.every((b) => b === 0), "nothing reached the disk");
      expectBroken(g, k, QueueFault.AVAIL_INDEX_TOO_FAR);
      await g.close();
    });
  }

  await t.step("after a wrap of the 16-bit index, N + 1 ahead is still caught", async () => {
    const g = guest({ device: { queueSize: 8 } });
    // Drive both indexes to 0xfff8, eight flushes per kick.
    const r = g.request({ type: RequestType.FLUSH, indirect: true });
    for (let i = 0; i < 0xfff8 / 8; i++) g.submit(...new Array(8).fill(r.head));
    assert.equal(g.usedIdx, 0xfff8);
    assert.equal(g.queue.fault, QueueFault.NONE);
    g.availIdx = 0xfff8 + 9; // wraps to 1: 9 ahead
    const k = kick(g);
    expectBroken(g, k, QueueFault.AVAIL_INDEX_TOO_FAR);
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 2

Deno.test("§6 class 2: a head offered again while it is in flight breaks the queue; offered again after completion it is served again", async (t) => {
  await t.step(
    "a drainer holding a popped chain refuses the same head (HEAD_IN_FLIGHT)",
    async () => {
      // An engine that keeps chains in flight (the blockif workers) pops through
      // its own SplitQueue view of the device's queue state.
      const g = guest();
      const r = goodWrite(g);
      g.offer(r.head, r.head);
      const before = g.snapshot();
      const drainer = new SplitQueue(g.memory, g.disk.device.queueState);
      const popped = new DescriptorChain(g.disk.device.maxChain);
      assert.equal(drainer.beginDrain(), true);
      assert.equal(drainer.pop(popped), Pop.CHAIN);
      assert.equal(popped.head, r.head);
      assert.equal(drainer.pop(popped), Pop.BROKEN);
      drainer.endDrain();
      assert.equal(g.queue.fault, QueueFault.HEAD_IN_FLIGHT);
      assert.equal(g.queue.inFlight, 1, "only the first pop is in flight");
      assert.equal(g.usedIdx, 0);
      g.assertChangedOnly(before, [{ start: g.ring.used + UsedRing.FLAGS, length: 2 }]);
      await g.close();
    },
  );

  await t.step(
    "the in-process engine completes a chain before the next pop: a repeat is a new request",
    async () => {
      const g = guest();
      const r = goodWrite(g);
      const k = kick(g, r.head, r.head);
      expectAnswered(g, k, [statusOnly(r, OK), statusOnly(r, OK)]);
      await g.close();
    },
  );
});

// ---------------------------------------------------------------------------
// Class 3

Deno.test("§6 class 3: descriptor loops and over-long chains break the queue (CHAIN_TOO_LONG)", async (t) => {
  await t.step("a loop of two descriptors", async () => {
    const g = guest();
    const h = header(g, RequestType.OUT);
    g.setDesc(0, { addr: h, len: 16, flags: NEXT, next: 1 });
    g.setDesc(1, { addr: h, len: 16, flags: NEXT, next: 0 });
    expectBroken(g, kick(g, 0), QueueFault.CHAIN_TOO_LONG);
    await g.close();
  });

  await t.step("a descriptor that points at itself, in the middle of a chain", async () => {
    const g = guest();
    const h = header(g, RequestType.OUT);
    g.setDesc(3, { addr: h, len: 16, flags: NEXT, next: 9 });
    g.setDesc(9, { addr: h, len: 16, flags: NEXT, next: 9 });
    expectBroken(g, kick(g, 3), QueueFault.CHAIN_TOO_LONG);
    await g.close();
  });

  await t.step("a loop inside an indirect table", async () => {
    const g = guest();
    const h = header(g, RequestType.OUT);
    const table = g.alloc(3 * DESCRIPTOR_SIZE);
    g.writeTable(table, [
      { addr: h, len: 16, flags: NEXT, next: 1 },
      { addr: h, len: 16, flags: NEXT, next: 2 },
      { addr: h, len: 16, flags: NEXT, next: 1 },
    ]);
    g.setDesc(0, { addr: table, len: 3 * DESCRIPTOR_SIZE, flags: INDIRECT });
    expectBroken(g, kick(g, 0), QueueFault.CHAIN_TOO_LONG);
    await g.close();
  });

  await t.step("an indirect table longer than the longest chain", async () => {
    // Queue size 8 and seg_max 6: at most 8 descriptors per chain.
    const g = guest({ device: { queueSize: 8 } });
    assert.equal(g.disk.device.maxChain, 8);
    const h = header(g, RequestType.FLUSH);
    const s = statusByte(g);
    const table = g.alloc(9 * DESCRIPTOR_SIZE);
    const entries: Desc[] = [{ addr: h, len: 16, flags: NEXT, next: 1 }];
    for (let i = 1; i < 8; i++) entries.push({ addr: h, len: 16, flags: NEXT, next: i + 1 });
    entries.push({ addr: s, len: 1, flags: WRITE, next: 0 });
    g.writeTable(table, entries);
    g.setDesc(0, { addr: table, len: 9 * DESCRIPTOR_SIZE, flags: INDIRECT });
    expectBroken(g, kick(g, 0), QueueFault.CHAIN_TOO_LONG);
    await g.close();
  });

  await t.step("direct descriptors followed by a table: 8 buffers pass, 9 break", async () => {
    const g = guest({ device: { queueSize: 8 } });
    const data = g.alloc(6 * SECTOR);
    g.writeBytes(data, pattern(6 * SECTOR, 3));
    const build = (tableEntries: number) => {
      // 7 direct descriptors (header + data), then a table with the rest.
      const h = header(g, RequestType.OUT);
      const s = statusByte(g);
      const direct: ChainBuffer[] = [{ addr: h, len: 16 }];
      for (let i = 0; i < 6; i++) direct.push({ addr: data + i * SECTOR, len: SECTOR });
      const indexes = g.takeDescriptors(8);
      g.chain(direct, indexes.slice(0, 7));
      g.setDesc(indexes[6], {
        addr: data + 5 * SECTOR,
        len: SECTOR,
        flags: NEXT,
        next: indexes[7],
      });
      const table = g.alloc(tableEntries * DESCRIPTOR_SIZE);
      const rest = [];
      for (let i = 1; i < tableEntries; i++) rest.push({ addr: h, len: 0, flags: NEXT, next: i });
      rest.push({ addr: s, len: 1, flags: WRITE, next: 0 });
      g.writeTable(table, rest);
      g.setDesc(indexes[7], { addr: table, len: tableEntries * DESCRIPTOR_SIZE, flags: INDIRECT });
      return { head: indexes[0], status: s };
    };
    const fits = build(1);
    expectAnswered(g, kick(g, fits.head), [statusOnly(fits, OK)]);
    assert.deepEqual(g.medium.subarray(0, 6 * SECTOR), pattern(6 * SECTOR, 3));
    const tooLong = build(2);
    expectBroken(g, kick(g, tooLong.head), QueueFault.CHAIN_TOO_LONG);
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 4

Deno.test("§6 class 4: head, next, queue-select and queue-notify indexes out of range", async (t) => {
  for (const head of [64, 65, 0xffff]) {
    await t.step(`avail entry ${head} (queue size 64): HEAD_OUT_OF_RANGE`, async () => {
      const g = guest();
      // The good request ahead of it is served; then the queue breaks.
      const ahead = goodWrite(g);
      const k = kick(g, ahead.head, head);
      expectBroken(g, k, QueueFault.HEAD_OUT_OF_RANGE, [statusOnly(ahead, OK)]);
      await g.close();
    });
  }

  await t.step("next = N in the descriptor table: NEXT_OUT_OF_RANGE", async () => {
    const g = guest();
    const h = header(g, RequestType.OUT);
    g.setDesc(0, { addr: h, len: 16, flags: NEXT, next: 64 });
    expectBroken(g, kick(g, 0), QueueFault.NEXT_OUT_OF_RANGE);
    await g.close();
  });

  await t.step("next beyond the indirect table's entries: NEXT_OUT_OF_RANGE", async () => {
    const g = guest();
    const h = header(g, RequestType.OUT);
    const table = g.alloc(4 * DESCRIPTOR_SIZE);
    g.writeTable(table, [{ addr: h, len: 16, flags: NEXT, next: 2 }, {
      addr: h,
      len: 16,
      flags: NEXT,
      next: 2,
    }]);
    // The table holds two entries; index 2 would read past it.
    g.setDesc(0, { addr: table, len: 2 * DESCRIPTOR_SIZE, flags: INDIRECT });
    expectBroken(g, kick(g, 0), QueueFault.NEXT_OUT_OF_RANGE);
    await g.close();
  });

  await t.step("QUEUE_NOTIFY and QUEUE_SEL beyond the one queue are ignored", async () => {
    const g = guest();
    const r = goodWrite(g);
    g.offer(r.head);
    const before = g.snapshot();
    for (const queue of [1, 64, 0xffff]) {
      g.notify(queue);
      g.write(14, 2, queue); // QUEUE_SEL
      g.write(8, 4, 3); // QUEUE_PFN of that queue
    }
    assert.deepEqual(g.changes(before), []);
    g.write(14, 2, 0);
    g.notify(0);
    assert.equal(g.u8(r.status), OK);
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 5

Deno.test("§6 class 5: malformed indirect tables break the queue", async (t) => {
  const cases: { name: string; fault: QueueFaultCode; build: (g: RawGuest) => number }[] = [
    {
      name: "zero length",
      fault: QueueFault.INDIRECT_BAD_LENGTH,
      build: (g) => {
        g.setDesc(0, { addr: g.alloc(DESCRIPTOR_SIZE), len: 0, flags: INDIRECT });
        return 0;
      },
    },
    {
      name: "length not a multiple of 16",
      fault: QueueFault.INDIRECT_BAD_LENGTH,
      build: (g) => {
        const table = validTable(g, 2);
        g.setDesc(0, { addr: table, len: 24, flags: INDIRECT });
        return 0;
      },
    },
    {
      name: "an indirect descriptor inside the table",
      fault: QueueFault.INDIRECT_NESTED,
      build: (g) => {
        const inner = validTable(g, 2);
        const outer = g.alloc(2 * DESCRIPTOR_SIZE);
        g.writeTable(outer, [
          { addr: header(g, RequestType.FLUSH), len: 16, flags: NEXT, next: 1 },
          { addr: inner, len: 2 * DESCRIPTOR_SIZE, flags: INDIRECT },
        ]);
        g.setDesc(0, { addr: outer, len: 2 * DESCRIPTOR_SIZE, flags: INDIRECT });
        return 0;
      },
    },
    {
      name: "a table that crosses the end of guest memory",
      fault: QueueFault.INDIRECT_OUTSIDE_MEMORY,
      build: (g) => {
        g.setDesc(0, { addr: g.memory.size - 16, len: 32, flags: INDIRECT });
        return 0;
      },
    },
    {
      name: "a table whose address + length overflows 64 bits",
      fault: QueueFault.INDIRECT_OUTSIDE_MEMORY,
      build: (g) => {
        g.setDesc(0, { addr: TWO_POW_64 - 16n, len: 32, flags: INDIRECT });
        return 0;
      },
    },
    {
      name: "INDIRECT together with NEXT",
      fault: QueueFault.INDIRECT_WITH_NEXT,
      build: (g) => {
        const table = validTable(g, 2);
        g.setDesc(0, { addr: table, len: 32, flags: INDIRECT | NEXT, next: 1 });
        g.setDesc(1, { addr: statusByte(g), len: 1, flags: WRITE });
        return 0;
      },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const g = guest();
      expectBroken(g, kick(g, c.build(g)), c.fault);
      await g.close();
    });
  }

  await t.step("INDIRECT without VIRTIO_RING_F_INDIRECT_DESC negotiated", async () => {
    const g = guest({ features: ~featureBit(RingFeature.INDIRECT_DESC) });
    const table = validTable(g, 2);
    g.setDesc(0, { addr: table, len: 32, flags: INDIRECT });
    expectBroken(g, kick(g, 0), QueueFault.INDIRECT_NOT_NEGOTIATED);
    await g.close();
  });

  await t.step(
    "the same table, well formed, is served; the table's WRITE flag is ignored",
    async () => {
      const g = guest();
      const table = validTable(g, 2);
      const statusAt = Number(g.view.getBigUint64(table + DESCRIPTOR_SIZE, true));
      g.setDesc(0, { addr: table, len: 32, flags: INDIRECT | WRITE });
      expectAnswered(g, kick(g, 0), [statusOnly({ head: 0, status: statusAt }, OK)]);
      await g.close();
    },
  );
});

/** An indirect table holding a FLUSH request: header, then status. */
function validTable(g: RawGuest, entries: 2): number {
  const table = g.alloc(entries * DESCRIPTOR_SIZE);
  g.writeTable(table, [
    { addr: header(g, RequestType.FLUSH), len: 16, flags: NEXT, next: 1 },
    { addr: statusByte(g), len: 1, flags: WRITE },
  ]);
  return table;
}

// ---------------------------------------------------------------------------
// Class 6

Deno.test("§6 class 6: zero-length and huge buffers, and lengths that add up past 2^32, complete IOERR", async (t) => {
  await t.step("a zero-length data buffer", async () => {
    const g = guest();
    const s = statusByte(g);
    const data = g.alloc(SECTOR, 0x5a);
    const head = chain(g, [
      { addr: header(g, RequestType.IN), len: 16 },
      { addr: data, len: 0, write: true },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
    await g.close();
  });

  await t.step("a zero-length header", async () => {
    const g = guest();
    const s = statusByte(g);
    const head = chain(g, [
      { addr: header(g, RequestType.OUT), len: 0 },
      { addr: g.alloc(SECTOR), len: SECTOR },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
    await g.close();
  });

  await t.step("a 4 GiB - 1 data buffer", async () => {
    const g = guest();
    const s = statusByte(g);
    const data = g.alloc(SECTOR);
    const head = chain(g, [
      { addr: header(g, RequestType.IN), len: 16 },
      { addr: data, len: 0xffff_ffff, write: true },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
    await g.close();
  });

  await t.step(
    "257 readable buffers of 16 MiB each: the sum wraps a 32-bit counter to 528",
    async () => {
      // 256 × 16 MiB = 2^32, so in u32 arithmetic the chain looks like a
      // 16-byte header, 512 bytes of data and a status byte.
      const memoryBytes = 16 << 20;
      const g = guest({ memoryBytes, device: { queueSize: 512, segMax: 510 } });
      const h = header(g, RequestType.OUT);
      const s = statusByte(g);
      const data = g.alloc(SECTOR);
      g.writeBytes(data, pattern(SECTOR, 5));
      const buffers: ChainBuffer[] = [{ addr: h, len: 16 }];
      for (let i = 0; i < 256; i++) buffers.push({ addr: 0, len: memoryBytes });
      buffers.push({ addr: data, len: SECTOR });
      buffers.push({ addr: s, len: 1, write: true });
      const head = g.indirectChain(0, g.alloc(buffers.length * DESCRIPTOR_SIZE), buffers);
      expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
      assert.ok(g.medium.every((b) => b === 0), "nothing reached the disk");
      // Summed without wrapping, the data (2^32 + 512 bytes) would not fit
      // the disk either: the IOERR must come from the size check itself.
      assert.equal(reasonRejected(g, head), "CHAIN_TOO_LARGE");
      await g.close();
    },
  );
});

// ---------------------------------------------------------------------------
// Class 7

Deno.test("§6 class 7: addresses outside guest memory complete IOERR (or, for the status, used length 0); ending exactly at the end is valid", async (t) => {
  // Where a buffer of `len` bytes is put so that it is not wholly in guest memory.
  const outside: [string, (g: RawGuest, len: number) => number | bigint][] = [
    ["starts at the end of memory", (g) => g.memory.size],
    ["crosses the end of memory", (g, len) => g.memory.size - len / 2],
    ["address + length overflows 64 bits", (_, len) => TWO_POW_64 - BigInt(len / 2)],
    ["address at 2^53 (not exactly representable in a double)", () => 1n << 53n],
    ["address at 2^64 - 1", () => TWO_POW_64 - 1n],
  ];
  for (const [name, where] of outside) {
    await t.step(`read into a data buffer that ${name}`, async () => {
      const g = guest();
      const s = statusByte(g);
      const head = chain(g, [
        { addr: header(g, RequestType.IN), len: 16 },
        { addr: where(g, SECTOR), len: SECTOR, write: true },
        { addr: s, len: 1, write: true },
      ]);
      expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
      await g.close();
    });
    await t.step(`a header that ${name}`, async () => {
      const g = guest();
      const s = statusByte(g);
      const head = chain(g, [{ addr: where(g, 16), len: 16 }, { addr: s, len: 1, write: true }]);
      expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
      await g.close();
    });
    await t.step(`a status byte that ${name}: returned with used length 0`, async () => {
      const g = guest();
      const head = chain(g, [
        { addr: header(g, RequestType.FLUSH), len: 16 },
        { addr: where(g, 2), len: 2, write: true },
      ]);
      expectAnswered(g, kick(g, head), [{ head, len: 0 }]);
      await g.close();
    });
  }

  await t.step("a data buffer and a status byte ending exactly at the end of memory", async () => {
    const g = guest();
    g.medium.set(pattern(SECTOR, 8), 3 * SECTOR);
    const end = g.memory.size;
    const head = chain(g, [
      { addr: header(g, RequestType.IN, 3), len: 16 },
      { addr: end - 1 - SECTOR, len: SECTOR, write: true },
      { addr: end - 1, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [{
      head,
      len: SECTOR + 1,
      status: { at: end - 1, value: OK },
    }], [{ start: end - 1 - SECTOR, length: SECTOR }]);
    assert.deepEqual(g.readBytes(end - 1 - SECTOR, SECTOR), pattern(SECTOR, 8));
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 8

Deno.test("§6 class 8: sectors past the capacity, and sector * 512 overflowing, complete IOERR and touch no medium byte", async (t) => {
  const capacity = 128; // 64 KiB window
  const cases: [string, bigint, number, number][] = [
    ["the last sector", BigInt(capacity - 1), SECTOR, OK],
    ["the whole disk", 0n, capacity * SECTOR, OK],
    ["sector = capacity", BigInt(capacity), SECTOR, IOERR],
    ["the last sector and one more", BigInt(capacity - 1), 2 * SECTOR, IOERR],
    ["sector 2^55 (× 512 wraps to 0 in 64 bits)", 1n << 55n, SECTOR, IOERR],
    ["sector 2^54 + 1 (× 512 wraps to 512)", (1n << 54n) + 1n, SECTOR, IOERR],
    ["sector 2^64 - 1", TWO_POW_64 - 1n, SECTOR, IOERR],
    ["sector 2^53 - 1", (1n << 53n) - 1n, SECTOR, IOERR],
  ];
  for (const [name, sector, length, status] of cases) {
    for (const type of [RequestType.OUT, RequestType.IN]) {
      await t.step(`${type === RequestType.OUT ? "write" : "read"} of ${name}`, async () => {
        // The device's window is 64 KiB at offset 4096 of a larger medium (range=).
        const whole = new Uint8Array(4096 + capacity * SECTOR + 4096).fill(0xaa);
        const medium = whole.slice();
        let window: WindowBackend | undefined;
        const g = guest({
          diskBytes: capacity * SECTOR,
          device: {
            engine: (ctx) =>
              new InlineEngine(ctx, window = new WindowBackend(medium, 4096, capacity * SECTOR)),
          },
        });
        const r = g.request({
          type,
          sector,
          data: type === RequestType.OUT ? pattern(length, 9) : length,
        });
        const k = kick(g, r.head);
        const readOk = type === RequestType.IN && status === OK;
        expectAnswered(
          g,
          k,
          [{ head: r.head, len: readOk ? length + 1 : 1, status: { at: r.status, value: status } }],
          readOk ? r.writable : [],
        );
        for (const call of window!.calls) {
          if (call.op === "flush") continue;
          assert.ok(call.offset + call.length <= capacity * SECTOR, "inside the window");
        }
        assert.deepEqual(medium.subarray(0, 4096), whole.subarray(0, 4096), "bytes before");
        assert.deepEqual(medium.subarray(4096 + capacity * SECTOR), whole.subarray(0, 4096));
        if (status !== OK) {
          assert.deepEqual(window!.calls, [], "the medium was not asked");
          assert.deepEqual(medium, whole);
        }
        await g.close();
      });
    }
  }
});

// ---------------------------------------------------------------------------
// Class 9

Deno.test("§6 class 9: bad headers complete IOERR; a missing, read-only or empty status is returned with used length 0", async (t) => {
  await t.step("a device-writable header", async () => {
    const g = guest();
    const s = statusByte(g);
    const h = header(g, RequestType.IN);
    const data = g.alloc(SECTOR, 0x33);
    const head = chain(g, [
      { addr: h, len: 16, write: true },
      { addr: data, len: SECTOR, write: true },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
    await g.close();
  });

  await t.step("a 12-byte header", async () => {
    const g = guest();
    const s = statusByte(g);
    const head = chain(g, [
      { addr: header(g, RequestType.FLUSH), len: 12 },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
    await g.close();
  });

  await t.step("a header split over two descriptors is a header (any layout)", async () => {
    const g = guest();
    const s = statusByte(g);
    const h = header(g, RequestType.OUT, 2);
    const data = g.alloc(SECTOR);
    g.writeBytes(data, pattern(SECTOR, 10));
    const head = chain(g, [
      { addr: h, len: 8 },
      { addr: h + 8, len: 8 },
      { addr: data, len: SECTOR },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, OK)]);
    assert.deepEqual(g.medium.subarray(2 * SECTOR, 3 * SECTOR), pattern(SECTOR, 10));
    await g.close();
  });

  const unanswerable: [string, (g: RawGuest) => ChainBuffer[]][] = [
    ["no status: the chain ends with readable data", (g) => [
      { addr: header(g, RequestType.OUT), len: 16 },
      { addr: g.alloc(SECTOR), len: SECTOR },
    ]],
    ["a read-only status byte", (g) => [
      { addr: header(g, RequestType.FLUSH), len: 16 },
      { addr: statusByte(g), len: 1 },
    ]],
    ["a zero-length status buffer", (g) => [
      { addr: header(g, RequestType.FLUSH), len: 16 },
      { addr: statusByte(g), len: 0, write: true },
    ]],
    ["a read whose writable data is followed by a readable buffer", (g) => [
      { addr: header(g, RequestType.IN), len: 16 },
      { addr: g.alloc(SECTOR), len: SECTOR, write: true },
      { addr: statusByte(g), len: 1 },
    ]],
  ];
  for (const [name, build] of unanswerable) {
    await t.step(name, async () => {
      const g = guest();
      const head = chain(g, build(g));
      expectAnswered(g, kick(g, head), [{ head, len: 0 }]);
      await g.close();
    });
  }

  const wrongDirection: [string, number, boolean][] = [
    ["a read with device-readable data", RequestType.IN, false],
    ["a write with device-writable data", RequestType.OUT, true],
    ["a flush with device-readable data", RequestType.FLUSH, false],
    ["a flush with device-writable data", RequestType.FLUSH, true],
    ["GET_ID with device-readable data", RequestType.GET_ID, false],
  ];
  for (const [name, type, dataWritable] of wrongDirection) {
    await t.step(`${name}: IOERR, the data untouched`, async () => {
      const g = guest();
      g.medium.fill(0x42);
      const r = g.request({ type, data: SECTOR, dataWritable });
      expectAnswered(g, kick(g, r.head), [statusOnly(r, IOERR)]);
      assert.ok(g.medium.every((b) => b === 0x42), "the disk is unchanged");
      await g.close();
    });
  }

  await t.step("a readable buffer after a writable one, then a status: IOERR", async () => {
    const g = guest();
    const s = statusByte(g);
    const head = chain(g, [
      { addr: header(g, RequestType.OUT), len: 16 },
      { addr: g.alloc(SECTOR), len: SECTOR, write: true },
      { addr: g.alloc(SECTOR), len: SECTOR },
      { addr: s, len: 1, write: true },
    ]);
    expectAnswered(g, kick(g, head), [statusOnly({ head, status: s }, IOERR)]);
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 10 (first half)

Deno.test("§6 class 10: every chain popped in a kick is returned, with a status or with used length 0", async () => {
  const g = guest();
  g.medium.set(pattern(2 * SECTOR, 11), 4 * SECTOR);
  const write = goodWrite(g, 1);
  const read = g.request({ type: RequestType.IN, sector: 4, data: 2 * SECTOR, indirect: true });
  const flush = g.request({ type: RequestType.FLUSH });
  const legacyFlush = g.request({ type: RequestType.FLUSH_OUT });
  const getId = g.request({ type: RequestType.GET_ID, data: 32 });
  const unknown = g.request({ type: 99, data: SECTOR, dataWritable: true });
  const discard = g.request({ type: RequestType.DISCARD, data: 16, dataWritable: false });
  const barrierWrite = g.request({
    type: 0x8000_0000 | RequestType.OUT,
    sector: 2,
    data: pattern(SECTOR, 12),
  });
  const unaligned = g.request({ type: RequestType.OUT, data: 100 });
  // GET_ID into 8 + 4 bytes: the serial is cut at 12, nothing written past the buffers.
  const idParts = [g.alloc(8, 0x77), g.alloc(4, 0x77)];
  const idStatus = statusByte(g);
  const shortId = chain(g, [
    { addr: header(g, RequestType.GET_ID), len: 16 },
    { addr: idParts[0], len: 8, write: true },
    { addr: idParts[1], len: 4, write: true },
    { addr: idStatus, len: 1, write: true },
  ]);
  const noStatus = chain(g, [{ addr: header(g, RequestType.FLUSH), len: 16 }]);
  const all = [write, read, flush, legacyFlush, getId, unknown, discard, barrierWrite, unaligned];
  const k = kick(g, ...all.map((r) => r.head), shortId, noStatus);
  expectAnswered(g, k, [
    statusOnly(write, OK),
    { head: read.head, len: 2 * SECTOR + 1, status: { at: read.status, value: OK } },
    statusOnly(flush, OK),
    statusOnly(legacyFlush, OK),
    { head: getId.head, len: 21, status: { at: getId.status, value: OK } },
    statusOnly(unknown, UNSUPP),
    statusOnly(discard, UNSUPP),
    statusOnly(barrierWrite, OK),
    statusOnly(unaligned, IOERR),
    { head: shortId, len: 13, status: { at: idStatus, value: OK } },
    { head: noStatus, len: 0 },
  ], [
    ...read.writable,
    { start: getId.data, length: 20 },
    { start: idParts[0], length: 8 },
    { start: idParts[1], length: 4 },
  ]);
  const serial = g.disk.device.serial;
  assert.deepEqual(g.readBytes(idParts[0], 8), serial.subarray(0, 8));
  assert.deepEqual(g.readBytes(idParts[1], 4), serial.subarray(8, 12));
  assert.deepEqual(g.readBytes(read.data, 2 * SECTOR), pattern(2 * SECTOR, 11));
  assert.deepEqual(g.readBytes(getId.data, 20), g.disk.device.serial);
  assert.deepEqual(g.medium.subarray(2 * SECTOR, 3 * SECTOR), pattern(SECTOR, 12));
  assert.equal(g.usedIdx, all.length + 2);
  await g.close();
});

// ---------------------------------------------------------------------------
// Class 11

Deno.test("§6 class 11: the device acts on its copy of the header and descriptors, whatever the guest rewrites during the I/O", async (t) => {
  /** A guest whose medium calls `duringIo` at the start of every transfer. */
  const racingGuest = (duringIo: (g: RawGuest) => void) => {
    let window: WindowBackend | undefined;
    const medium = new Uint8Array(1 << 20);
    const g: RawGuest = guest({
      device: {
        engine: (ctx) => new InlineEngine(ctx, window = new WindowBackend(medium, 0, 1 << 20)),
      },
    });
    window!.onCall = (call) => {
      if (call.op !== "flush") duringIo(g);
    };
    return { g, medium, window: window! };
  };

  await t.step(
    "a write: header type and sector, data and status descriptors rewritten",
    async () => {
      const decoy = { status: 0, data: 0 };
      const { g, medium, window } = racingGuest((g) => {
        // Header of head 0 becomes a read of sector 100; descriptors 1 and 2
        // now point at decoy buffers; the avail slot names another head.
        g.writeHeader(r.header, RequestType.IN, 100);
        g.setDesc(1, { addr: decoy.data, len: SECTOR, flags: WRITE | NEXT, next: 2 });
        g.setDesc(2, { addr: decoy.status, len: 1, flags: WRITE });
        g.setAvailEntry(0, 7);
      });
      decoy.status = statusByte(g);
      decoy.data = g.alloc(SECTOR, 0x11);
      const r = g.request({ type: RequestType.OUT, sector: 3, data: pattern(SECTOR, 13) });
      assert.equal(r.head, 0, "the chain is descriptors 0, 1 and 2, which the guest rewrites");
      const k = kick(g, r.head);
      assert.deepEqual(window.calls, [{ op: "write", offset: 3 * SECTOR, length: SECTOR }, {
        op: "flush",
      }]);
      assert.deepEqual(medium.subarray(3 * SECTOR, 4 * SECTOR), pattern(SECTOR, 13));
      assert.ok(medium.subarray(100 * SECTOR, 101 * SECTOR).every((b) => b === 0));
      assert.equal(g.u8(decoy.status), STATUS_UNTOUCHED);
      assert.deepEqual(g.usedSince(k.usedIdx), [{ id: 0, len: 1 }]);
      assert.equal(g.u8(r.status), OK);
      // Besides the guest's own rewrites, only the status byte and the used ring changed.
      const rewritten = [
        { start: r.header, length: 16 },
        { start: g.ring.desc + DESCRIPTOR_SIZE, length: 2 * DESCRIPTOR_SIZE },
        { start: g.ring.avail + 4, length: 2 },
      ];
      g.assertChangedOnly(k.before, [...rewritten, byteAt(r.status), g.usedRange]);
      await g.close();
    },
  );

  await t.step("a read through an indirect table rewritten during the I/O", async () => {
    let table = 0;
    const decoy = { status: 0 };
    const { g, medium } = racingGuest((g) => {
      g.writeTable(table, [
        { addr: r.header, len: 16, flags: NEXT, next: 1 },
        { addr: r.data, len: 16, flags: WRITE | NEXT, next: 2 },
        { addr: decoy.status, len: 1, flags: WRITE },
      ]);
      g.setDesc(r.head, { addr: table, len: 16, flags: INDIRECT });
    });
    decoy.status = statusByte(g);
    medium.set(pattern(2 * SECTOR, 14), 6 * SECTOR);
    const r = g.request({ type: RequestType.IN, sector: 6, data: 2 * SECTOR, indirect: true });
    table = Number(g.view.getBigUint64(g.ring.desc + DESCRIPTOR_SIZE * r.head, true));
    const k = kick(g, r.head);
    assert.deepEqual(g.usedSince(k.usedIdx), [{ id: r.head, len: 2 * SECTOR + 1 }]);
    assert.equal(g.u8(r.status), OK);
    assert.equal(g.u8(decoy.status), STATUS_UNTOUCHED);
    assert.deepEqual(g.readBytes(r.data, 2 * SECTOR), pattern(2 * SECTOR, 14));
    const rewritten = [
      { start: table, length: 3 * DESCRIPTOR_SIZE },
      { start: g.ring.desc + DESCRIPTOR_SIZE * r.head, length: DESCRIPTOR_SIZE },
    ];
    g.assertChangedOnly(k.before, [...rewritten, ...r.writable, g.usedRange]);
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 13

Deno.test("§6 class 13: short reads and writes, and failed syncs, of the medium complete IOERR", async (t) => {
  const truncated = (available: number) => {
    let medium: TruncatedBackend | undefined;
    const g = guest({
      diskBytes: 64 * SECTOR,
      device: {
        engine: (ctx) =>
          new InlineEngine(ctx, medium = new TruncatedBackend(64 * SECTOR, available)),
      },
    });
    return { g, medium: medium! };
  };

  await t.step("a read that crosses the end of what the medium holds", async () => {
    const { g, medium } = truncated(10 * SECTOR);
    medium.medium.set(pattern(10 * SECTOR, 15));
    const whole = g.request({ type: RequestType.IN, sector: 8, data: 2 * SECTOR });
    const short = g.request({ type: RequestType.IN, sector: 9, data: 2 * SECTOR });
    const k = kick(g, whole.head, short.head);
    expectAnswered(g, k, [
      { head: whole.head, len: 2 * SECTOR + 1, status: { at: whole.status, value: OK } },
      statusOnly(short, IOERR),
    ], [...whole.writable, ...short.writable]);
    assert.deepEqual(
      g.readBytes(whole.data, 2 * SECTOR),
      pattern(10 * SECTOR, 15).slice(8 * SECTOR),
    );
    await g.close();
  });

  await t.step("a write that crosses it", async () => {
    const { g } = truncated(10 * SECTOR);
    const short = g.request({ type: RequestType.OUT, sector: 9, data: pattern(2 * SECTOR, 16) });
    const k = kick(g, short.head);
    expectAnswered(g, k, [statusOnly(short, IOERR)]);
    await g.close();
  });

  await t.step("a write-through write whose sync fails, and a FLUSH whose sync fails", async () => {
    const { g, medium } = truncated(64 * SECTOR);
    medium.flushFails = true;
    const write = goodWrite(g, 1);
    const flush = g.request({ type: RequestType.FLUSH });
    const read = g.request({ type: RequestType.IN, sector: 1, data: SECTOR });
    const k = kick(g, write.head, flush.head, read.head);
    expectAnswered(g, k, [
      statusOnly(write, IOERR),
      statusOnly(flush, IOERR),
      { head: read.head, len: SECTOR + 1, status: { at: read.status, value: OK } },
    ], read.writable);
    await g.close();
  });
});

// ---------------------------------------------------------------------------
// Class 14

Deno.test("§6 class 14: across resets and ring re-enables, every used element names a head offered since the ring was enabled", async () => {
  const op = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant("submit" as const),
        count: fc.integer({ min: 1, max: 5 }),
        notify: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.constant({ kind: "notify" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "reset" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "pfnOff" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "pfnOn" as const }) },
  );
  const pfn = 1;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
      const g = guest({ device: { queueSize: 16 } });
      // Heads offered since the ring was last enabled, with how often.
      let offered = new Map<number, number>();
      let enabled = true;
      let seenUsed = 0;
      // Offered and not yet kicked: a correct guest keeps this <= N (class 1 is elsewhere).
      let pending = 0;
      const checkUsed = () => {
        for (const element of g.usedSince(seenUsed)) {
          const left = offered.get(element.id) ?? 0;
          assert.ok(left > 0, `used id ${element.id} was not offered since the ring was enabled`);
          offered.set(element.id, left - 1);
        }
        seenUsed = g.usedIdx;
      };
      const enable = () => {
        g.bytes.fill(0, g.ringBase, g.ringBase + 2 * 4096);
        g.write(8, 4, pfn);
        offered = new Map();
        seenUsed = 0;
        pending = 0;
        enabled = true;
      };
      for (const o of ops) {
        if (o.kind === "submit") {
          if (!enabled) continue;
          const heads = [];
          for (let i = 0; i < Math.min(o.count, 16 - pending); i++) {
            const r = g.request({ type: RequestType.FLUSH, indirect: true });
            heads.push(r.head);
            offered.set(r.head, (offered.get(r.head) ?? 0) + 1);
          }
          g.offer(...heads);
          pending += heads.length;
          if (o.notify) g.notify();
          if (o.notify) pending = 0;
        } else if (o.kind === "notify") {
          g.notify();
          if (enabled) pending = 0;
        } else if (o.kind === "reset") {
          g.write(18, 1, 0);
          g.init();
          offered = new Map();
          seenUsed = 0;
          pending = 0;
          enabled = true;
        } else if (o.kind === "pfnOff") {
          g.write(8, 4, 0);
          enabled = false;
        } else {
          enable();
        }
        if (enabled) checkUsed();
        assert.equal(g.queue.fault, QueueFault.NONE);
        assert.equal(g.queue.inFlight, 0);
      }
      await g.close();
    }),
    { numRuns: 60 },
  );
});
