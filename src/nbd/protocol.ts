/**
 * The NBD protocol's numbers: magics, handshake and transmission flags,
 * options and their replies, commands, structured reply chunk types and
 * error values, as the NetworkBlockDevice project's `doc/proto.md` defines
 * them (section names cited below), with the names messages print.
 *
 * Browser-safe: plain data.
 *
 * @module
 */

/** "NBDMAGIC": the first eight bytes a server sends (proto.md, "Handshake"). */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": the newstyle server's second magic, and every option's prefix ("Newstyle negotiation"). */
export const IHAVEOPT = 0x49484156454f5054n;
/** The oldstyle server's second magic (`cliserv_magic`): a protocol we refuse ("Oldstyle negotiation"). */
export const CLISERV_MAGIC = 0x00420281861253n;
/** Prefix of every option reply ("Fixed newstyle negotiation"). */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
/** Prefix of every request ("Request message"). */
export const REQUEST_MAGIC = 0x25609513;
/** Prefix of a simple reply ("Simple reply message"). */
export const SIMPLE_REPLY_MAGIC = 0x67446698;
/** Prefix of a structured reply chunk ("Structured reply chunk message"). */
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
/** Prefix of an extended-header reply: never negotiated here, so never valid ("Reserved Magic values"). */
export const EXTENDED_REPLY_MAGIC = 0x6e8a278c;

/** The IANA port for NBD (uri.md, "NBD URI authority"). */
export const NBD_DEFAULT_PORT = 10809;

/** Handshake flags, sent by the server after IHAVEOPT ("Handshake flags"). */
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Client flags, the client's answer to the handshake flags ("Client flags"). */
export const ClientFlag = {
  C_FIXED_NEWSTYLE: 1 << 0,
  C_NO_ZEROES: 1 << 1,
} as const;

/** Transmission flags of an export ("Transmission flags"). */
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

/** Options a client sends during option haggling ("Option types"). */
export const Option = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
} as const;

/** Option reply types; errors have bit 31 set ("Option reply types"). */
export const OptionReply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
  ERR_EXT_HEADER_REQD: 0x8000000a,
} as const;

/** Whether option reply `type` is an error (bit 31). */
export function isOptionError(type: number): boolean {
  return (type & 0x80000000) !== 0;
}

/** Information types of NBD_REP_INFO replies to NBD_OPT_INFO / NBD_OPT_GO ("NBD_REP_INFO"). */
export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Request types ("Request types"). */
export const Command = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

/** Command flags ("Command flags"). */
export const CommandFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

/** Structured reply flags ("Structured reply flags"). */
export const ReplyFlag = {
  DONE: 1 << 0,
} as const;

/** Structured reply chunk types; error chunks have bit 15 set ("Structured reply types"). */
export const ChunkType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** Whether chunk `type` is an error chunk (bit 15). */
export function isErrorChunk(type: number): boolean {
  return (type & 0x8000) !== 0;
}

/** Error values of replies ("Error values"); the common Linux errno of each. */
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Sizes of the fixed parts of messages, in bytes. */
export const WireSize = {
  /** magic, flags, type, cookie, offset, length ("Request message"). */
  REQUEST: 28,
  /** magic, error, cookie ("Simple reply message"). */
  SIMPLE_REPLY: 16,
  /** magic, flags, type, cookie, length ("Structured reply chunk message"). */
  CHUNK_HEADER: 20,
  /** magic, option, type, length ("Fixed newstyle negotiation"). */
  OPTION_REPLY_HEADER: 20,
  /** magic, option, length ("Newstyle negotiation"). */
  OPTION_HEADER: 16,
  /** The zeroes after NBD_OPT_EXPORT_NAME's reply unless NO_ZEROES was agreed. */
  EXPORT_NAME_ZEROES: 124,
} as const;

/** The longest string (export name, error message) the protocol allows ("Conventions"). */
export const MAX_STRING = 4096;

/** The largest minimum block size a server may advertise ("Size constraints"). */
export const MAX_MINIMUM_BLOCK = 65536;

/**
 * The payload size every server accepts when it advertised none, and the
 * most this client moves in one request ("Size constraints": any payload
 * up to 2^25 SHOULD NOT be considered a denial of service).
 */
export const DEFAULT_MAX_PAYLOAD = 1 << 25;

const names = <T extends Record<string, number>>(prefix: string, table: T) =>
  new Map<number, string>(Object.entries(table).map(([name, value]) => [value, prefix + name]));

const OPTION_NAMES = names("NBD_OPT_", Option);
const OPTION_REPLY_NAMES = names("NBD_REP_", OptionReply);
const COMMAND_NAMES = names("NBD_CMD_", Command);
const CHUNK_NAMES = names("NBD_REPLY_TYPE_", ChunkType);
const INFO_NAMES = names("NBD_INFO_", Info);

/** `"NBD_OPT_GO"` for 7, `"option 99"` for an unknown one. */
export function optionName(option: number): string {
  return OPTION_NAMES.get(option) ?? `option ${option}`;
}

/** `"NBD_REP_ERR_UNKNOWN"` for its value, `"reply type 0x…"` for an unknown one. */
export function optionReplyName(type: number): string {
  return OPTION_REPLY_NAMES.get(type) ?? `reply type 0x${type.toString(16)}`;
}

/** `"NBD_CMD_READ"` for 0. */
export function commandName(type: number): string {
  return COMMAND_NAMES.get(type) ?? `command ${type}`;
}

/** `"NBD_REPLY_TYPE_OFFSET_DATA"` for 1, `"chunk type 0x…"` for an unknown one. */
export function chunkTypeName(type: number): string {
  return CHUNK_NAMES.get(type) ?? `chunk type 0x${type.toString(16)}`;
}

/** `"NBD_INFO_BLOCK_SIZE"` for 3. */
export function infoName(type: number): string {
  return INFO_NAMES.get(type) ?? `information type ${type}`;
}
