/**
 * DISCARD and WRITE_ZEROES (virtio 1.2 §5.2.6) through the legacy BAR with
 * hand-written rings, over a RAM disk (which zeros what it is asked to give
 * back): which features and config fields the device offers, what each
 * request does, and §6 class 12 — every segment is checked (flags, count,
 * range, length, alignment) before any runs, so a bad request changes
 * nothing on the medium and nothing in guest memory but its status byte.
 */

import assert from "node:assert/strict";
import type { DiscardOptions } from "../../src/blk/device.ts";
import {
  BlkConfig,
  BlkFeature,
  RangeFlag,
  RangeSegment,
  REQUEST_HEADER_SIZE,
  RequestStatus,
  RequestType,
} from "../../src/blk/spec.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { DeviceStatus } from "../../src/virtio/spec.ts";
import { QueueFault } from "../../src/virtio/split_queue.ts";
import { pattern } from "../helpers/harness.ts";
import { type ChainBuffer, RawGuest, STATUS_UNTOUCHED } from "../helpers/raw_guest.ts";

const SECTOR = 512;
const DISK_BYTES = 1 << 20;
const CAPACITY = DISK_BYTES / SECTOR;
const { OK, IOERR, UNSUPP } = RequestStatus;
const { DISCARD, WRITE_ZEROES } = RequestType;

/** One segment as the guest writes it (sector may be a bigint to reach past 2^53). */
interface Segment {
  readonly sector: number | bigint;
  readonly sectors: number;
  readonly flags?: number;
}

/** A guest over a RAM disk filled with a pattern, so zeroed bytes show. */
function guest(options: { discard?: DiscardOptions; readOnly?: boolean } = {}): RawGuest {
  const g = RawGuest.create({
    diskBytes: DISK_BYTES,
    readOnly: options.readOnly,
    device: { discard: options.discard },
  });
  g.medium.set(pattern(DISK_BYTES, 5));
  return g;
}

/** The segment table's bytes. */
function table(segments: readonly Segment[]): Uint8Array {
  const bytes = new Uint8Array(segments.length * RangeSegment.SIZE);
  const view = new DataView(bytes.buffer);
  segments.forEach((s, i) => {
    const at = i * RangeSegment.SIZE;
    view.setBigUint64(at + RangeSegment.SECTOR, BigInt(s.sector), true);
    view.setUint32(at + RangeSegment.NUM_SECTORS, s.sectors, true);
    view.setUint32(at + RangeSegment.FLAGS, s.flags ?? 0, true);
  });
  return bytes;
}

/**
 * A DISCARD or WRITE_ZEROES chain: header, the table (in `pieces` buffers
 * of the sizes given, default one; device-writable when `writable`), status.
 */
function rangeRequest(
  g: RawGuest,
  type: number,
  tableBytes: Uint8Array,
  options: { pieces?: number[]; writable?: boolean; indirect?: boolean } = {},
): { head: number; status: number } {
  const header = g.alloc(REQUEST_HEADER_SIZE);
  g.writeHeader(header, type, 0);
  const buffers: ChainBuffer[] = [{ addr: header, len: REQUEST_HEADER_SIZE }];
  let from = 0;
  for (const length of options.pieces ?? [tableBytes.length]) {
    const at = g.alloc(length);
    g.writeBytes(at, tableBytes.subarray(from, from + length));
    buffers.push({ addr: at, len: length, write: options.writable });
    from += length;
  }
  const status = g.alloc(1, STATUS_UNTOUCHED);
  buffers.push({ addr: status, len: 1, write: true });
  const head = options.indirect
    ? g.indirectChain(g.takeDescriptors(1)[0], g.alloc(16 * buffers.length), buffers)
    : g.chain(buffers, g.takeDescriptors(buffers.length));
  return { head, status };
}

/**
 * Submits one request and checks its answer: `status` with used length 1,
 * a healthy queue, and guest memory changed only in its status byte and the
 * used ring.
 */
function answer(g: RawGuest, request: { head: number; status: number }, status: number): void {
  const usedBefore = g.usedIdx;
  g.offer(request.head);
  const before = g.snapshot();
  g.notify();
  assert.deepEqual(g.usedSince(usedBefore), [{ id: request.head, len: 1 }]);
  assert.equal(g.u8(request.status), status, "status byte");
  assert.equal(g.queue.fault, QueueFault.NONE);
  assert.equal(g.status & DeviceStatus.DEVICE_NEEDS_RESET, 0);
  g.assertChangedOnly(before, [{ start: request.status, length: 1 }, g.usedRange]);
}

