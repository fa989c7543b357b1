/**
 * The property behind `ring_fuzz_test.ts`: random descriptor tables,
 * indirect tables, request headers and available rings are thrown at a
 * virtio-blk device through its legacy BAR, kick after kick, and what it
 * does is compared with an independent model of the queue rules (reference
 * §3): which chains it returns, in what order, when it breaks and why, how
 * often it interrupts — and that it writes nothing outside the
 * device-writable buffers of the chains it returned and the used ring.
 *
 * Guest memory (128 KiB): the ring at 0x1000, indirect tables at 0x3000,
 * request headers at 0x4000, data from 0x5000 to the end. A random
 * descriptor may point anywhere, including past the end of memory and past
 * 2^64; only device-writable buffers over the ring and the tables are made
 * read-only, so that the model's view of the queue stays the device's.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { BlkFeature, REQUEST_HEADER_SIZE } from "../../src/blk/spec.ts";
import {
  DESCRIPTOR_SIZE,
  DescriptorFlag,
  DeviceStatus,
  featureBit,
  RingFeature,
} from "../../src/virtio/spec.ts";
import { QueueFault, type QueueFaultCode } from "../../src/virtio/split_queue.ts";
import { pattern } from "../helpers/harness.ts";
import { type Desc, type Range, RawGuest } from "../helpers/raw_guest.ts";

const MEMORY = 128 << 10;
const RING = 0x1000;
const TABLES = 0x3000;
const TABLE_SLOTS = 4;
const TABLE_STRIDE = 0x400;
const HEADERS = 0x4000;
const HEADER_SLOTS = 8;
const HEADER_STRIDE = 0x200;
const DATA = 0x5000;
const BLOCK = 0x200;
const DATA_BLOCKS = (MEMORY - DATA) / BLOCK;
const CAPACITY = 256; // sectors: a 128 KiB disk
const U16 = 0xffff;
const { NEXT, WRITE, INDIRECT } = DescriptorFlag;

// ---------------------------------------------------------------------------
// What is generated

type Where =
  | { kind: "header"; slot: number; offset: number }
  | { kind: "data"; block: number }
  | { kind: "table"; slot: number }
  | { kind: "end"; back: number }
  | { kind: "wild"; value: bigint };

type Length = "fit" | number;

interface GenDesc {
  where: Where;
  len: Length;
  flags: number;
  next: number;
}

interface Round {
  /** Heads written at avail.idx, avail.idx + 1, … */
  entries: number[];
  /** How far avail.idx moves: usually entries.length, sometimes anything. */
  advance: number | "entries";
  availFlags: number;
  usedEvent: number;
}

/**
 * A well-formed request (header, data, status) written over the random
 * descriptors, directly at descriptor `at` onwards or in indirect table
 * `table`, so that many chains reach the request layer and the medium.
 */
interface Template {
  at: number;
  indirect: boolean;
  table: number;
  headerSlot: number;
  /** Data buffers: a data block and a length in sectors. */
  data: { block: number; sectors: number }[];
  /** Data direction from the header's type (else the other way). */
  matchDirection: boolean;
  statusBlock: number;
}

/** One generated case. */
export interface FuzzCase {
  queueSize: number;
  indirect: boolean;
  eventIdx: boolean;
  descriptors: GenDesc[];
  tables: GenDesc[][];
  templates: Template[];
  headers: { type: number; sector: bigint }[];
  rounds: Round[];
}

const where: fc.Arbitrary<Where> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("header" as const),
      slot: fc.nat(HEADER_SLOTS - 1),
      offset: fc.constantFrom(0, 0, 0, 4, 8),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("data" as const), block: fc.nat(DATA_BLOCKS - 1) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("table" as const), slot: fc.nat(TABLE_SLOTS - 1) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("end" as const), back: fc.nat(1024) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("wild" as const),
      value: fc.constantFrom(
        0n,
        BigInt(MEMORY),
        1n << 32n,
        (1n << 53n) - 1n,
        1n << 53n,
        (1n << 64n) - 256n,
        (1n << 64n) - 1n,
      ),
    }),
  },
);

