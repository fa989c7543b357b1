/**
 * Parsing a popped chain into a typed request (virtio 1.2 §5.2.6 and the
 * "any layout" framing of §2.7.4): every kind, every error reason, and the
 * record's reuse.
 */

import assert from "node:assert/strict";
import { usedLength } from "../../src/blk/execute.ts";
import {
  BlkRequest,
  parseRequest,
  RequestError,
  type RequestErrorCode,
  RequestKind,
  type RequestKindCode,
  requestRecordWords,
} from "../../src/blk/request.ts";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { UNREPRESENTABLE_ADDRESS } from "../../src/memory/guest_memory.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { DescriptorChain } from "../../src/virtio/descriptor_chain.ts";

const SECTOR = 512;
const MEMORY = SharedGuestMemory.allocate(1 << 16);
const VIEW = new DataView(MEMORY.buffer);
const LIMITS = { capacity: 100, segMax: 4 };
const HEADER = 0x100;
const DATA = 0x1000;
const STATUS = 0x800;

/** Writes a header {type, 0, sector} at `at`. */
function header(type: number, sector: number | bigint = 0, at = HEADER): number {
  VIEW.setUint32(at, type >>> 0, true);
  VIEW.setUint32(at + 4, 0, true);
  VIEW.setBigUint64(at + 8, BigInt(sector), true);
  return at;
}

type Buf = [address: number, length: number, writable?: boolean];

function parse(buffers: Buf[], limits = LIMITS, out = new BlkRequest(LIMITS.segMax)) {
  const chain = new DescriptorChain(64);
  chain.reset(9);
  for (const [address, length, writable] of buffers) chain.push(address, length, !!writable);
  parseRequest(chain, MEMORY, limits, out);
  return out;
}

function expectError(
  buffers: Buf[],
  kind: RequestKindCode,
  error: RequestErrorCode,
  limits = LIMITS,
): void {
  const r = parse(buffers, limits);
  assert.equal(r.describe().error, nameOf(RequestError, error));
  assert.equal(r.describe().kind, nameOf(RequestKind, kind));
  assert.equal(r.segmentCount, 0);
  assert.equal(r.dataLength, 0);
}

function nameOf(table: Record<string, number>, value: number): string {
  return Object.keys(table).find((key) => table[key] === value)!;
}

Deno.test("legacy framing: a read, a write, a flush and GET_ID", () => {
  header(RequestType.IN, 7);
  assert.deepEqual(parse([[HEADER, 16], [DATA, 1024, true], [STATUS, 1, true]]).describe(), {
    kind: "READ",
    error: "NONE",
    head: 9,
    sector: 7,
    dataLength: 1024,
    statusAddress: STATUS,
    segments: [{ address: DATA, length: 1024 }],
  });

  header(RequestType.OUT, 98);
  const w = parse([[HEADER, 16], [DATA, 512], [DATA + 4096, 512], [STATUS, 1, true]]);
  assert.equal(w.kind, RequestKind.WRITE);
  assert.equal(w.offset, 98 * SECTOR);
  assert.deepEqual(w.describe().segments, [
    { address: DATA, length: 512 },
    { address: DATA + 4096, length: 512 },
  ]);

  for (const type of [RequestType.FLUSH, RequestType.FLUSH_OUT]) {
    header(type, 5); // the sector of a flush is not checked
    const f = parse([[HEADER, 16], [STATUS, 1, true]]);
    assert.equal(f.kind, RequestKind.FLUSH);
    assert.equal(f.statusAddress, STATUS);
  }

  header(RequestType.GET_ID);
  const id = parse([[HEADER, 16], [DATA, 64, true], [STATUS, 1, true]]);
  assert.equal(id.kind, RequestKind.GET_ID);
  assert.equal(id.dataLength, 64);
  assert.equal(usedLength(id, RequestStatus.OK), 21, "at most 20 serial bytes and the status");
});

