/**
 * A virtio-blk request, parsed once from a popped descriptor chain into a
 * typed record, and the parser that makes it (virtio 1.2 §5.2.6).
 *
 * The record is a fixed-size run of Float64 words, so it can live in an
 * ordinary array (the in-process executor) or in a slot of the blockif
 * request pool in a SharedArrayBuffer (the worker engine): the parser writes
 * it once and every executor reads the same typed fields. This module owns
 * the record's layout.
 *
 * Framing follows the "any layout" rule (§2.7.4): the header is the first 16
 * bytes the device may read, the status is the last byte it may write, and
 * the data is what lies between. The legacy framing (header, data and status
 * in separate descriptors) is a special case of it.
 *
 * @module
 */

import { type GuestMemory, joinU64 } from "../memory/guest_memory.ts";
import type { DescriptorChain } from "../virtio/descriptor_chain.ts";
import {
  MAX_RANGE_SEGMENTS,
  RangeFlag,
  RangeSegment,
  REQUEST_HEADER_SIZE,
  REQUEST_TYPE_BARRIER,
  RequestHeader,
  RequestType,
  SECTOR_SHIFT,
  SECTOR_SIZE,
} from "./spec.ts";

/** What a parsed request asks for. */
export const RequestKind = {
  /** Read `dataLength` bytes at `sector` into the segments. */
  READ: 0,
  /** Write the segments' `dataLength` bytes at `sector`. */
  WRITE: 1,
  /** Make every completed write stable. */
  FLUSH: 2,
  /** Write the device serial (up to 20 bytes) into the segments. */
  GET_ID: 3,
  /** A request type the device does not implement: status UNSUPP. */
  UNSUPPORTED: 4,
  /** A malformed request with a usable status byte: status IOERR. */
  INVALID: 5,
  /** A malformed request without a usable status byte: returned with used length 0. */
  UNANSWERABLE: 6,
  /** Give back the ranges (the device may deallocate them; virtio 1.2 §5.2.6.2). */
  DISCARD: 7,
  /** Make the ranges read as zeros, deallocating those marked unmap where allowed. */
  WRITE_ZEROES: 8,
} as const;

/** One of {@linkcode RequestKind}'s values. */
export type RequestKindCode = typeof RequestKind[keyof typeof RequestKind];

/** Why a request is INVALID or UNANSWERABLE. */
export const RequestError = {
  NONE: 0,
  /** The chain has no buffers at all. */
  EMPTY_CHAIN: 1,
  /** The last buffer is not device-writable, so there is no status byte. */
  STATUS_NOT_WRITABLE: 2,
  /** The last buffer has length 0. */
  STATUS_ZERO_LENGTH: 3,
  /** The status byte lies outside guest memory. */
  STATUS_OUTSIDE_MEMORY: 4,
  /** A buffer of length 0. */
  ZERO_LENGTH_BUFFER: 5,
  /** A buffer not wholly inside guest memory (or with addr + len overflowing). */
  BUFFER_OUTSIDE_MEMORY: 6,
  /** A device-readable buffer after a device-writable one (§2.7.4.2). */
  READABLE_AFTER_WRITABLE: 7,
  /** The buffers add up to 2^32 bytes or more. */
  CHAIN_TOO_LARGE: 8,
  /** Fewer than 16 device-readable bytes: no complete header. */
  HEADER_TOO_SHORT: 9,
  /** Data in the wrong direction for the type (e.g. writable data on a write). */
  WRONG_DATA_DIRECTION: 10,
  /** Data length not a multiple of 512. */
  UNALIGNED_LENGTH: 11,
  /** sector + length/512 beyond the capacity (compared without overflow). */
  OUT_OF_RANGE: 12,
  /** More data segments than seg_max, or more DISCARD/WRITE_ZEROES segments than their max. */
  TOO_MANY_SEGMENTS: 13,
  /** A DISCARD/WRITE_ZEROES segment table that is empty or not whole 16-byte segments. */
  RANGE_TABLE_LENGTH: 14,
  /** A DISCARD/WRITE_ZEROES segment of more sectors than max_discard/write_zeroes_sectors. */
  SEGMENT_TOO_LONG: 15,
  /** A DISCARD segment whose first sector is not a multiple of discard_sector_alignment. */
  UNALIGNED_SECTOR: 16,
  /** UNSUPPORTED: a DISCARD/WRITE_ZEROES segment with a reserved flag bit set. */
  UNKNOWN_FLAGS: 17,
  /** UNSUPPORTED: a DISCARD segment with the unmap flag (it is for WRITE_ZEROES only). */
  UNMAP_ON_DISCARD: 18,
  /** UNSUPPORTED: DISCARD or WRITE_ZEROES on a device that does not offer it. */
  NOT_OFFERED: 19,
} as const;