/** Sends a request of `segments` and checks its status. */
function send(g: RawGuest, type: number, segments: readonly Segment[], status: number): void {
  answer(g, rangeRequest(g, type, table(segments)), status);
}

/** The medium with `[sector, +sectors)` of each range zeroed. */
function zeroed(medium: Uint8Array, ranges: readonly [number, number][]): Uint8Array {
  const out = medium.slice();
  for (const [sector, sectors] of ranges) out.fill(0, sector * SECTOR, (sector + sectors) * SECTOR);
  return out;
}

function config(g: RawGuest, field: number, size: 1 | 2 | 4): number {
  return g.read(LegacyRegister.CONFIG + field, size) >>> 0;
}

function offers(g: RawGuest, feature: number): boolean {
  return (g.offered & (1 << feature)) !== 0;
}

Deno.test("features: WRITE_ZEROES on a writable medium without asking; DISCARD only with `discard`, ACRN's defaults in config", () => {
  const plain = guest();
  assert.equal(offers(plain, BlkFeature.WRITE_ZEROES), true);
  assert.equal(offers(plain, BlkFeature.DISCARD), false);
  assert.equal(config(plain, BlkConfig.MAX_DISCARD_SECTORS, 4), 0, "no discard fields");
  assert.equal(config(plain, BlkConfig.MAX_WRITE_ZEROES_SECTORS, 4), CAPACITY);
  assert.equal(config(plain, BlkConfig.MAX_WRITE_ZEROES_SEG, 4), 1);
  assert.equal(config(plain, BlkConfig.WRITE_ZEROES_MAY_UNMAP, 1), 0, "unmap needs discard");

  const acrn = guest({ discard: {} });
  assert.equal(offers(acrn, BlkFeature.DISCARD), true);
  assert.equal(offers(acrn, BlkFeature.WRITE_ZEROES), true);
  // ACRN's defaults: the whole disk in one segment, any alignment.
  assert.equal(config(acrn, BlkConfig.MAX_DISCARD_SECTORS, 4), CAPACITY);
  assert.equal(config(acrn, BlkConfig.MAX_DISCARD_SEG, 4), 1);
  assert.equal(config(acrn, BlkConfig.DISCARD_SECTOR_ALIGNMENT, 4), 0);
  assert.equal(config(acrn, BlkConfig.WRITE_ZEROES_MAY_UNMAP, 1), 1);
});

Deno.test("discard=max_discard_sectors:max_discard_seg:discard_sector_alignment lands at legacy config offsets 36–59", () => {
  const g = guest({ discard: { maxSectors: 64, maxSegments: 8, alignment: 16 } });
  assert.equal(config(g, BlkConfig.MAX_DISCARD_SECTORS, 4), 64);
  assert.equal(config(g, BlkConfig.MAX_DISCARD_SEG, 4), 8);
  assert.equal(config(g, BlkConfig.DISCARD_SECTOR_ALIGNMENT, 4), 16);
  assert.equal(config(g, BlkConfig.MAX_WRITE_ZEROES_SECTORS, 4), 64);
  assert.equal(config(g, BlkConfig.MAX_WRITE_ZEROES_SEG, 4), 8);
  assert.equal(config(g, BlkConfig.WRITE_ZEROES_MAY_UNMAP, 1), 1);
});

Deno.test("a discard field outside its range is refused when the device is made", () => {
  for (
    const [discard, name] of [
      [{ maxSectors: 0 }, "max_discard_sectors"],
      [{ maxSectors: 2 ** 32 }, "max_discard_sectors"],
      [{ maxSegments: 0 }, "max_discard_seg"],
      [{ maxSegments: 257 }, "max_discard_seg"],
      [{ alignment: -1 }, "discard_sector_alignment"],
      [{ alignment: 1.5 }, "discard_sector_alignment"],
    ] as const
  ) {
    assert.throws(() => guest({ discard }), (e: Error) => e.message.includes(name));
  }
});