Deno.test("any layout: header, data and status share or split buffers", () => {
  // Header and data in one readable buffer.
  header(RequestType.OUT, 1, DATA - 16);
  const w = parse([[DATA - 16, 16 + 1024], [STATUS, 1, true]]);
  assert.equal(w.kind, RequestKind.WRITE);
  assert.deepEqual(w.describe().segments, [{ address: DATA, length: 1024 }]);

  // Data and status in one writable buffer.
  header(RequestType.IN, 2);
  const r = parse([[HEADER, 16], [DATA, 513, true]]);
  assert.equal(r.kind, RequestKind.READ);
  assert.equal(r.statusAddress, DATA + 512);
  assert.deepEqual(r.describe().segments, [{ address: DATA, length: 512 }]);

  // A header split 4 + 12, and data split so a segment ends in the status buffer.
  header(RequestType.IN, 3);
  const split = parse([[HEADER, 4], [HEADER + 4, 12], [DATA, 500, true], [DATA + 600, 13, true]]);
  assert.equal(split.kind, RequestKind.READ);
  assert.equal(split.sector, 3);
  assert.deepEqual(split.describe().segments, [
    { address: DATA, length: 500 },
    { address: DATA + 600, length: 12 },
  ]);
  assert.equal(split.statusAddress, DATA + 612);

  // GET_ID answered in the same buffer as its status.
  header(RequestType.GET_ID);
  const id = parse([[HEADER, 16], [DATA, 21, true]]);
  assert.equal(id.kind, RequestKind.GET_ID);
  assert.equal(id.dataLength, 20);
});

Deno.test("the legacy BARRIER bit is ignored; other types are UNSUPPORTED with a status", () => {
  header(0x8000_0000 | RequestType.OUT, 4);
  assert.equal(parse([[HEADER, 16], [DATA, 512], [STATUS, 1, true]]).kind, RequestKind.WRITE);
  for (const type of [2, 3, 6, 7, RequestType.DISCARD, RequestType.WRITE_ZEROES, 99, 0x7fff_ffff]) {
    header(type);
    const r = parse([[HEADER, 16], [DATA, 512, true], [STATUS, 1, true]]);
    assert.equal(r.kind, RequestKind.UNSUPPORTED, `type ${type}`);
    assert.equal(r.statusAddress, STATUS);
    assert.equal(usedLength(r, RequestStatus.UNSUPP), 1);
  }
});

Deno.test("chains without a usable status byte are UNANSWERABLE (used length 0)", () => {
  header(RequestType.FLUSH);
  const end = MEMORY.size;
  const cases: [Buf[], RequestErrorCode][] = [
    [[], RequestError.EMPTY_CHAIN],
    [[[HEADER, 16]], RequestError.STATUS_NOT_WRITABLE],
    [[[HEADER, 16], [STATUS, 1, false]], RequestError.STATUS_NOT_WRITABLE],
    [[[HEADER, 16], [STATUS, 0, true]], RequestError.STATUS_ZERO_LENGTH],
    [[[HEADER, 16], [end, 1, true]], RequestError.STATUS_OUTSIDE_MEMORY],
    [[[HEADER, 16], [end - 1, 2, true]], RequestError.STATUS_OUTSIDE_MEMORY],
    [[[HEADER, 16], [UNREPRESENTABLE_ADDRESS, 1, true]], RequestError.STATUS_OUTSIDE_MEMORY],
  ];
  for (const [buffers, error] of cases) {
    expectError(buffers, RequestKind.UNANSWERABLE, error);
    const r = parse(buffers);
    assert.equal(r.statusAddress, -1);
    assert.equal(usedLength(r, RequestStatus.IOERR), 0);
  }
  // The last byte of memory is a valid status byte.
  assert.equal(parse([[HEADER, 16], [end - 1, 1, true]]).kind, RequestKind.FLUSH);
});