/** One of {@linkcode RequestError}'s values. */
export type RequestErrorCode = typeof RequestError[keyof typeof RequestError];

/**
 * Word indexes of a request record (Float64 words). A READ, WRITE or GET_ID
 * keeps its data segments as (address, length) pairs; a DISCARD or
 * WRITE_ZEROES keeps its ranges as (sector, sectors + 2^32 × unmap) pairs,
 * with SECTOR and DATA_LENGTH the span they lie in (from the lowest sector
 * to the end of the highest range), which the request pool's overlap test
 * looks at first.
 */
export const RequestField = {
  KIND: 0,
  ERROR: 1,
  HEAD: 2,
  SECTOR: 3,
  DATA_LENGTH: 4,
  SEGMENT_COUNT: 5,
  /** GPA of the status byte, or -1 when there is none. */
  STATUS_ADDRESS: 6,
  /** First of SEGMENT_COUNT pairs: data segments, or ranges. */
  SEGMENTS: 7,
} as const;

/** Float64 words of a record that holds up to `slots` data segments or ranges. */
export function requestRecordWords(slots: number): number {
  return RequestField.SEGMENTS + 2 * slots;
}

/** What DISCARD or WRITE_ZEROES segments are checked against (config space, §5.2.4). */
export interface RangeLimits {
  /** Most sectors one segment may cover (max_discard_sectors, max_write_zeroes_sectors). */
  readonly maxSectors: number;
  /** Most segments one request may have (max_discard_seg, max_write_zeroes_seg). */
  readonly maxSegments: number;
  /**
   * DISCARD: a segment's first sector must be a multiple of this
   * (discard_sector_alignment; 0 or 1: any sector). Not used for WRITE_ZEROES.
   */
  readonly alignment: number;
}

/** The WRITE_ZEROES limits, and whether its unmap flag may deallocate. */
export interface WriteZeroesLimits extends RangeLimits {
  /** write_zeroes_may_unmap: a segment's unmap flag lets the medium deallocate it. */
  readonly mayUnmap: boolean;
}

/** The limits a request is checked against. */
export interface RequestLimits {
  /** Device capacity in 512-byte sectors. */
  readonly capacity: number;
  /** Most data segments one request may have (config seg_max). */
  readonly segMax: number;
  /** DISCARD's limits when the device offers VIRTIO_BLK_F_DISCARD; absent: UNSUPP. */
  readonly discard?: RangeLimits;
  /** WRITE_ZEROES's limits when the device offers VIRTIO_BLK_F_WRITE_ZEROES; absent: UNSUPP. */
  readonly writeZeroes?: WriteZeroesLimits;
}

/**
 * Pairs a record must hold for a device with `limits`: its data segments,
 * or its DISCARD/WRITE_ZEROES ranges, whichever may be more.
 */
export function recordSlots(limits: RequestLimits): number {
  return Math.max(
    limits.segMax,
    limits.discard?.maxSegments ?? 0,
    limits.writeZeroes?.maxSegments ?? 0,
  );
}

/** Whether requests of `kind` change the medium's bytes (and so are ordered against others). */
export function changesMedium(kind: RequestKindCode): boolean {
  return kind === RequestKind.WRITE || kind === RequestKind.DISCARD ||
    kind === RequestKind.WRITE_ZEROES;
}

