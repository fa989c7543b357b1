/**
 * What the handshake learned about an export, checked before any request
 * goes to it: its size (a multiple of 512, which a virtio-blk disk needs,
 * and below 2^53, exact as a number), its transmission flags (what it
 * offers), whether structured replies were agreed, and its size
 * constraints (proto.md, "Size constraints"), which every request obeys.
 * A reconnection must find the export the device was built on
 * ({@linkcode exportChange}).
 *
 * @module
 */

import { exportError } from "./errors.ts";
import { DEFAULT_MAX_PAYLOAD, MAX_MINIMUM_BLOCK, TransmissionFlag as Flag } from "./protocol.ts";

/** How the handshake entered transmission. */
export type Negotiation =
  /** Fixed newstyle, NBD_OPT_GO (with NBD_INFO_BLOCK_SIZE): the normal way. */
  | "go"
  /** Fixed newstyle server without NBD_OPT_GO: NBD_OPT_EXPORT_NAME ("fall back" per proto.md). */
  | "export-name"
  /** Plain (not fixed) newstyle server: NBD_OPT_EXPORT_NAME is the only option there is. */
  | "newstyle";

/** An export as negotiated on one connection. */
export interface NbdExport {
  /** The export name asked for. */
  readonly name: string;
  /** Size in bytes: a multiple of 512. */
  readonly size: number;
  /** The transmission flags as sent (NBD_FLAG_*). */
  readonly flags: number;
  /** The server refuses writes (NBD_FLAG_READ_ONLY). */
  readonly readOnly: boolean;
  /** NBD_CMD_FLUSH is available (NBD_FLAG_SEND_FLUSH). */
  readonly canFlush: boolean;
  /** NBD_CMD_FLAG_FUA is available (NBD_FLAG_SEND_FUA). */
  readonly canFua: boolean;
  /** NBD_CMD_TRIM is available (NBD_FLAG_SEND_TRIM). */
  readonly canTrim: boolean;
  /** NBD_CMD_WRITE_ZEROES (and NO_HOLE) is available (NBD_FLAG_SEND_WRITE_ZEROES). */
  readonly canWriteZeroes: boolean;
  /** Several connections may serve the export together (NBD_FLAG_CAN_MULTI_CONN). */
  readonly canMultiConn: boolean;
  /** The server says the medium is rotational (NBD_FLAG_ROTATIONAL). */
  readonly rotational: boolean;
  /** Replies to reads are structured (NBD_OPT_STRUCTURED_REPLY was acknowledged). */
  readonly structuredReplies: boolean;
  /** Smallest length and alignment of a request (1 when the server advertised none). */
  readonly minimumBlock: number;
  /** Size at which aligned requests are efficient (4096 when not advertised). */
  readonly preferredBlock: number;
  /** Largest payload the server accepts in one request (2^25 when not advertised). */
  readonly maximumPayload: number;
  /** The server sent NBD_INFO_BLOCK_SIZE (the three values above are its own). */
  readonly blockSizeAdvertised: boolean;
  /** How transmission was entered. */
  readonly negotiation: Negotiation;
}

/** The size constraints a server advertised, or the defaults when it did not. */
export interface BlockSizes {
  /** Smallest length and alignment of a request. */
  readonly minimumBlock: number;
  /** Size at which aligned requests are efficient. */
  readonly preferredBlock: number;
  /** Largest payload of one request. */
  readonly maximumPayload: number;
  /** The server stated these (NBD_INFO_BLOCK_SIZE); false: the defaults. */
  readonly blockSizeAdvertised: boolean;
}

/** The constraints of a server that advertised none ("Size constraints"). */
export const DEFAULT_BLOCK_SIZES: BlockSizes = {
  minimumBlock: 1,
  preferredBlock: 4096,
  maximumPayload: DEFAULT_MAX_PAYLOAD,
  blockSizeAdvertised: false,
};

/** The largest effect length of one TRIM or WRITE_ZEROES this client sends (it splits larger ones). */
export const MAX_EFFECT_LENGTH = 1 << 30;

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/**
 * Checks the three values of NBD_INFO_BLOCK_SIZE against proto.md's rules
 * ("Size constraints"): the minimum a power of two up to 64 KiB; the
 * preferred size a power of two at least max(minimum, 512); the maximum
 * payload at least the preferred size. Returns the problem, or undefined.
 */