Deno.test("malformed requests with a status byte are INVALID (answered IOERR, used length 1)", () => {
  const S: Buf = [STATUS, 1, true];
  const end = MEMORY.size;
  const cases: [string, number, number | bigint, Buf[], RequestErrorCode][] = [
    [
      "zero-length data",
      RequestType.IN,
      0,
      [[HEADER, 16], [DATA, 0, true], S],
      RequestError.ZERO_LENGTH_BUFFER,
    ],
    [
      "zero-length header",
      RequestType.IN,
      0,
      [[HEADER, 0], [HEADER, 16], S],
      RequestError.ZERO_LENGTH_BUFFER,
    ],
    [
      "data past the end",
      RequestType.IN,
      0,
      [[HEADER, 16], [end - 256, 512, true], S],
      RequestError.BUFFER_OUTSIDE_MEMORY,
    ],
    [
      "header past the end",
      RequestType.IN,
      0,
      [[end - 8, 16], S],
      RequestError.BUFFER_OUTSIDE_MEMORY,
    ],
    ["unrepresentable data address", RequestType.OUT, 0, [[HEADER, 16], [
      UNREPRESENTABLE_ADDRESS,
      512,
    ], S], RequestError.BUFFER_OUTSIDE_MEMORY],
    ["readable after writable", RequestType.OUT, 0, [
      [HEADER, 16],
      [DATA, 512, true],
      [DATA, 512],
      S,
    ], RequestError.READABLE_AFTER_WRITABLE],
    [
      "writable header",
      RequestType.IN,
      0,
      [[HEADER, 16, true], [DATA, 512, true], S],
      RequestError.HEADER_TOO_SHORT,
    ],
    ["15-byte header", RequestType.FLUSH, 0, [[HEADER, 15], S], RequestError.HEADER_TOO_SHORT],
    [
      "read with readable data",
      RequestType.IN,
      0,
      [[HEADER, 16], [DATA, 512], S],
      RequestError.WRONG_DATA_DIRECTION,
    ],
    ["read with one readable byte after the header", RequestType.IN, 0, [[HEADER, 17], [
      DATA,
      512,
      true,
    ], S], RequestError.WRONG_DATA_DIRECTION],
    [
      "write with writable data",
      RequestType.OUT,
      0,
      [[HEADER, 16], [DATA, 512, true], S],
      RequestError.WRONG_DATA_DIRECTION,
    ],
    ["write with a 2-byte status buffer", RequestType.OUT, 0, [[HEADER, 16], [DATA, 512], [
      STATUS,
      2,
      true,
    ]], RequestError.WRONG_DATA_DIRECTION],
    [
      "flush with data",
      RequestType.FLUSH,
      0,
      [[HEADER, 16], [DATA, 512], S],
      RequestError.WRONG_DATA_DIRECTION,
    ],
    [
      "flush with writable data",
      RequestType.FLUSH,
      0,
      [[HEADER, 16], [DATA, 512, true], S],
      RequestError.WRONG_DATA_DIRECTION,
    ],
    [
      "GET_ID with readable data",
      RequestType.GET_ID,
      0,
      [[HEADER, 16], [DATA, 20], S],
      RequestError.WRONG_DATA_DIRECTION,
    ],
    [
      "read of 511 bytes",
      RequestType.IN,
      0,
      [[HEADER, 16], [DATA, 511, true], S],
      RequestError.UNALIGNED_LENGTH,
    ],
    [
      "write of 513 bytes",
      RequestType.OUT,
      0,
      [[HEADER, 16], [DATA, 513], S],
      RequestError.UNALIGNED_LENGTH,
    ],
    [
      "sector = capacity",
      RequestType.IN,
      100,
      [[HEADER, 16], [DATA, 512, true], S],
      RequestError.OUT_OF_RANGE,
    ],
    [
      "last sector + 1",
      RequestType.OUT,
      99,
      [[HEADER, 16], [DATA, 1024], S],
      RequestError.OUT_OF_RANGE,
    ],
    [
      "sector 2^55",
      RequestType.OUT,
      1n << 55n,
      [[HEADER, 16], [DATA, 512], S],
      RequestError.OUT_OF_RANGE,
    ],
    [
      "sector 2^64 - 1",
      RequestType.IN,
      (1n << 64n) - 1n,
      [[HEADER, 16], [DATA, 512, true], S],
      RequestError.OUT_OF_RANGE,
    ],
    ["five segments (seg_max 4)", RequestType.IN, 0, [
      [HEADER, 16],
      [DATA, 512, true],
      [DATA, 512, true],
      [DATA, 512, true],
      [DATA, 512, true],
      [DATA, 512, true],
      S,
    ], RequestError.TOO_MANY_SEGMENTS],
    ["GET_ID in five segments", RequestType.GET_ID, 0, [
      [HEADER, 16],
      [DATA, 4, true],
      [DATA, 4, true],
      [DATA, 4, true],
      [DATA, 4, true],
      [DATA, 4, true],
      S,
    ], RequestError.TOO_MANY_SEGMENTS],
  ];
  for (const [name, type, sector, buffers, error] of cases) {
    header(type, sector);
    const r = parse(buffers);
    assert.equal(r.describe().error, nameOf(RequestError, error), name);
    assert.equal(r.kind, RequestKind.INVALID, name);
    assert.equal(r.statusAddress, buffers.at(-1)![0] + buffers.at(-1)![1] - 1, name);
    assert.equal(usedLength(r, RequestStatus.IOERR), 1, name);
  }
});

