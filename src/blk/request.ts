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
  /** More data segments than seg_max. */
  TOO_MANY_SEGMENTS: 13,
} as const;

/** One of {@linkcode RequestError}'s values. */
export type RequestErrorCode = typeof RequestError[keyof typeof RequestError];

/** Word indexes of a request record (Float64 words). */
export const RequestField = {
  KIND: 0,
  ERROR: 1,
  HEAD: 2,
  SECTOR: 3,
  DATA_LENGTH: 4,
  SEGMENT_COUNT: 5,
  /** GPA of the status byte, or -1 when there is none. */
  STATUS_ADDRESS: 6,
  /** First of SEGMENT_COUNT (address, length) pairs. */
  SEGMENTS: 7,
} as const;

/** Float64 words of a record that holds up to `segMax` data segments. */
export function requestRecordWords(segMax: number): number {
  return RequestField.SEGMENTS + 2 * segMax;
}

/** The limits a request is checked against. */
export interface RequestLimits {
  /** Device capacity in 512-byte sectors. */
  readonly capacity: number;
  /** Most data segments one request may have (config seg_max). */
  readonly segMax: number;
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
   * @param segMax segment capacity of the record
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
  /** Why the request is INVALID or UNANSWERABLE; NONE for any other kind. */
  get error(): RequestErrorCode {
    return this.fields[this.base + RequestField.ERROR] as RequestErrorCode;
  }
  /** The chain's head descriptor index: the `id` its used element carries. */
  get head(): number {
    return this.fields[this.base + RequestField.HEAD];
  }
  /** First sector (512-byte units). */
  get sector(): number {
    return this.fields[this.base + RequestField.SECTOR];
  }
  /** Byte offset on the disk of the first sector. */
  get offset(): number {
    return this.fields[this.base + RequestField.SECTOR] * SECTOR_SIZE;
  }
  /**
   * Data bytes: what a READ or WRITE transfers (a multiple of 512), or the
   * room GET_ID has for the serial; 0 for every other kind.
   */
  get dataLength(): number {
    return this.fields[this.base + RequestField.DATA_LENGTH];
  }
  /** Data segments recorded (at most `segMax`); 0 for INVALID and UNANSWERABLE requests. */
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

  /** Copies another record into this one (e.g. into a pool slot). */
  copyFrom(other: BlkRequest): void {
    const words = requestRecordWords(other.segmentCount);
    for (let i = 0; i < words; i++) this.fields[this.base + i] = other.fields[other.base + i];
  }

  /** A plain-object picture of the request, for tests and diagnostics. */
  describe(): {
    kind: string;
    error: string;
    head: number;
    sector: number;
    dataLength: number;
    statusAddress: number;
    segments: { address: number; length: number }[];
  } {
    const segments = [];
    for (let i = 0; i < this.segmentCount; i++) {
      segments.push({ address: this.segmentAddress(i), length: this.segmentLength(i) });
    }
    return {
      kind: nameOf(RequestKind, this.kind),
      error: nameOf(RequestError, this.error),
      head: this.head,
      sector: this.sector,
      dataLength: this.dataLength,
      statusAddress: this.statusAddress,
      segments,
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
    default:
      return finish(out, RequestKind.UNSUPPORTED, RequestError.NONE);
  }
}

function finish(out: BlkRequest, kind: RequestKindCode, error: RequestErrorCode): void {
  out.fields[out.base + RequestField.KIND] = kind;
  out.fields[out.base + RequestField.ERROR] = error;
  if (kind === RequestKind.INVALID || kind === RequestKind.UNANSWERABLE) {
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
  let filled = 0;
  for (let i = 0; filled < REQUEST_HEADER_SIZE; i++) {
    const take = Math.min(chain.length[i], REQUEST_HEADER_SIZE - filled);
    const region = memory.regionFor(chain.address[i], take)!;
    const from = chain.address[i] - region.gpa;
    for (let j = 0; j < take; j++) headerBytes[filled + j] = region.bytes[from + j];
    filled += take;
  }
  parsedHeader.type = headerView.getUint32(RequestHeader.TYPE, true);
  parsedHeader.sector = joinU64(
    headerView.getUint32(RequestHeader.SECTOR, true),
    headerView.getUint32(RequestHeader.SECTOR + 4, true),
  );
  return parsedHeader;
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