const length: fc.Arbitrary<Length> = fc.oneof(
  { weight: 4, arbitrary: fc.constant("fit" as const) },
  { weight: 3, arbitrary: fc.constantFrom(0, 1, 15, 16, 17, 20, 21, 24, 511, 512, 513, 1024) },
  { weight: 2, arbitrary: fc.nat(2048) },
  { weight: 1, arbitrary: fc.constantFrom(0x7fff_ffff, 0x8000_0000, 0xffff_ffff) },
);

function descriptor(maxNext: number): fc.Arbitrary<GenDesc> {
  return fc.record({
    where,
    len: length,
    flags: fc.oneof(
      { weight: 12, arbitrary: fc.constantFrom(0, NEXT, WRITE, NEXT | WRITE) },
      { weight: 2, arbitrary: fc.constantFrom(INDIRECT, INDIRECT | WRITE) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: U16 }) },
    ),
    next: fc.oneof(
      { weight: 18, arbitrary: fc.nat(maxNext - 1) },
      { weight: 1, arbitrary: fc.constantFrom(maxNext, maxNext + 1, U16) },
      { weight: 1, arbitrary: fc.integer({ min: maxNext, max: U16 }) },
    ),
  });
}

const header = fc.record({
  type: fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(0, 1, 4, 5, 8, 0x8000_0001) },
    { weight: 1, arbitrary: fc.nat(0xffff_ffff) },
  ),
  sector: fc.oneof(
    { weight: 6, arbitrary: fc.bigInt(0n, BigInt(CAPACITY - 1)) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        BigInt(CAPACITY),
        1n << 32n,
        1n << 55n,
        (1n << 64n) - 1n,
      ),
    },
  ),
});