Deno.test("DISCARD gives back every range of a multi-segment request (a RAM disk zeros them), nothing else", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  send(g, DISCARD, [{ sector: 8, sectors: 2 }, { sector: 100, sectors: 1 }, {
    sector: CAPACITY - 3,
    sectors: 3,
  }], OK);
  assert.deepEqual(g.medium, zeroed(before, [[8, 2], [100, 1], [CAPACITY - 3, 3]]));
});

Deno.test("WRITE_ZEROES zeros its ranges, with and without unmap, and a zero-sector segment is a no-op", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  send(g, WRITE_ZEROES, [
    { sector: 1, sectors: 1 },
    { sector: 40, sectors: 8, flags: RangeFlag.UNMAP },
    { sector: 500, sectors: 0 },
  ], OK);
  assert.deepEqual(g.medium, zeroed(before, [[1, 1], [40, 8]]));
});

Deno.test("the segment table is read across several buffers and from an indirect table", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  const bytes = table([{ sector: 3, sectors: 1 }, { sector: 9, sectors: 2 }]);
  answer(g, rangeRequest(g, WRITE_ZEROES, bytes, { pieces: [5, 20, 7] }), OK);
  answer(g, rangeRequest(g, DISCARD, table([{ sector: 30, sectors: 1 }]), { indirect: true }), OK);
  assert.deepEqual(g.medium, zeroed(before, [[3, 1], [9, 2], [30, 1]]));
});

Deno.test("§6 class 12: a reserved flag bit makes DISCARD and WRITE_ZEROES UNSUPP, and no segment runs", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  for (const type of [DISCARD, WRITE_ZEROES]) {
    for (const flags of [2, 0x8000_0000, 0xffff_fffe]) {
      // The good segment comes first: it must not run either.
      send(g, type, [{ sector: 0, sectors: 4 }, { sector: 10, sectors: 1, flags }], UNSUPP);
    }
  }
  assert.deepEqual(g.medium, before);
});

Deno.test("§6 class 12: unmap on a DISCARD is UNSUPP (it is a WRITE_ZEROES flag), and nothing runs", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  send(g, DISCARD, [{ sector: 0, sectors: 4 }, {
    sector: 10,
    sectors: 1,
    flags: RangeFlag.UNMAP,
  }], UNSUPP);
  // A flag beats a range error: the device MUST answer UNSUPP for it (§5.2.6.2).
  send(g, DISCARD, [{ sector: CAPACITY, sectors: 1, flags: RangeFlag.UNMAP }], UNSUPP);
  assert.deepEqual(g.medium, before);
});

Deno.test("§6 class 12: more segments than max_discard_seg / max_write_zeroes_seg is IOERR, and nothing runs", () => {
  const g = guest({ discard: { maxSegments: 2 } });
  const before = g.medium.slice();
  const three = [{ sector: 0, sectors: 1 }, { sector: 2, sectors: 1 }, { sector: 4, sectors: 1 }];
  send(g, DISCARD, three, IOERR);
  send(g, WRITE_ZEROES, three, IOERR);
  // The limit itself is fine.
  send(g, DISCARD, three.slice(0, 2), OK);
  assert.deepEqual(g.medium, zeroed(before, [[0, 1], [2, 1]]));
  // ACRN's default is one segment: a Linux guest sending two gets IOERR, not a half-done discard.
  const acrn = guest({ discard: {} });
  const untouched = acrn.medium.slice();
  send(acrn, DISCARD, three.slice(0, 2), IOERR);
  assert.deepEqual(acrn.medium, untouched);
});

Deno.test("§6 class 12 and §6 class 8: a segment past the capacity, or whose end overflows u64, is IOERR; the exact end is valid", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  const first = { sector: 0, sectors: 1 };
  for (const type of [DISCARD, WRITE_ZEROES]) {
    send(g, type, [first, { sector: CAPACITY - 1, sectors: 2 }], IOERR);
    send(g, type, [first, { sector: CAPACITY, sectors: 1 }], IOERR);
    send(g, type, [first, { sector: CAPACITY + 1, sectors: 0 }], IOERR);
    // sector + num_sectors wraps past 2^64 to a small number.
    send(g, type, [first, { sector: (1n << 64n) - 1n, sectors: 2 }], IOERR);
    send(g, type, [first, { sector: 2 ** 53, sectors: 1 }], IOERR);
    // sector * 512 wraps past 2^64 to 0.
    send(g, type, [first, { sector: 1n << 55n, sectors: 1 }], IOERR);
  }
  assert.deepEqual(g.medium, before, "no segment of a refused request ran");
  send(g, DISCARD, [{ sector: CAPACITY - 1, sectors: 1 }], OK);
  assert.deepEqual(g.medium, zeroed(before, [[CAPACITY - 1, 1]]));
});

