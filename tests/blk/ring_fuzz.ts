/**
 * The property behind `ring_fuzz_test.ts`: random descriptor tables,
 * indirect tables, request headers and available rings are thrown at a
 * virtio-blk device through its legacy BAR, kick after kick, and what it
 * does is compared with an independent model of the queue rules (reference
 * §3): which chains it returns, in what order, when it breaks and why, how
 * often it interrupts. Each chain returned is then served by a model of the
 * request rules (virtio 1.2 §5.2.6, with the "any layout" framing of
 * §2.7.4) over a copy of guest memory and a model of the disk, in the order
 * the device returns them, each walked only after the one before it was
 * served (the in-process engine pops a chain once the one before it has
 * completed, so a request's writes can change a later chain's indirect
 * table): after every kick, guest memory (all but the used
 * ring) and the disk must be byte for byte the model's, and every used
 * element must carry the model's used length, so a status byte, a data
 * byte or a disk byte that is wrong or written where it should not be
 * shows.
 *
 * Guest memory (128 KiB): the ring at 0x1000, indirect tables at 0x3000,
 * request headers at 0x4000, data from 0x5000 to the end. A random
 * descriptor may point anywhere, including past the end of memory and past
 * 2^64; only device-writable buffers over the ring and the tables are made
 * read-only, so that the model's view of the queue stays the device's.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BlkConfig,
  BlkFeature,
  ID_BYTES,
  REQUEST_HEADER_SIZE,
  REQUEST_TYPE_BARRIER,
  RequestStatus,
  RequestType,
} from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import {
  DESCRIPTOR_SIZE,
  DescriptorFlag,
  DeviceStatus,
  featureBit,
  RingFeature,
} from "../../src/virtio/spec.ts";
import { QueueFault, type QueueFaultCode } from "../../src/virtio/split_queue.ts";
import { pattern } from "../helpers/harness.ts";
import { type Desc, RawGuest, type RawGuestOptions } from "../helpers/raw_guest.ts";

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
  /**
   * For a DISCARD or WRITE_ZEROES header: a segment table (§5.2.6) written
   * at the first data block (block 0 without one), instead of the data.
   */
  segments: { sector: number; sectors: number; flags: number }[];
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
    { weight: 8, arbitrary: fc.constantFrom(0, 1, 4, 5, 8, 11, 13, 0x8000_0001) },
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
/**
 * Cases the property once failed on, run before the random ones (fast-check's
 * `examples`). The first, from CI: chain 4's device-writable buffer covers
 * header slot 4, where chain 2's indirect table starts 8 bytes in; the
 * device walks that table only after chain 4 wrote its status there.
 */
