/**
 * The vhost-user message layouts as QEMU 7.2 sends them (reference
 * vhost-user.md §2–§4, from QEMU's docs/interop/vhost-user.rst): the 12-byte
 * header, the request numbers, the feature bits, every payload this back
 * end reads or writes, and the framing of whole messages over a
 * {@linkcode UnixConnection}. This module owns every offset of them. All
 * integers are little-endian (x86 host order).
 *
 * Decoders take a received payload and return `undefined` when its size
 * does not match the layout, so a malformed message is refused rather than
 * half read.
 *
 * @module
 */

import { closeFd } from "./libc.ts";
import type { UnixConnection } from "./unix_socket.ts";

/** Header: u32 request, u32 flags, u32 size (§2). */
export const Header = { REQUEST: 0, FLAGS: 4, SIZE: 8, LENGTH: 12 } as const;

/** Header flags (§2). */
export const HeaderFlag = {
  /** Bits 0–1: the protocol version, always 1. */
  VERSION_MASK: 0x3,
  VERSION: 0x1,
  /** Set on every back-end reply. */
  REPLY: 0x4,
  /** The front-end wants a u64 ack (REPLY_ACK, §5). */
  NEED_REPLY: 0x8,
} as const;

/** Front-end → back-end request numbers (§4.1). */
export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SET_BACKEND_REQ_FD: 21,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  RESET_DEVICE: 34,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
} as const;

/** Back-end → front-end request numbers, on the SET_BACKEND_REQ_FD socket (§4.2). */
export const BackendRequest = {
  /** The config space changed: QEMU re-reads it (GET_CONFIG) and interrupts the guest. */
  CONFIG_CHANGE_MSG: 2,
} as const;

/**
 * Requests whose meaning is in the fds they carry (§4.1): when the kernel
 * dropped some of a message's fds (MSG_CTRUNC), only these cannot be
 * served. Any other request takes no fd, and the ones that came with it are
 * simply closed.
 */
export const REQUESTS_WITH_FDS: ReadonlySet<number> = new Set([
  Request.SET_MEM_TABLE,
  Request.SET_LOG_FD,
  Request.SET_VRING_KICK,
  Request.SET_VRING_CALL,
  Request.SET_VRING_ERR,
  Request.SET_BACKEND_REQ_FD,
  Request.SET_INFLIGHT_FD,
  Request.ADD_MEM_REG,
]);

/** Feature bit 30 of GET/SET_FEATURES: the back end speaks protocol features (§5.1). */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

/** Protocol feature bits (§5.2). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  REPLY_ACK: 3,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CONFIG: 9,
  INFLIGHT_SHMFD: 12,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;

/** The largest payload a request may have here (a full memory table is 264 bytes). */
export const MAX_PAYLOAD = 4096;

/** Most regions in one SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_TABLE_REGIONS = 8;

/** vring state: u32 index, u32 num (§3). */
export const VringState = { INDEX: 0, NUM: 4, SIZE: 8 } as const;

/** vring address: no size field on the wire, and used comes before avail (§3). */
export const VringAddress = {
  INDEX: 0,
  FLAGS: 4,
  DESC: 8,
  USED: 16,
  AVAIL: 24,
  LOG: 32,
  SIZE: 40,
} as const;

/** Memory table: u32 nregions, u32 padding, then nregions regions (§3). */
export const MemoryTable = { COUNT: 0, REGIONS: 8 } as const;

/** One memory region description, in a table or after 8 bytes of padding (ADD/REM_MEM_REG). */
export const MemoryRegionLayout = {
  GPA: 0,
  SIZE: 8,
  USER_ADDRESS: 16,
  MMAP_OFFSET: 24,
  LENGTH: 32,
} as const;

/** ADD_MEM_REG / REM_MEM_REG: u64 padding, then one region (§3). */
export const SingleRegion = { REGION: 8, SIZE: 40 } as const;

/** GET/SET_CONFIG: u32 offset, u32 size, u32 flags, then `size` bytes (§3). */
export const ConfigPayload = { OFFSET: 0, SIZE: 4, FLAGS: 8, DATA: 12, MAX_DATA: 256 } as const;

/** The vring index of SET_VRING_KICK/CALL/ERR (bits 0–7), and the "no fd" bit (§3). */
export const VringFd = { INDEX_MASK: 0xff, NO_FD: 0x100 } as const;

/** One received message. */
export interface Message {
  readonly request: number;
  readonly flags: number;
  readonly payload: Uint8Array<ArrayBuffer>;
  /** fds that came with the message, owned by whoever handles it. */
  readonly fds: number[];
  /** Some fds were lost (more than the control buffer holds). */
  readonly truncated: boolean;
}