Deno.test("§6 class 12: a segment longer than max_discard_sectors / max_write_zeroes_sectors is IOERR", () => {
  const g = guest({ discard: { maxSectors: 8, maxSegments: 2 } });
  const before = g.medium.slice();
  send(g, DISCARD, [{ sector: 0, sectors: 8 }, { sector: 16, sectors: 9 }], IOERR);
  send(g, WRITE_ZEROES, [{ sector: 0, sectors: 8 }, { sector: 16, sectors: 9 }], IOERR);
  assert.deepEqual(g.medium, before);
  send(g, WRITE_ZEROES, [{ sector: 16, sectors: 8 }], OK);
  assert.deepEqual(g.medium, zeroed(before, [[16, 8]]));
});

Deno.test("§6 class 12: a DISCARD not on discard_sector_alignment is IOERR; WRITE_ZEROES has no alignment", () => {
  const g = guest({ discard: { maxSegments: 2, alignment: 8 } });
  const before = g.medium.slice();
  send(g, DISCARD, [{ sector: 8, sectors: 1 }, { sector: 12, sectors: 1 }], IOERR);
  assert.deepEqual(g.medium, before);
  send(g, DISCARD, [{ sector: 16, sectors: 3 }], OK);
  send(g, WRITE_ZEROES, [{ sector: 5, sectors: 1 }], OK);
  assert.deepEqual(g.medium, zeroed(before, [[16, 3], [5, 1]]));
});

Deno.test("§6 class 12: a table that is empty, not whole 16-byte segments, or device-writable is IOERR", () => {
  const g = guest({ discard: { maxSegments: 4 } });
  const before = g.medium.slice();
  const good = table([{ sector: 0, sectors: 1 }, { sector: 4, sectors: 1 }]);
  for (const type of [DISCARD, WRITE_ZEROES]) {
    // No table at all: header and status only.
    const header = g.alloc(REQUEST_HEADER_SIZE);
    g.writeHeader(header, type, 0);
    const status = g.alloc(1, STATUS_UNTOUCHED);
    const head = g.chain([{ addr: header, len: REQUEST_HEADER_SIZE }, {
      addr: status,
      len: 1,
      write: true,
    }], g.takeDescriptors(2));
    answer(g, { head, status }, IOERR);
    answer(g, rangeRequest(g, type, good.subarray(0, 24)), IOERR);
    answer(g, rangeRequest(g, type, good.subarray(0, 15)), IOERR);
    // The device only reads the table: one it may write is a malformed request.
    answer(g, rangeRequest(g, type, good, { writable: true }), IOERR);
  }
  assert.deepEqual(g.medium, before);
});

Deno.test("without `discard`, DISCARD is UNSUPP and changes nothing", () => {
  const g = guest();
  const before = g.medium.slice();
  send(g, DISCARD, [{ sector: 0, sectors: 1 }], UNSUPP);
  assert.deepEqual(g.medium, before);
});

Deno.test("without `discard`, WRITE_ZEROES's unmap flag zeros but cannot deallocate (write_zeroes_may_unmap 0)", () => {
  const g = guest();
  const before = g.medium.slice();
  send(g, WRITE_ZEROES, [{ sector: 6, sectors: 2, flags: RangeFlag.UNMAP }], OK);
  assert.deepEqual(g.medium, zeroed(before, [[6, 2]]));
});

Deno.test("ro: neither feature is offered, and both requests are UNSUPP with the medium unchanged", () => {
  const g = guest({ readOnly: true, discard: {} });
  assert.equal(offers(g, BlkFeature.DISCARD), false);
  assert.equal(offers(g, BlkFeature.WRITE_ZEROES), false);
  assert.equal(offers(g, BlkFeature.RO), true);
  const before = g.medium.slice();
  send(g, DISCARD, [{ sector: 0, sectors: 1 }], UNSUPP);
  send(g, WRITE_ZEROES, [{ sector: 0, sectors: 1 }], UNSUPP);
  assert.deepEqual(g.medium, before);
});
