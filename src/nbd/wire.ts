/**
 * The byte layout of the messages this client writes (options and
 * requests) and the 64-bit fields it reads, all big-endian (proto.md,
 * "Conventions": network byte order). Offsets and sizes are JavaScript
 * numbers: exact up to 2^53, which bounds the exports this client opens.
 *
 * Browser-safe: typed arrays only.
 *
 * @module
 */

import { IHAVEOPT, REQUEST_MAGIC, WireSize } from "./protocol.ts";

const TWO_32 = 2 ** 32;

/**
 * The unsigned 64-bit big-endian number at `at`, or undefined when it is
 * 2^53 or more (not exact as a number; no offset or size this client uses
 * is that large).
 */
export function readUint64(view: DataView, at: number): number | undefined {
  const high = view.getUint32(at);
  if (high >= 2 ** 21) return undefined;
  return high * TWO_32 + view.getUint32(at + 4);
}

/** Writes `value` (an integer from 0 to 2^53 - 1) as an unsigned 64-bit big-endian number. */
export function writeUint64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / TWO_32));
  view.setUint32(at + 4, value % TWO_32);
}

/**
 * Writes a request header ("Request message") into `view` at `at`: magic,
 * command flags, type, the cookie as two 32-bit halves, offset, length.
 */
export function writeRequest(
  view: DataView,
  at: number,
  flags: number,
  type: number,
  cookieHigh: number,
  cookieLow: number,
  offset: number,
  length: number,
): void {
  view.setUint32(at, REQUEST_MAGIC);
  view.setUint16(at + 4, flags);
  view.setUint16(at + 6, type);
  view.setUint32(at + 8, cookieHigh);
  view.setUint32(at + 12, cookieLow);
  writeUint64(view, at + 16, offset);
  view.setUint32(at + 24, length);
}

/** An option ("Newstyle negotiation"): IHAVEOPT, the option, its data's length, the data. */
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(WireSize.OPTION_HEADER + data.length);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, IHAVEOPT);
  view.setUint32(8, option);
  view.setUint32(12, data.length);
  bytes.set(data, WireSize.OPTION_HEADER);
  return bytes;
}

/**
 * The data of NBD_OPT_INFO and NBD_OPT_GO ("NBD_OPT_INFO (6) and NBD_OPT_GO
 * (7)"): the export name's length and bytes, then the information requests.
 */
export function encodeInfoRequest(exportName: string, requests: readonly number[]): Uint8Array {
  const name = new TextEncoder().encode(exportName);
  const bytes = new Uint8Array(4 + name.length + 2 + 2 * requests.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, name.length);
  bytes.set(name, 4);
  view.setUint16(4 + name.length, requests.length);
  requests.forEach((request, i) => view.setUint16(6 + name.length + 2 * i, request));
  return bytes;
}