/** Whether `kind` keeps ranges (not data segments) in its record. */
function hasRanges(kind: RequestKindCode): boolean {
  return kind === RequestKind.DISCARD || kind === RequestKind.WRITE_ZEROES;
}

/** A typed view of one request record. */
export class BlkRequest {
  /** The record's words. */
  readonly fields: Float64Array;
  /** Index of the record's first word in {@linkcode fields}. */
  readonly base: number;

  /**
   * Views one request record: a private one, or a slot of shared storage
   * such as the blockif pool's records.
   *
   * @param segMax pairs the record holds: data segments or ranges (see {@linkcode recordSlots})
   * @param fields storage to view (default: a fresh private array)
   * @param base index of the record's first word in `fields`
   */
  constructor(readonly segMax: number, fields?: Float64Array, base = 0) {
    this.fields = fields ?? new Float64Array(requestRecordWords(segMax));
    this.base = base;
  }

  /** What the request asks for, as `parseRequest` classified it. */
  get kind(): RequestKindCode {
    return this.fields[this.base + RequestField.KIND] as RequestKindCode;
  }
  /**
   * Why the request is INVALID or UNANSWERABLE, or why a DISCARD or
   * WRITE_ZEROES is UNSUPPORTED; NONE otherwise.
   */
  get error(): RequestErrorCode {
    return this.fields[this.base + RequestField.ERROR] as RequestErrorCode;
  }
  /** The chain's head descriptor index: the `id` its used element carries. */
  get head(): number {
    return this.fields[this.base + RequestField.HEAD];
  }
  /** First sector (512-byte units); of a DISCARD or WRITE_ZEROES, its lowest range's. */
  get sector(): number {
    return this.fields[this.base + RequestField.SECTOR];
  }
  /** Byte offset on the disk of the first sector. */
  get offset(): number {
    return this.fields[this.base + RequestField.SECTOR] * SECTOR_SIZE;
  }
  /**
   * Data bytes: what a READ or WRITE transfers (a multiple of 512), or the
   * room GET_ID has for the serial; for a DISCARD or WRITE_ZEROES, the span
   * from `offset` to the end of its highest range; 0 for every other kind.
   */
  get dataLength(): number {
    return this.fields[this.base + RequestField.DATA_LENGTH];
  }
  /**
   * Data segments recorded (at most `segMax`), or a DISCARD's or
   * WRITE_ZEROES's ranges (those of at least one sector); 0 for INVALID and
   * UNANSWERABLE requests.
   */
  get segmentCount(): number {
    return this.fields[this.base + RequestField.SEGMENT_COUNT];
  }
  /** Guest-physical address of the status byte (the chain's last writable byte), or -1. */
  get statusAddress(): number {
    return this.fields[this.base + RequestField.STATUS_ADDRESS];
  }
  /** Guest-physical address of data segment `i` (header and status byte excluded). */
  segmentAddress(i: number): number {
    return this.fields[this.base + RequestField.SEGMENTS + 2 * i];
  }
  /** Byte length of data segment `i`. */
  segmentLength(i: number): number {
    return this.fields[this.base + RequestField.SEGMENTS + 2 * i + 1];
  }

  /** First sector of range `i` of a DISCARD or WRITE_ZEROES. */
  rangeSector(i: number): number {
    return this.fields[this.base + RequestField.SEGMENTS + 2 * i];
  }
  /** Sectors of range `i` (at least one). */
  rangeSectors(i: number): number {
    return this.fields[this.base + RequestField.SEGMENTS + 2 * i + 1] % TWO_POW_32;
  }
  /** Whether range `i` of a WRITE_ZEROES may be deallocated (unmap, where the device allows it). */
  rangeUnmap(i: number): boolean {
    return this.fields[this.base + RequestField.SEGMENTS + 2 * i + 1] >= TWO_POW_32;
  }