export function blockSizeProblem(sizes: BlockSizes): string | undefined {
  const { minimumBlock, preferredBlock, maximumPayload } = sizes;
  if (!isPowerOfTwo(minimumBlock) || minimumBlock > MAX_MINIMUM_BLOCK) {
    return `minimum block size ${minimumBlock} is not a power of two up to ${MAX_MINIMUM_BLOCK}`;
  }
  if (!isPowerOfTwo(preferredBlock) || preferredBlock < Math.max(minimumBlock, 512)) {
    return `preferred block size ${preferredBlock} is not a power of two of at least ${
      Math.max(minimumBlock, 512)
    }`;
  }
  if (maximumPayload < preferredBlock) {
    return `maximum payload ${maximumPayload} is below the preferred block size ${preferredBlock}`;
  }
  return undefined;
}

/**
 * The export described by a handshake's results, or a `BAD_BACKING_FILE`
 * error naming why it cannot be used.
 *
 * @param size the export size, undefined when 2^53 or more
 */
export function describeExport(
  uri: string,
  name: string,
  size: number | undefined,
  flags: number,
  structuredReplies: boolean,
  sizes: BlockSizes,
  negotiation: Negotiation,
): NbdExport {
  if (size === undefined) throw exportError(uri, "the export size is 2^53 bytes or more");
  // A virtio-blk disk is a whole number of 512-byte sectors (virtio spec 5.2.4: capacity).
  if (size % 512 !== 0) {
    throw exportError(uri, `the export size ${size} bytes is not a multiple of 512`);
  }
  if ((flags & Flag.HAS_FLAGS) === 0) {
    throw exportError(
      uri,
      `transmission flags 0x${
        flags.toString(16)
      } lack NBD_FLAG_HAS_FLAGS (bit 0, which MUST be set)`,
    );
  }
  const problem = blockSizeProblem(sizes);
  if (problem !== undefined) throw exportError(uri, `NBD_INFO_BLOCK_SIZE: ${problem}`);
  return {
    name,
    size,
    flags,
    readOnly: (flags & Flag.READ_ONLY) !== 0,
    canFlush: (flags & Flag.SEND_FLUSH) !== 0,
    canFua: (flags & Flag.SEND_FUA) !== 0,
    canTrim: (flags & Flag.SEND_TRIM) !== 0,
    canWriteZeroes: (flags & Flag.SEND_WRITE_ZEROES) !== 0,
    canMultiConn: (flags & Flag.CAN_MULTI_CONN) !== 0,
    rotational: (flags & Flag.ROTATIONAL) !== 0,
    structuredReplies,
    minimumBlock: sizes.minimumBlock,
    preferredBlock: sizes.preferredBlock,
    maximumPayload: sizes.maximumPayload,
    blockSizeAdvertised: sizes.blockSizeAdvertised,
    negotiation,
  };
}

/**
 * The most bytes one READ or WRITE request carries: the server's maximum
 * payload, at most 2^25 (a bound of this client's own: a server's claim of
 * more is not trusted), rounded down to a multiple of max(minimum block, 512).
 */
export function maxTransfer(info: NbdExport): number {
  const unit = Math.max(info.minimumBlock, 512);
  return Math.floor(Math.min(info.maximumPayload, DEFAULT_MAX_PAYLOAD) / unit) * unit;
}

/**
 * Why `now` (a reconnection's export) cannot stand in for `before` (the
 * export the device was built on), or undefined when it can: the same
 * size, nothing it offered withdrawn, no stricter size constraints.
 * CAN_MULTI_CONN counts only for a connection that is one of several
 * (`multiConn`): a lone connection does not need it.
 */
export function exportChange(
  before: NbdExport,
  now: NbdExport,
  multiConn: boolean,
): string | undefined {
  if (now.size !== before.size) {
    return `the export size changed from ${before.size} to ${now.size} bytes`;
  }
  if (now.readOnly && !before.readOnly) return "the export became read-only";
  const offers: [keyof NbdExport, string][] = [
    ["canFlush", "NBD_FLAG_SEND_FLUSH"],
    ["canFua", "NBD_FLAG_SEND_FUA"],
    ["canTrim", "NBD_FLAG_SEND_TRIM"],
    ["canWriteZeroes", "NBD_FLAG_SEND_WRITE_ZEROES"],
    ...(multiConn
      ? [["canMultiConn", "NBD_FLAG_CAN_MULTI_CONN"] as [keyof NbdExport, string]]
      : []),
  ];
  for (const [field, flag] of offers) {
    if (before[field] && !now[field]) return `the export no longer offers ${flag}`;
  }
  if (now.minimumBlock > before.minimumBlock) {
    return `the minimum block size grew from ${before.minimumBlock} to ${now.minimumBlock}`;
  }
  if (maxTransfer(now) < maxTransfer(before)) {
    return `the maximum payload shrank from ${before.maximumPayload} to ${now.maximumPayload}`;
  }
  return undefined;
}