Deno.test("buffers adding up to 2^32 bytes are INVALID even when each is in memory", () => {
  header(RequestType.OUT);
  const big = MEMORY.size; // 64 KiB
  const buffers: Buf[] = [[HEADER, 16]];
  for (let i = 0; i < 65536; i++) buffers.push([0, big]);
  buffers.push([STATUS, 1, true]);
  const chain = new DescriptorChain(buffers.length);
  chain.reset(0);
  for (const [a, l, w] of buffers) chain.push(a, l, !!w);
  const r = new BlkRequest(4);
  parseRequest(chain, MEMORY, { capacity: 2 ** 40, segMax: 1 << 20 }, r);
  assert.equal(r.describe().error, "CHAIN_TOO_LARGE");
});

Deno.test("limits: exactly seg_max segments and the last sector are accepted", () => {
  header(RequestType.IN, 96);
  const r = parse([
    [HEADER, 16],
    [DATA, 512, true],
    [DATA + 512, 512, true],
    [DATA + 1024, 512, true],
    [DATA + 1536, 512, true],
    [STATUS, 1, true],
  ]);
  assert.equal(r.kind, RequestKind.READ);
  assert.equal(r.segmentCount, 4);
  assert.equal(r.dataLength, 2048);
});

Deno.test("a record is fully rewritten by each parse and copies into a shared slot", () => {
  const record = new BlkRequest(LIMITS.segMax);
  header(RequestType.IN, 3);
  parse([[HEADER, 16], [DATA, 1024, true], [STATUS, 1, true]], LIMITS, record);
  assert.equal(record.segmentCount, 1);
  header(RequestType.IN, 3);
  parse([[HEADER, 16], [DATA, 1024]], LIMITS, record); // no status byte now
  assert.deepEqual(record.describe(), {
    kind: "UNANSWERABLE",
    error: "STATUS_NOT_WRITABLE",
    head: 9,
    sector: 0,
    dataLength: 0,
    statusAddress: -1,
    segments: [],
  });

  header(RequestType.OUT, 8);
  parse([[HEADER, 16], [DATA, 512], [DATA + 512, 512], [STATUS, 1, true]], LIMITS, record);
  const words = requestRecordWords(LIMITS.segMax);
  const pool = new Float64Array(new SharedArrayBuffer(8 * 3 * words));
  const slot = new BlkRequest(LIMITS.segMax, pool, 2 * words);
  slot.copyFrom(record);
  assert.deepEqual(slot.describe(), record.describe());
  assert.ok(pool.subarray(0, 2 * words).every((w) => w === 0), "other slots untouched");
});