  /**
   * Byte extents of the medium the request reads or changes: a READ's or
   * WRITE's one, a DISCARD's or WRITE_ZEROES's ranges, none for the rest.
   */
  get extentCount(): number {
    const kind = this.kind;
    if (kind === RequestKind.READ || kind === RequestKind.WRITE) return 1;
    return hasRanges(kind) ? this.segmentCount : 0;
  }
  /** Byte offset where extent `i` starts. */
  extentStart(i: number): number {
    return hasRanges(this.kind) ? this.rangeSector(i) * SECTOR_SIZE : this.offset;
  }
  /** Byte offset where extent `i` ends (exclusive). */
  extentEnd(i: number): number {
    return hasRanges(this.kind)
      ? (this.rangeSector(i) + this.rangeSectors(i)) * SECTOR_SIZE
      : this.offset + this.dataLength;
  }

  /** Copies another record into this one (e.g. into a pool slot). */
  copyFrom(other: BlkRequest): void {
    const words = requestRecordWords(other.segmentCount);
    for (let i = 0; i < words; i++) this.fields[this.base + i] = other.fields[other.base + i];
  }

  /**
   * A plain-object picture of the request, for tests and diagnostics: a
   * DISCARD or WRITE_ZEROES lists `ranges` instead of `segments`.
   */
  describe(): {
    kind: string;
    error: string;
    head: number;
    sector: number;
    dataLength: number;
    statusAddress: number;
    segments: { address: number; length: number }[];
    ranges?: { sector: number; sectors: number; unmap: boolean }[];
  } {
    const ranged = hasRanges(this.kind);
    const segments = [];
    const ranges = [];
    for (let i = 0; i < this.segmentCount; i++) {
      if (ranged) {
        ranges.push({
          sector: this.rangeSector(i),
          sectors: this.rangeSectors(i),
          unmap: this.rangeUnmap(i),
        });
      } else {
        segments.push({ address: this.segmentAddress(i), length: this.segmentLength(i) });
      }
    }
    return {
      kind: nameOf(RequestKind, this.kind),
      error: nameOf(RequestError, this.error),
      head: this.head,
      sector: this.sector,
      dataLength: this.dataLength,
      statusAddress: this.statusAddress,
      segments,
      ...(ranged ? { ranges } : {}),
    };
  }
}

function nameOf(table: Record<string, number>, value: number): string {
  return Object.keys(table).find((key) => table[key] === value) ?? String(value);
}

const TWO_POW_32 = 0x1_0000_0000;

/**
 * Parses the chain into `out`. Never throws for guest input: every defect
 * becomes an INVALID request (answered IOERR) when the chain has a usable
 * status byte, and an UNANSWERABLE one otherwise. The 16-byte header is read
 * from guest memory exactly once.
 */