/** The arbitrary of whole cases. */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.constantFrom(4, 8, 16).chain((queueSize) =>
  fc.record({
    queueSize: fc.constant(queueSize),
    indirect: fc.boolean(),
    eventIdx: fc.boolean(),
    descriptors: fc.array(descriptor(queueSize), {
      minLength: queueSize,
      maxLength: queueSize,
    }),
    tables: fc.array(fc.array(descriptor(12), { minLength: 1, maxLength: 12 }), {
      minLength: TABLE_SLOTS,
      maxLength: TABLE_SLOTS,
    }),
    templates: fc.array(
      fc.record({
        at: fc.nat(queueSize - 1),
        indirect: fc.boolean(),
        table: fc.nat(TABLE_SLOTS - 1),
        headerSlot: fc.nat(HEADER_SLOTS - 1),
        data: fc.array(
          fc.record({ block: fc.nat(DATA_BLOCKS - 4), sectors: fc.integer({ min: 1, max: 3 }) }),
          { maxLength: 3 },
        ),
        matchDirection: fc.constantFrom(true, true, true, true, false),
        statusBlock: fc.nat(DATA_BLOCKS - 1),
      }),
      { maxLength: queueSize },
    ),
    headers: fc.array(header, { minLength: HEADER_SLOTS, maxLength: HEADER_SLOTS }),
    rounds: fc.array(
      fc.record({
        entries: fc.array(
          fc.oneof(
            { weight: 80, arbitrary: fc.nat(queueSize - 1) },
            { weight: 1, arbitrary: fc.constantFrom(queueSize, queueSize + 1, U16) },
            { weight: 1, arbitrary: fc.integer({ min: queueSize, max: U16 }) },
          ),
          { maxLength: queueSize },
        ),
        advance: fc.oneof(
          { weight: 40, arbitrary: fc.constant("entries" as const) },
          { weight: 1, arbitrary: fc.constantFrom(queueSize + 1, queueSize + 2, 0x8000, U16) },
          { weight: 1, arbitrary: fc.nat(U16) },
        ),
        availFlags: fc.constantFrom(0, 0, 1),
        usedEvent: fc.nat(U16),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  })
);

// ---------------------------------------------------------------------------
// Writing a case into guest memory

function address(w: Where): bigint {
  switch (w.kind) {
    case "header":
      return BigInt(HEADERS + HEADER_STRIDE * w.slot + w.offset);
    case "data":
      return BigInt(DATA + BLOCK * w.block);
    case "table":
      return BigInt(TABLES + TABLE_STRIDE * w.slot);
    case "end":
      return BigInt(MEMORY - w.back);
    case "wild":
      return w.value;
  }
}

function resolveLength(d: GenDesc, tables: GenDesc[][]): number {
  if (d.len !== "fit") return d.len;
  switch (d.where.kind) {
    case "header":
      return REQUEST_HEADER_SIZE;
    case "data":
      return BLOCK;
    case "table":
      return DESCRIPTOR_SIZE * tables[d.where.slot].length;
    case "end":
      return d.where.back;
    case "wild":
      return 16;
  }
}

/** Ring and tables: what no device-writable buffer may cover (see the module doc). */
const PROTECTED = { start: RING, end: HEADERS };

function toDesc(d: GenDesc, tables: GenDesc[][]): Desc {
  const addr = address(d.where);
  const len = resolveLength(d, tables);
  let flags = d.flags;
  const end = addr + BigInt(len);
  if ((flags & WRITE) && addr < BigInt(PROTECTED.end) && end > BigInt(PROTECTED.start)) {
    flags &= ~WRITE;
  }
  return { addr, len, flags, next: d.next };
}

/** Writes a template request (see {@linkcode Template}). */
function writeTemplate(g: RawGuest, t: Template, type: number): void {
  const readsIntoGuest = type === 0 || type === 8; // IN, GET_ID
  const write = t.matchDirection === readsIntoGuest;
  const data = t.data.slice(0, g.size - 2);
  const buffers = [
    { addr: HEADERS + HEADER_STRIDE * t.headerSlot, len: REQUEST_HEADER_SIZE, write: false },
    ...data.map((d) => ({ addr: DATA + BLOCK * d.block, len: 512 * d.sectors, write })),
    { addr: DATA + BLOCK * t.statusBlock, len: 1, write: true },
  ];
  if (t.indirect) {
    g.indirectChain(t.at, TABLES + TABLE_STRIDE * t.table, buffers);
  } else {
    g.chain(buffers, buffers.map((_, i) => (t.at + i) % g.size));
  }
}

// ---------------------------------------------------------------------------
// The model

interface ModelBuffer {
  addr: bigint;
  len: number;
  write: boolean;
}

/** Reads descriptor `index` of the table at `base` from guest memory. */
function readDesc(g: RawGuest, base: number, index: number) {
  const at = base + DESCRIPTOR_SIZE * index;
  return {
    addr: g.view.getBigUint64(at, true),
    len: g.view.getUint32(at + 8, true),
    flags: g.view.getUint16(at + 12, true),
    next: g.view.getUint16(at + 14, true),
  };
}

function insideMemory(addr: bigint, len: number): boolean {
  return addr + BigInt(len) <= BigInt(MEMORY);
}

/**
 * The chain at `head` by the rules of reference §3, or the fault that
 * breaks the queue.
 */
function walkModel(
  g: RawGuest,
  head: number,
  n: number,
  indirect: boolean,
  maxChain: number,
): ModelBuffer[] | QueueFaultCode {
  if (head >= n) return QueueFault.HEAD_OUT_OF_RANGE;
  const out: ModelBuffer[] = [];
  const seen = new Set<number>();
  let index = head;
  for (;;) {
    if (seen.has(index) || seen.size >= n) return QueueFault.CHAIN_TOO_LONG;
    seen.add(index);
    const d = readDesc(g, g.ring.desc, index);
    if (d.flags & INDIRECT) {
      if (!indirect) return QueueFault.INDIRECT_NOT_NEGOTIATED;
      if (d.flags & NEXT) return QueueFault.INDIRECT_WITH_NEXT;
      if (d.len === 0 || d.len % DESCRIPTOR_SIZE !== 0) return QueueFault.INDIRECT_BAD_LENGTH;
      const entries = d.len / DESCRIPTOR_SIZE;
      if (entries > maxChain) return QueueFault.CHAIN_TOO_LONG;
      if (!insideMemory(d.addr, d.len)) return QueueFault.INDIRECT_OUTSIDE_MEMORY;
      const table = Number(d.addr);
      const visited = new Set<number>();
      let i = 0;
      for (;;) {
        if (visited.has(i)) return QueueFault.CHAIN_TOO_LONG;
        visited.add(i);
        const e = readDesc(g, table, i);
        if (e.flags & INDIRECT) return QueueFault.INDIRECT_NESTED;
        if (out.length >= maxChain) return QueueFault.CHAIN_TOO_LONG;
        out.push({ addr: e.addr, len: e.len, write: (e.flags & WRITE) !== 0 });
        if (!(e.flags & NEXT)) return out;
        if (e.next >= entries) return QueueFault.NEXT_OUT_OF_RANGE;
        i = e.next;
      }
    }
    if (out.length >= maxChain) return QueueFault.CHAIN_TOO_LONG;
    out.push({ addr: d.addr, len: d.len, write: (d.flags & WRITE) !== 0 });
    if (!(d.flags & NEXT)) return out;
    if (d.next >= n) return QueueFault.NEXT_OUT_OF_RANGE;
    index = d.next;
  }
}

/** vring_need_event, written out again for the model. */
function crosses(event: number, now: number, before: number): boolean {
  return ((now - event - 1) & U16) < ((now - before) & U16);
}

function writableRanges(chain: ModelBuffer[]): Range[] {
  return chain.filter((b) => b.write && b.addr < BigInt(Number.MAX_SAFE_INTEGER)).map((b) => ({
    start: Number(b.addr),
    length: b.len,
  }));
}

/** The status byte of a chain, when it has a usable one. */
function statusAddress(chain: ModelBuffer[]): number | undefined {
  const last = chain.at(-1)!;
  if (!last.write || last.len === 0) return undefined;
  const at = last.addr + BigInt(last.len) - 1n;
  return at < BigInt(MEMORY) ? Number(at) : undefined;
}

// ---------------------------------------------------------------------------
// Running a case

/** What a run of cases exercised, to show the generator reaches the interesting outcomes. */
export interface FuzzStats {
  /** Chains returned, by status byte ("none" for used length 0). */
  returned: Record<string, number>;
  /** Kicks that broke the queue, by fault name. */
  faults: Record<string, number>;
}

/** An empty {@linkcode FuzzStats}. */
export function newStats(): FuzzStats {
  return { returned: {}, faults: {} };
}

function count(table: Record<string, number>, key: string): void {
  table[key] = (table[key] ?? 0) + 1;
}

/**
 * Builds the device, writes the case, runs its kicks and checks each
 * against the model; counts what happened into `stats`.
 */
export async function checkCase(c: FuzzCase, stats: FuzzStats = newStats()): Promise<void> {
  let features = ~0;
  if (!c.indirect) features &= ~featureBit(RingFeature.INDIRECT_DESC);
  if (!c.eventIdx) features &= ~featureBit(RingFeature.EVENT_IDX);
  const g = RawGuest.create({
    memoryBytes: MEMORY,
    diskBytes: CAPACITY * 512,
    device: { queueSize: c.queueSize },
    features: features & ~featureBit(BlkFeature.RO),
    ringBase: RING,
  });
  try {
    const n = c.queueSize;
    const maxChain = g.disk.device.maxChain;
    // Distinct bytes in guest memory and on the disk, so that a stray write shows.
    g.bytes.set(pattern(MEMORY - HEADERS, 1), HEADERS);
    g.medium.set(pattern(g.medium.length, 2));
    c.descriptors.forEach((d, i) => g.setDesc(i, toDesc(d, c.tables)));
    c.tables.forEach((t, slot) =>
      g.writeTable(TABLES + TABLE_STRIDE * slot, t.map((d) => toDesc(d, c.tables)))
    );
    c.headers.forEach((h, slot) => g.writeHeader(HEADERS + HEADER_STRIDE * slot, h.type, h.sector));
    for (const t of c.templates) writeTemplate(g, t, c.headers[t.headerSlot].type);

    let nextAvail = 0;
    let usedIdx = 0;
    let fault: QueueFaultCode = QueueFault.NONE;
    let signalled = -1; // used.idx at the last EVENT_IDX check; -1 = none yet
    for (const round of c.rounds) {
      let idx = g.availIdx;
      for (const head of round.entries) g.setAvailEntry(idx++, head);
      const advance = round.advance === "entries" ? round.entries.length : round.advance;
      g.availIdx = g.availIdx + advance;
      g.availFlags = round.availFlags;
      g.usedEvent = round.usedEvent;

      // The model's expectations for this kick.
      const returned: { head: number; chain: ModelBuffer[] }[] = [];
      const wasBroken = fault !== QueueFault.NONE;
      let interrupts = 0;
      if (fault === QueueFault.NONE) {
        const ahead = (g.availIdx - nextAvail) & U16;
        if (ahead > n) {
          fault = QueueFault.AVAIL_INDEX_TOO_FAR;
        } else {
          for (let i = 0; i < ahead; i++) {
            const head = g.availEntry(nextAvail);
            nextAvail = (nextAvail + 1) & U16;
            const walked = walkModel(g, head, n, c.indirect, maxChain);
            if (typeof walked === "number") {
              fault = walked;
              break;
            }
            returned.push({ head, chain: walked });
            usedIdx = (usedIdx + 1) & U16;
            if (!c.eventIdx) {
              if (!(round.availFlags & 1)) interrupts++;
            } else {
              if (signalled < 0 || crosses(round.usedEvent, usedIdx, signalled)) interrupts++;
              signalled = usedIdx;
            }
          }
        }
        if (fault !== QueueFault.NONE) interrupts++; // the config interrupt, once
      }

      const before = g.snapshot();
      const usedBefore = g.usedIdx;
      const interruptsBefore = g.interrupts;
      g.notify();

      const label = `round ${c.rounds.indexOf(round)}`;
      assert.equal(g.queue.fault, fault, `${label}: fault`);
      assert.equal(
        (g.status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0,
        fault !== QueueFault.NONE,
        `${label}: NEEDS_RESET`,
      );
      const used = g.usedSince(usedBefore);
      assert.deepEqual(used.map((u) => u.id), returned.map((r) => r.head), `${label}: used ids`);
      assert.equal(g.usedIdx, usedIdx, `${label}: used.idx`);
      assert.equal(g.interrupts - interruptsBefore, interrupts, `${label}: interrupts`);
      assert.equal(g.queue.inFlight, 0);

      if (g.queue.fault !== QueueFault.NONE && used.length === returned.length) {
        const name = Object.keys(QueueFault).find((k) =>
          QueueFault[k as keyof typeof QueueFault] === fault
        );
        if (!wasBroken) count(stats.faults, name!);
      }
      const allowed = returned.flatMap((r) => writableRanges(r.chain));
      g.assertChangedOnly(before, [...allowed, g.usedRange]);

      returned.forEach((r, i) => {
        const writable = r.chain.reduce((sum, b) => sum + (b.write ? b.len : 0), 0);
        assert.ok(used[i].len <= writable, `${label}: used length within the writable bytes`);
        const status = statusAddress(r.chain);
        if (status === undefined) {
          assert.equal(used[i].len, 0, `${label}: no status byte, used length 0`);
          count(stats.returned, "none");
          return;
        }
        assert.ok(used[i].len >= 1, `${label}: a status byte was written`);
        const overwritten = returned.slice(i + 1).some((later) =>
          writableRanges(later.chain).some((w) => status >= w.start && status < w.start + w.length)
        );
        if (!overwritten) {
          assert.ok(g.u8(status) <= 2, `${label}: status ${g.u8(status)}`);
          count(stats.returned, ["OK", "IOERR", "UNSUPP"][g.u8(status)]);
        }
      });
      if (fault === QueueFault.NONE) {
        if (c.eventIdx) assert.equal(g.availEvent, nextAvail, `${label}: avail_event`);
        else assert.equal(g.usedFlags, 0, `${label}: used.flags`);
      }
      if (c.eventIdx) assert.equal(g.usedFlags, 0, `${label}: used.flags is not used`);
    }
  } finally {
    await g.close();
  }
}