/** A region as the front-end describes it (u64 values, exact). */
export interface RegionDescription {
  readonly gpa: bigint;
  readonly size: bigint;
  readonly userAddress: bigint;
  readonly mmapOffset: bigint;
}

/** A vring's three ring addresses (QEMU user addresses) and flags. */
export interface VringAddresses {
  readonly index: number;
  readonly flags: number;
  readonly desc: bigint;
  readonly used: bigint;
  readonly avail: bigint;
  readonly log: bigint;
}

/** A GET/SET_CONFIG payload. */
export interface ConfigAccess {
  readonly offset: number;
  readonly size: number;
  readonly flags: number;
  readonly data: Uint8Array;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads one message: the header (whose recvmsg carries the fds, §1), then
 * the payload. Returns null at end of file, when the connection was shut
 * down, or for a header with a wrong version or an oversized payload: the
 * stream cannot be resynchronised after one, so it ends the connection.
 * fds of a message that is not returned are closed.
 */
export async function receiveMessage(connection: UnixConnection): Promise<Message | null> {
  const header = await connection.receive(Header.LENGTH);
  if (header === null) return null;
  const v = view(header.bytes);
  const request = v.getUint32(Header.REQUEST, true);
  const flags = v.getUint32(Header.FLAGS, true);
  const size = v.getUint32(Header.SIZE, true);
  if ((flags & HeaderFlag.VERSION_MASK) !== HeaderFlag.VERSION || size > MAX_PAYLOAD) {
    header.fds.forEach(closeFd);
    return null;
  }
  let payload = new Uint8Array(0);
  const fds = [...header.fds];
  let truncated = header.truncated;
  if (size > 0) {
    const body = await connection.receive(size);
    if (body === null) {
      fds.forEach(closeFd);
      return null;
    }
    payload = body.bytes;
    fds.push(...body.fds);
    truncated ||= body.truncated;
  }
  return { request, flags, payload, fds, truncated };
}

/** Encodes a whole message (header and payload). */
export function encodeMessage(
  request: number,
  flags: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(Header.LENGTH + payload.length);
  const v = view(bytes);
  v.setUint32(Header.REQUEST, request, true);
  v.setUint32(Header.FLAGS, flags, true);
  v.setUint32(Header.SIZE, payload.length, true);
  bytes.set(payload, Header.LENGTH);
  return bytes;
}

/** Flags of a back-end reply: version 1 and REPLY (0x5, §2). */
export const REPLY_FLAGS = HeaderFlag.VERSION | HeaderFlag.REPLY;

/** A u64 payload. */
export function encodeU64(value: bigint): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(8);
  view(bytes).setBigUint64(0, BigInt.asUintN(64, value), true);
  return bytes;
}

/** Reads a u64 payload. */
export function decodeU64(payload: Uint8Array): bigint | undefined {
  return payload.length === 8 ? view(payload).getBigUint64(0, true) : undefined;
}

/** A vring state payload. */
export function encodeVringState(index: number, num: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(VringState.SIZE);
  const v = view(bytes);
  v.setUint32(VringState.INDEX, index, true);
  v.setUint32(VringState.NUM, num, true);
  return bytes;
}

/** Reads a vring state payload. */
export function decodeVringState(payload: Uint8Array): { index: number; num: number } | undefined {
  if (payload.length !== VringState.SIZE) return undefined;
  const v = view(payload);
  return { index: v.getUint32(VringState.INDEX, true), num: v.getUint32(VringState.NUM, true) };
}

/** A vring address payload. */
export function encodeVringAddress(addresses: VringAddresses): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(VringAddress.SIZE);
  const v = view(bytes);
  v.setUint32(VringAddress.INDEX, addresses.index, true);
  v.setUint32(VringAddress.FLAGS, addresses.flags, true);
  v.setBigUint64(VringAddress.DESC, addresses.desc, true);
  v.setBigUint64(VringAddress.USED, addresses.used, true);
  v.setBigUint64(VringAddress.AVAIL, addresses.avail, true);
  v.setBigUint64(VringAddress.LOG, addresses.log, true);
  return bytes;
}

/** Reads a vring address payload. */
export function decodeVringAddress(payload: Uint8Array): VringAddresses | undefined {
  if (payload.length !== VringAddress.SIZE) return undefined;
  const v = view(payload);
  return {
    index: v.getUint32(VringAddress.INDEX, true),
    flags: v.getUint32(VringAddress.FLAGS, true),
    desc: v.getBigUint64(VringAddress.DESC, true),
    used: v.getBigUint64(VringAddress.USED, true),
    avail: v.getBigUint64(VringAddress.AVAIL, true),
    log: v.getBigUint64(VringAddress.LOG, true),
  };
}