export function parseRequest(
  chain: DescriptorChain,
  memory: GuestMemory,
  limits: RequestLimits,
  out: BlkRequest,
): void {
  const f = out.fields;
  const b = out.base;
  f[b + RequestField.HEAD] = chain.head;
  f[b + RequestField.SECTOR] = 0;
  f[b + RequestField.DATA_LENGTH] = 0;
  f[b + RequestField.SEGMENT_COUNT] = 0;
  f[b + RequestField.STATUS_ADDRESS] = -1;

  const count = chain.count;
  if (count === 0) return finish(out, RequestKind.UNANSWERABLE, RequestError.EMPTY_CHAIN);

  // The status byte: the last byte of the last buffer, which must be writable.
  const last = count - 1;
  if (chain.writable[last] !== 1) {
    return finish(out, RequestKind.UNANSWERABLE, RequestError.STATUS_NOT_WRITABLE);
  }
  if (chain.length[last] === 0) {
    return finish(out, RequestKind.UNANSWERABLE, RequestError.STATUS_ZERO_LENGTH);
  }
  const statusAddress = chain.address[last] + chain.length[last] - 1;
  if (memory.regionFor(statusAddress, 1) === undefined) {
    return finish(out, RequestKind.UNANSWERABLE, RequestError.STATUS_OUTSIDE_MEMORY);
  }
  f[b + RequestField.STATUS_ADDRESS] = statusAddress;

  // Every buffer: non-empty, inside guest memory, readable ones first.
  let readableBytes = 0;
  let writableBytes = 0;
  for (let i = 0; i < count; i++) {
    const length = chain.length[i];
    if (length === 0) return finish(out, RequestKind.INVALID, RequestError.ZERO_LENGTH_BUFFER);
    if (memory.regionFor(chain.address[i], length) === undefined) {
      return finish(out, RequestKind.INVALID, RequestError.BUFFER_OUTSIDE_MEMORY);
    }
    if (chain.writable[i] === 1) {
      writableBytes += length;
    } else {
      if (writableBytes > 0) {
        return finish(out, RequestKind.INVALID, RequestError.READABLE_AFTER_WRITABLE);
      }
      readableBytes += length;
    }
  }
  if (readableBytes + writableBytes >= TWO_POW_32) {
    return finish(out, RequestKind.INVALID, RequestError.CHAIN_TOO_LARGE);
  }
  if (readableBytes < REQUEST_HEADER_SIZE) {
    return finish(out, RequestKind.INVALID, RequestError.HEADER_TOO_SHORT);
  }

  // Copy the header once.
  const header = readHeader(chain, memory);
  const type = (header.type & ~REQUEST_TYPE_BARRIER) >>> 0;
  const readableData = readableBytes - REQUEST_HEADER_SIZE;
  const writableData = writableBytes - 1;

  switch (type) {
    case RequestType.IN:
    case RequestType.OUT: {
      const isRead = type === RequestType.IN;
      if (isRead ? readableData !== 0 : writableData !== 0) {
        return finish(out, RequestKind.INVALID, RequestError.WRONG_DATA_DIRECTION);
      }
      const dataLength = isRead ? writableData : readableData;
      if (dataLength % SECTOR_SIZE !== 0) {
        return finish(out, RequestKind.INVALID, RequestError.UNALIGNED_LENGTH);
      }
      const sector = header.sector;
      const sectors = dataLength >>> SECTOR_SHIFT;
      if (sector > limits.capacity || sectors > limits.capacity - sector) {
        return finish(out, RequestKind.INVALID, RequestError.OUT_OF_RANGE);
      }
      if (!collectSegments(chain, isRead, limits.segMax, out)) {
        return finish(out, RequestKind.INVALID, RequestError.TOO_MANY_SEGMENTS);
      }
      f[b + RequestField.SECTOR] = sector;
      f[b + RequestField.DATA_LENGTH] = dataLength;
      return finish(out, isRead ? RequestKind.READ : RequestKind.WRITE, RequestError.NONE);
    }
    case RequestType.FLUSH:
    case RequestType.FLUSH_OUT:
      if (readableData !== 0 || writableData !== 0) {
        return finish(out, RequestKind.INVALID, RequestError.WRONG_DATA_DIRECTION);
      }
      return finish(out, RequestKind.FLUSH, RequestError.NONE);
    case RequestType.GET_ID:
      if (readableData !== 0) {
        return finish(out, RequestKind.INVALID, RequestError.WRONG_DATA_DIRECTION);
      }
      if (!collectSegments(chain, true, limits.segMax, out)) {
        return finish(out, RequestKind.INVALID, RequestError.TOO_MANY_SEGMENTS);
      }
      f[b + RequestField.DATA_LENGTH] = writableData;
      return finish(out, RequestKind.GET_ID, RequestError.NONE);
    case RequestType.DISCARD:
    case RequestType.WRITE_ZEROES:
      return parseRanges(chain, memory, limits, type === RequestType.DISCARD, {
        readableData,
        writableData,
      }, out);
    default:
      return finish(out, RequestKind.UNSUPPORTED, RequestError.NONE);
  }
}

// Reused by parseRanges: the segment table, copied out of guest memory once.
const tableBytes = new Uint8Array(MAX_RANGE_SEGMENTS * RangeSegment.SIZE);
const tableView = new DataView(tableBytes.buffer);