export const FOUND_CASES: readonly FuzzCase[] = [
  {
    "queueSize": 16,
    "indirect": true,
    "eventIdx": false,
    "descriptors": [
      {
        "where": { "kind": "header", "slot": 0, "offset": 0 },
        "len": "fit",
        "flags": 0,
        "next": 0,
      },
      { "where": { "kind": "header", "slot": 4, "offset": 0 }, "len": 21, "flags": 2, "next": 0 },
      {
        "where": { "kind": "header", "slot": 4, "offset": 8 },
        "len": "fit",
        "flags": 4,
        "next": 0,
      },
      { "where": { "kind": "data", "block": 0 }, "len": "fit", "flags": 0, "next": 0 },
      { "where": { "kind": "wild", "value": 0n }, "len": "fit", "flags": 1, "next": 1 },
      { "where": { "kind": "data", "block": 0 }, "len": "fit", "flags": 0, "next": 16 },
      { "where": { "kind": "table", "slot": 0 }, "len": 0, "flags": 0, "next": 0 },
      { "where": { "kind": "data", "block": 0 }, "len": "fit", "flags": 4, "next": 0 },
      { "where": { "kind": "header", "slot": 0, "offset": 0 }, "len": 0, "flags": 0, "next": 0 },
      { "where": { "kind": "wild", "value": 0n }, "len": "fit", "flags": 0, "next": 0 },
      {
        "where": { "kind": "header", "slot": 0, "offset": 0 },
        "len": "fit",
        "flags": 0,
        "next": 16,
      },
      { "where": { "kind": "wild", "value": 0n }, "len": 0, "flags": 0, "next": 0 },
      { "where": { "kind": "data", "block": 0 }, "len": "fit", "flags": 0, "next": 0 },
      { "where": { "kind": "table", "slot": 0 }, "len": "fit", "flags": 0, "next": 0 },
      {
        "where": { "kind": "header", "slot": 0, "offset": 0 },
        "len": "fit",
        "flags": 4,
        "next": 0,
      },
      { "where": { "kind": "end", "back": 0 }, "len": 2147483647, "flags": 0, "next": 0 },
    ],
    "tables": [
      [{ "where": { "kind": "data", "block": 0 }, "len": 0, "flags": 0, "next": 0 }],
      [{ "where": { "kind": "table", "slot": 0 }, "len": "fit", "flags": 4, "next": 0 }],
      [{ "where": { "kind": "wild", "value": 0n }, "len": 2147483647, "flags": 0, "next": 0 }],
      [{ "where": { "kind": "data", "block": 0 }, "len": 0, "flags": 0, "next": 0 }],
    ],
    "templates": [],
    "headers": [
      { "type": 0, "sector": 0n },
      { "type": 0, "sector": 0n },
      { "type": 0, "sector": 0n },
      { "type": 0, "sector": 0n },
      { "type": 0, "sector": 0n },
      { "type": 0, "sector": 256n },
      { "type": 0, "sector": 0n },
      { "type": 0, "sector": 256n },
    ],
    "rounds": [{ "entries": [4, 2], "advance": "entries", "availFlags": 0, "usedEvent": 0 }],
  },
];

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
        segments: fc.array(
          fc.record({
            sector: fc.oneof(
              { weight: 6, arbitrary: fc.nat(CAPACITY - 1) },
              { weight: 1, arbitrary: fc.constantFrom(CAPACITY, 2 ** 32, 2 ** 52) },
            ),
            sectors: fc.oneof(
              { weight: 6, arbitrary: fc.nat(8) },
              { weight: 1, arbitrary: fc.constantFrom(CAPACITY, 0xffff_ffff) },
            ),
            flags: fc.constantFrom(0, 0, 0, 1, 2, 0x8000_0000),
          }),
          { maxLength: 2 },
        ),
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
  const ranged = (type & ~REQUEST_TYPE_BARRIER) === RequestType.DISCARD ||
    (type & ~REQUEST_TYPE_BARRIER) === RequestType.WRITE_ZEROES;
  let dataBuffers = data.map((d) => ({
    addr: DATA + BLOCK * d.block,
    len: 512 * d.sectors,
    write,
  }));
  if (ranged && t.segments.length > 0) {
    // le64 sector, le32 num_sectors, le32 flags per segment (§5.2.6).
    const addr = DATA + BLOCK * (data[0]?.block ?? 0);
    t.segments.forEach((segment, i) => {
      g.view.setBigUint64(addr + 16 * i, BigInt(segment.sector), true);
      g.view.setUint32(addr + 16 * i + 8, segment.sectors, true);
      g.view.setUint32(addr + 16 * i + 12, segment.flags, true);
    });
    dataBuffers = [{ addr, len: 16 * t.segments.length, write }];
  }
  const buffers = [
    { addr: HEADERS + HEADER_STRIDE * t.headerSlot, len: REQUEST_HEADER_SIZE, write: false },
    ...dataBuffers,
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
function readDesc(view: DataView, base: number, index: number) {
  const at = base + DESCRIPTOR_SIZE * index;
  return {
    addr: view.getBigUint64(at, true),
    len: view.getUint32(at + 8, true),
    flags: view.getUint16(at + 12, true),
    next: view.getUint16(at + 14, true),
  };
}

function insideMemory(addr: bigint, len: number): boolean {
  return addr + BigInt(len) <= BigInt(MEMORY);
}

/**
 * The chain at `head` by the rules of reference §3, or the fault that
 * breaks the queue, read from `memory` (the model's guest memory, with the
 * ring's descriptor table at `desc`).
 */
function walkModel(
  memory: Uint8Array,
  desc: number,
  head: number,
  n: number,
  indirect: boolean,
  maxChain: number,
): ModelBuffer[] | QueueFaultCode {
  if (head >= n) return QueueFault.HEAD_OUT_OF_RANGE;
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  const out: ModelBuffer[] = [];
  const seen = new Set<number>();
  let index = head;
  for (;;) {
    if (seen.has(index) || seen.size >= n) return QueueFault.CHAIN_TOO_LONG;
    seen.add(index);
    const d = readDesc(view, desc, index);
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
        const e = readDesc(view, table, i);
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

/**
 * With EVENT_IDX, whether the driver asked to be interrupted for the used
 * elements just published (virtio 1.2 §2.7.10): whether `usedEvent` is one
 * of the used ring indexes written since the last check, `before`,
 * `before + 1`, …, up to but not including `now` (all modulo 2^16). Walks
 * those indexes one by one rather than using vring_need_event's formula.
 */
function askedFor(usedEvent: number, now: number, before: number): boolean {
  for (let index = before; index !== now; index = (index + 1) & U16) {
    if (index === usedEvent) return true;
  }
  return false;
}

/** How the request model answered a chain. */
export type Outcome =
  | "read"
  | "write"
  | "flush"
  | "get-id"
  | "zeroed"
  | "unsupported"
  | "ioerr"
  | "unanswered";

/** What the model expects of one returned chain. */
interface Served {
  readonly outcome: Outcome;
  /** The used element's length: the bytes the device wrote into the chain. */
  readonly usedLength: number;
}

/** What the request model works on: copies of guest memory and of the disk, changed as it goes. */
interface RequestModel {
  readonly memory: Uint8Array;
  readonly disk: Uint8Array;
  readonly serial: Uint8Array;
  readonly segMax: number;
  /** DISCARD's and WRITE_ZEROES' limits as config space gives them; absent: not offered. */
  readonly discard?: RangeModelLimits;
  readonly writeZeroes?: RangeModelLimits;
}

/** A DISCARD's or WRITE_ZEROES' limits (virtio 1.2 §5.2.4: max_*_sectors, max_*_seg, alignment). */
interface RangeModelLimits {
  readonly maxSectors: number;
  readonly maxSegments: number;
  /** discard_sector_alignment (DISCARD only; 0 for WRITE_ZEROES). */
  readonly alignment: number;
  /** write_zeroes_may_unmap (WRITE_ZEROES only). */
  readonly mayUnmap: boolean;
}

/** Reads the range limits of `feature` from config space (§5.2.4), if the device offers it. */
function rangeLimits(g: RawGuest, feature: number): RangeModelLimits | undefined {
  if ((g.offered & featureBit(feature)) === 0) return undefined;
  const config = (offset: number, width: 1 | 4) =>
    g.read(LegacyRegister.CONFIG + offset, width) >>> 0;
  return feature === BlkFeature.DISCARD
    ? {
      maxSectors: config(BlkConfig.MAX_DISCARD_SECTORS, 4),
      maxSegments: config(BlkConfig.MAX_DISCARD_SEG, 4),
      alignment: config(BlkConfig.DISCARD_SECTOR_ALIGNMENT, 4),
      mayUnmap: false,
    }
    : {
      maxSectors: config(BlkConfig.MAX_WRITE_ZEROES_SECTORS, 4),
      maxSegments: config(BlkConfig.MAX_WRITE_ZEROES_SEG, 4),
      alignment: 0,
      mayUnmap: config(BlkConfig.WRITE_ZEROES_MAY_UNMAP, 1) !== 0,
    };
}

/**
 * A DISCARD or WRITE_ZEROES (§5.2.6): the device-readable data is a table of
 * 16-byte segments (le64 sector, le32 num_sectors, le32 flags; flag bit 0 is
 * unmap, the others are reserved). The device MUST answer UNSUPP for a
 * reserved flag and for unmap on a DISCARD, and IOERR for a segment beyond
 * the capacity, longer than the maximum or (DISCARD) off its alignment;
 * here a well-formed table is checked whole before anything runs, so a
 * request does all of its segments or none. What the ranges read as after
 * a DISCARD is not specified; the media here (RAM, a file with holes
 * punched) read zeros, as after a WRITE_ZEROES.
 */
function serveRanges(
  limits: RangeModelLimits | undefined,
  discard: boolean,
  table: number[],
  wrongWay: boolean,
  disk: Uint8Array,
): { status: number; outcome: Outcome } {
  const unsupported = { status: RequestStatus.UNSUPP, outcome: "unsupported" as const };
  const ioerr = { status: RequestStatus.IOERR, outcome: "ioerr" as const };
  if (limits === undefined) return unsupported;
  if (wrongWay || table.length === 0 || table.length % 16 !== 0) return ioerr;
  const count = table.length / 16;
  if (count > limits.maxSegments) return ioerr;
  const le = (from: number, bytes: number) =>
    table.slice(from, from + bytes).reduceRight((value, byte) => value * 256 + byte, 0);
  let flagsRefused = false;
  let invalid = false;
  const ranges: { sector: number; sectors: number }[] = [];
  for (let i = 0; i < count; i++) {
    const sector = le(16 * i, 8); // exact below 2^53; larger ones are beyond CAPACITY anyway
    const sectors = le(16 * i + 8, 4);
    const flags = le(16 * i + 12, 4);
    if ((flags & ~1) !== 0 || (discard && flags !== 0)) flagsRefused = true;
    if (sector + sectors > CAPACITY) invalid = true;
    else if (sectors > limits.maxSectors) invalid = true;
    else if (discard && limits.alignment > 1 && sector % limits.alignment !== 0) invalid = true;
    ranges.push({ sector, sectors });
  }
  if (flagsRefused) return unsupported;
  if (invalid) return ioerr;
  for (const { sector, sectors } of ranges) disk.fill(0, sector * 512, (sector + sectors) * 512);
  return { status: RequestStatus.OK, outcome: "zeroed" };
}

/**
 * Serves one chain the device returned, as virtio 1.2 §5.2.6 says, on the
 * model's memory and disk. The chain is read as two streams of bytes, the
 * device-readable ones (the 16-byte header, then any data the device is to
 * read) and the device-writable ones (any data the device is to write, then
 * the status byte, the very last byte): each byte is listed with its guest
 * address and the buffer it is in, and the request is worked out from those
 * lists, byte by byte.
 */
function serveModel(chain: ModelBuffer[], m: RequestModel): Served {
  const { memory, disk } = m;
  // No usable status byte: nothing can be reported, nothing is done (used length 0).
  const last = chain.at(-1);
  if (
    !last || !last.write || last.len === 0 || !insideMemory(last.addr + BigInt(last.len - 1), 1)
  ) {
    return { outcome: "unanswered", usedLength: 0 };
  }
  const status = Number(last.addr) + last.len - 1;
  const answer = (code: number, served: Served): Served => {
    memory[status] = code;
    return served;
  };
  const ioerr = () => answer(RequestStatus.IOERR, { outcome: "ioerr", usedLength: 1 });
  // Malformed chains: an empty buffer, a buffer not wholly in memory, a
  // device-readable buffer after a device-writable one (§2.7.4.2), 4 GiB or more in all.
  let writableSeen = false;
  let total = 0;
  for (const b of chain) {
    if (b.len === 0 || !insideMemory(b.addr, b.len)) return ioerr();
    if (b.write) writableSeen = true;
    else if (writableSeen) return ioerr();
    total += b.len;
  }
  if (total >= 2 ** 32) return ioerr();
  const readable: { at: number; buffer: number }[] = [];
  const writable: { at: number; buffer: number }[] = [];
  chain.forEach((b, buffer) => {
    for (let i = 0; i < b.len; i++) {
      (b.write ? writable : readable).push({ at: Number(b.addr) + i, buffer });
    }
  });
  if (readable.length < REQUEST_HEADER_SIZE) return ioerr();
  const header = readable.slice(0, REQUEST_HEADER_SIZE).map((byte) => memory[byte.at]);
  const little = (from: number, bytes: number) =>
    header.slice(from, from + bytes).reduceRight((value, byte) => value * 256n + BigInt(byte), 0n);
  // The legacy BARRIER flag is ignored (§5.2.6.3).
  const type = Number(little(0, 4)) & ~REQUEST_TYPE_BARRIER;
  const sector = little(8, 8);
  const dataIn = readable.slice(REQUEST_HEADER_SIZE); // data the device reads
  const dataOut = writable.slice(0, -1); // data the device writes
  const segments = (bytes: { buffer: number }[]) => new Set(bytes.map((b) => b.buffer)).size;
  const ok = (served: Served) => answer(RequestStatus.OK, served);
  switch (type) {
    case RequestType.IN:
    case RequestType.OUT: {
      const isRead = type === RequestType.IN;
      const [data, wrongWay] = isRead ? [dataOut, dataIn] : [dataIn, dataOut];
      if (wrongWay.length > 0 || data.length % 512 !== 0) return ioerr();
      if (sector + BigInt(data.length / 512) > BigInt(CAPACITY)) return ioerr();
      if (segments(data) > m.segMax) return ioerr();
      const offset = Number(sector) * 512;
      data.forEach((byte, i) => {
        if (isRead) memory[byte.at] = disk[offset + i];
        else disk[offset + i] = memory[byte.at];
      });
      return ok(
        isRead ? { outcome: "read", usedLength: data.length + 1 } : {
          outcome: "write",
          usedLength: 1,
        },
      );
    }
    case RequestType.FLUSH:
    case RequestType.FLUSH_OUT:
      if (dataIn.length > 0 || dataOut.length > 0) return ioerr();
      return ok({ outcome: "flush", usedLength: 1 });
    case RequestType.GET_ID: {
      if (dataIn.length > 0 || segments(dataOut) > m.segMax) return ioerr();
      // As many of the 20 serial bytes as fit (§5.2.6).
      const id = dataOut.slice(0, ID_BYTES);
      id.forEach((byte, i) => (memory[byte.at] = m.serial[i]));
      return ok({ outcome: "get-id", usedLength: id.length + 1 });
    }
    case RequestType.DISCARD:
    case RequestType.WRITE_ZEROES: {
      const discard = type === RequestType.DISCARD;
      const { status, outcome } = serveRanges(
        discard ? m.discard : m.writeZeroes,
        discard,
        dataIn.map((byte) => memory[byte.at]),
        dataOut.length > 0,
        disk,
      );
      return answer(status, { outcome, usedLength: 1 });
    }
    default:
      return answer(RequestStatus.UNSUPP, { outcome: "unsupported", usedLength: 1 });
  }
}

// ---------------------------------------------------------------------------
// Running a case

/** What a run of cases exercised, to show the generator reaches the interesting outcomes. */
export interface FuzzStats {
  /** Chains returned, by how they were answered. */
  returned: Partial<Record<Outcome, number>>;
  /** Kicks that broke the queue, by fault name. */
  faults: Record<string, number>;
}

/** An empty {@linkcode FuzzStats}. */
export function newStats(): FuzzStats {
  return { returned: {}, faults: {} };
}

function count<K extends string>(table: Partial<Record<K, number>>, key: K): void {
  table[key] = (table[key] ?? 0) + 1;
}

/**
 * Builds the device (on a RAM disk, or on a file it serves through
 * io_uring), writes the case, runs its kicks and checks each against the
 * model; counts what happened into `stats`.
 */
export async function checkCase(
  c: FuzzCase,
  stats: FuzzStats = newStats(),
  medium: RawGuestOptions["medium"] = "ram",
): Promise<void> {
  let features = ~0;
  if (!c.indirect) features &= ~featureBit(RingFeature.INDIRECT_DESC);
  if (!c.eventIdx) features &= ~featureBit(RingFeature.EVENT_IDX);
  const g = RawGuest.create({
    memoryBytes: MEMORY,
    diskBytes: CAPACITY * 512,
    device: { queueSize: c.queueSize },
    features: features & ~featureBit(BlkFeature.RO),
    ringBase: RING,
    medium,
  });
  try {
    const n = c.queueSize;
    const maxChain = g.disk.device.maxChain;
    // Distinct bytes in guest memory and on the disk, so that a stray write shows.
    g.bytes.set(pattern(MEMORY - HEADERS, 1), HEADERS);
    g.medium.set(pattern(g.medium.length, 2));
    const disk = g.medium.slice(); // the model's disk
    const serial = g.disk.device.serial;
    const segMax = g.read(LegacyRegister.CONFIG + BlkConfig.SEG_MAX, 4);
    const discard = rangeLimits(g, BlkFeature.DISCARD);
    const writeZeroes = rangeLimits(g, BlkFeature.WRITE_ZEROES);
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

      // The model's expectations for this kick. The device (the in-process
      // engine) pops a chain only once the one before it has completed, so
      // each chain is walked in the memory the requests before it left: a
      // device-writable buffer may cover a later chain's indirect table
      // (outside the ring and the tables' region, which are protected).
      const memory = g.snapshot();
      const returned: { head: number; chain: ModelBuffer[] }[] = [];
      const served: Served[] = [];
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
            const walked = walkModel(memory, g.ring.desc, head, n, c.indirect, maxChain);
            if (typeof walked === "number") {
              fault = walked;
              break;
            }
            returned.push({ head, chain: walked });
            served.push(
              serveModel(walked, { memory, disk, serial, segMax, discard, writeZeroes }),
            );
            usedIdx = (usedIdx + 1) & U16;
            if (!c.eventIdx) {
              if (!(round.availFlags & 1)) interrupts++;
            } else {
              if (signalled < 0 || askedFor(round.usedEvent, usedIdx, signalled)) interrupts++;
              signalled = usedIdx;
            }
          }
        }
        if (fault !== QueueFault.NONE) interrupts++; // the config interrupt, once
      }

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
      assert.deepEqual(
        used.map((u) => u.len),
        served.map((s) => s.usedLength),
        `${label}: used lengths (${served.map((s) => s.outcome)})`,
      );
      assert.equal(g.usedIdx, usedIdx, `${label}: used.idx`);
      assert.equal(g.interrupts - interruptsBefore, interrupts, `${label}: interrupts`);
      assert.equal(g.queue.inFlight, 0);

      if (g.queue.fault !== QueueFault.NONE && used.length === returned.length) {
        const name = Object.keys(QueueFault).find((k) =>
          QueueFault[k as keyof typeof QueueFault] === fault
        );
        if (!wasBroken) count(stats.faults, name!);
      }
      // Guest memory is the model's but for the used ring (checked above).
      g.assertChangedOnly(memory, [g.usedRange]);
      const wrongOnDisk = g.medium.findIndex((byte, i) => byte !== disk[i]);
      assert.equal(wrongOnDisk, -1, `${label}: disk byte ${wrongOnDisk} is not the model's`);
      for (const { outcome } of served) count(stats.returned, outcome);
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