function writeRegion(v: DataView, at: number, region: RegionDescription): void {
  v.setBigUint64(at + MemoryRegionLayout.GPA, region.gpa, true);
  v.setBigUint64(at + MemoryRegionLayout.SIZE, region.size, true);
  v.setBigUint64(at + MemoryRegionLayout.USER_ADDRESS, region.userAddress, true);
  v.setBigUint64(at + MemoryRegionLayout.MMAP_OFFSET, region.mmapOffset, true);
}

function readRegion(v: DataView, at: number): RegionDescription {
  return {
    gpa: v.getBigUint64(at + MemoryRegionLayout.GPA, true),
    size: v.getBigUint64(at + MemoryRegionLayout.SIZE, true),
    userAddress: v.getBigUint64(at + MemoryRegionLayout.USER_ADDRESS, true),
    mmapOffset: v.getBigUint64(at + MemoryRegionLayout.MMAP_OFFSET, true),
  };
}

/** A SET_MEM_TABLE payload: exactly `regions.length` entries, as QEMU sends (§3). */
export function encodeMemoryTable(regions: readonly RegionDescription[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(MemoryTable.REGIONS + regions.length * MemoryRegionLayout.LENGTH);
  const v = view(bytes);
  v.setUint32(MemoryTable.COUNT, regions.length, true);
  regions.forEach((region, i) =>
    writeRegion(v, MemoryTable.REGIONS + i * MemoryRegionLayout.LENGTH, region)
  );
  return bytes;
}

/**
 * Reads a SET_MEM_TABLE payload. Accepts exactly nregions entries (QEMU)
 * or the spec's fixed array of {@linkcode MAX_TABLE_REGIONS}.
 */
export function decodeMemoryTable(payload: Uint8Array): RegionDescription[] | undefined {
  if (payload.length < MemoryTable.REGIONS) return undefined;
  const v = view(payload);
  const count = v.getUint32(MemoryTable.COUNT, true);
  if (count > MAX_TABLE_REGIONS) return undefined;
  const exact = MemoryTable.REGIONS + count * MemoryRegionLayout.LENGTH;
  const full = MemoryTable.REGIONS + MAX_TABLE_REGIONS * MemoryRegionLayout.LENGTH;
  if (payload.length !== exact && payload.length !== full) return undefined;
  return Array.from(
    { length: count },
    (_, i) => readRegion(v, MemoryTable.REGIONS + i * MemoryRegionLayout.LENGTH),
  );
}

/** An ADD_MEM_REG / REM_MEM_REG payload. */
export function encodeSingleRegion(region: RegionDescription): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(SingleRegion.SIZE);
  writeRegion(view(bytes), SingleRegion.REGION, region);
  return bytes;
}

/** Reads an ADD_MEM_REG / REM_MEM_REG payload. */
export function decodeSingleRegion(payload: Uint8Array): RegionDescription | undefined {
  return payload.length === SingleRegion.SIZE
    ? readRegion(view(payload), SingleRegion.REGION)
    : undefined;
}

/** A GET/SET_CONFIG payload. */
export function encodeConfig(access: ConfigAccess): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(ConfigPayload.DATA + access.data.length);
  const v = view(bytes);
  v.setUint32(ConfigPayload.OFFSET, access.offset, true);
  v.setUint32(ConfigPayload.SIZE, access.size, true);
  v.setUint32(ConfigPayload.FLAGS, access.flags, true);
  bytes.set(access.data, ConfigPayload.DATA);
  return bytes;
}

/** Reads a GET/SET_CONFIG payload: `size` must match the bytes that follow (§3). */
export function decodeConfig(payload: Uint8Array): ConfigAccess | undefined {
  if (payload.length < ConfigPayload.DATA) return undefined;
  const v = view(payload);
  const size = v.getUint32(ConfigPayload.SIZE, true);
  if (size > ConfigPayload.MAX_DATA || payload.length !== ConfigPayload.DATA + size) {
    return undefined;
  }
  return {
    offset: v.getUint32(ConfigPayload.OFFSET, true),
    size,
    flags: v.getUint32(ConfigPayload.FLAGS, true),
    data: payload.subarray(ConfigPayload.DATA),
  };
}

/** Sends one message with optional fds. */
export function sendMessage(
  connection: UnixConnection,
  request: number,
  flags: number,
  payload?: Uint8Array,
  fds: readonly number[] = [],
): void {
  connection.send(encodeMessage(request, flags, payload), fds);
}