/**
 * A DISCARD or WRITE_ZEROES (virtio 1.2 §5.2.6): copies its segment table
 * out of guest memory once, then checks every segment before any is kept,
 * so a request runs all of its segments or none. A reserved flag, or unmap
 * on a DISCARD, makes the request UNSUPP whatever else is wrong with it
 * (the device MUST answer UNSUPP for them, §5.2.6.2); otherwise a segment
 * past the capacity (compared without overflow), longer than the maximum or
 * (DISCARD) not aligned makes it INVALID (IOERR). Segments of zero sectors
 * are checked and then dropped: there is nothing to do for them.
 */
function parseRanges(
  chain: DescriptorChain,
  memory: GuestMemory,
  limits: RequestLimits,
  discard: boolean,
  data: { readableData: number; writableData: number },
  out: BlkRequest,
): void {
  const range = discard ? limits.discard : limits.writeZeroes;
  if (range === undefined) return finish(out, RequestKind.UNSUPPORTED, RequestError.NOT_OFFERED);
  // The segments are for the device to read; it writes nothing but the status.
  if (data.writableData !== 0) {
    return finish(out, RequestKind.INVALID, RequestError.WRONG_DATA_DIRECTION);
  }
  const tableLength = data.readableData;
  if (tableLength === 0 || tableLength % RangeSegment.SIZE !== 0) {
    return finish(out, RequestKind.INVALID, RequestError.RANGE_TABLE_LENGTH);
  }
  const count = tableLength / RangeSegment.SIZE;
  if (count > range.maxSegments || count > MAX_RANGE_SEGMENTS) {
    return finish(out, RequestKind.INVALID, RequestError.TOO_MANY_SEGMENTS);
  }
  gatherReadable(chain, memory, REQUEST_HEADER_SIZE, tableLength, tableBytes);
  const mayUnmap = !discard && (limits.writeZeroes?.mayUnmap ?? false);
  const alignment = discard ? range.alignment : 0;
  const f = out.fields;
  const b = out.base;
  let unsupported: RequestErrorCode = RequestError.NONE;
  let invalid: RequestErrorCode = RequestError.NONE;
  let kept = 0;
  let low = Infinity;
  let high = 0;
  for (let i = 0; i < count; i++) {
    const at = i * RangeSegment.SIZE;
    const sector = joinU64(
      tableView.getUint32(at + RangeSegment.SECTOR, true),
      tableView.getUint32(at + RangeSegment.SECTOR + 4, true),
    );
    const sectors = tableView.getUint32(at + RangeSegment.NUM_SECTORS, true);
    const flags = tableView.getUint32(at + RangeSegment.FLAGS, true);
    if ((flags & ~RangeFlag.UNMAP) !== 0) unsupported ||= RequestError.UNKNOWN_FLAGS;
    else if (discard && flags !== 0) unsupported ||= RequestError.UNMAP_ON_DISCARD;
    if (sector > limits.capacity || sectors > limits.capacity - sector) {
      invalid ||= RequestError.OUT_OF_RANGE;
    } else if (sectors > range.maxSectors) {
      invalid ||= RequestError.SEGMENT_TOO_LONG;
    } else if (alignment > 1 && sector % alignment !== 0) {
      invalid ||= RequestError.UNALIGNED_SECTOR;
    }
    if (sectors === 0 || unsupported !== RequestError.NONE || invalid !== RequestError.NONE) {
      continue;
    }
    const unmap = mayUnmap && (flags & RangeFlag.UNMAP) !== 0;
    f[b + RequestField.SEGMENTS + 2 * kept] = sector;
    f[b + RequestField.SEGMENTS + 2 * kept + 1] = sectors + (unmap ? TWO_POW_32 : 0);
    kept++;
    low = Math.min(low, sector);
    high = Math.max(high, sector + sectors);
  }
  if (unsupported !== RequestError.NONE) {
    return finish(out, RequestKind.UNSUPPORTED, unsupported);
  }
  if (invalid !== RequestError.NONE) return finish(out, RequestKind.INVALID, invalid);
  f[b + RequestField.SEGMENT_COUNT] = kept;
  f[b + RequestField.SECTOR] = kept === 0 ? 0 : low;
  f[b + RequestField.DATA_LENGTH] = kept === 0 ? 0 : (high - low) * SECTOR_SIZE;
  return finish(out, discard ? RequestKind.DISCARD : RequestKind.WRITE_ZEROES, RequestError.NONE);
}

function finish(out: BlkRequest, kind: RequestKindCode, error: RequestErrorCode): void {
  out.fields[out.base + RequestField.KIND] = kind;
  out.fields[out.base + RequestField.ERROR] = error;
  if (
    kind === RequestKind.INVALID || kind === RequestKind.UNANSWERABLE ||
    kind === RequestKind.UNSUPPORTED
  ) {
    out.fields[out.base + RequestField.SEGMENT_COUNT] = 0;
    out.fields[out.base + RequestField.DATA_LENGTH] = 0;
  }
}

// Reused by readHeader: the header's bytes, gathered across buffers.
const headerBytes = new Uint8Array(REQUEST_HEADER_SIZE);
const headerView = new DataView(headerBytes.buffer);
const parsedHeader = { type: 0, sector: 0 };

/** Gathers the first 16 readable bytes (already bounds-checked) into a private copy. */
function readHeader(chain: DescriptorChain, memory: GuestMemory): typeof parsedHeader {
  gatherReadable(chain, memory, 0, REQUEST_HEADER_SIZE, headerBytes);
  parsedHeader.type = headerView.getUint32(RequestHeader.TYPE, true);
  parsedHeader.sector = joinU64(
    headerView.getUint32(RequestHeader.SECTOR, true),
    headerView.getUint32(RequestHeader.SECTOR + 4, true),
  );
  return parsedHeader;
}

/**
 * Copies `length` bytes of the chain's device-readable part, from `skip`
 * bytes into it, to `into` (the buffers were bounds-checked and hold them:
 * readable buffers come first and add up to at least `skip + length`).
 */
function gatherReadable(
  chain: DescriptorChain,
  memory: GuestMemory,
  skip: number,
  length: number,
  into: Uint8Array,
): void {
  let filled = 0;
  for (let i = 0; filled < length; i++) {
    let address = chain.address[i];
    let available = chain.length[i];
    if (skip >= available) {
      skip -= available;
      continue;
    }
    address += skip;
    available -= skip;
    skip = 0;
    const take = Math.min(available, length - filled);
    const region = memory.regionFor(address, take)!;
    const bytes = region.bytes;
    const from = address - region.gpa;
    // A byte loop, not set(subarray()): a view per request is garbage on every
    // request, and young-generation collections wake V8's helper threads, which
    // share the two cores with the workers (randread QD32: 2x the scavenges).
    for (let j = 0; j < take; j++) into[filled + j] = bytes[from + j];
    filled += take;
  }
}

/**
 * Records the data segments: for a device-writable payload the writable
 * buffers minus the trailing status byte, otherwise the readable buffers
 * minus the leading 16-byte header. Returns false when they exceed seg_max.
 */
function collectSegments(
  chain: DescriptorChain,
  writable: boolean,
  segMax: number,
  out: BlkRequest,
): boolean {
  const f = out.fields;
  const b = out.base + RequestField.SEGMENTS;
  const direction = writable ? 1 : 0;
  let skip = writable ? 0 : REQUEST_HEADER_SIZE;
  let segments = 0;
  const last = chain.count - 1;
  for (let i = 0; i <= last; i++) {
    if (chain.writable[i] !== direction) continue;
    let address = chain.address[i];
    let length = chain.length[i];
    if (skip > 0) {
      const skipped = Math.min(skip, length);
      skip -= skipped;
      address += skipped;
      length -= skipped;
    }
    if (i === last) length -= 1; // the status byte
    if (length === 0) continue;
    if (segments === segMax) return false;
    f[b + 2 * segments] = address;
    f[b + 2 * segments + 1] = length;
    segments++;
  }
  f[out.base + RequestField.SEGMENT_COUNT] = segments;
  return true;
}
