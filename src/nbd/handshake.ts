/**
 * From connecting to the transmission phase (proto.md, "Handshake"): the
 * fixed newstyle negotiation with NBD_OPT_STRUCTURED_REPLY and NBD_OPT_GO
 * (asking for NBD_INFO_BLOCK_SIZE, so the server may state its size
 * constraints, which every request then obeys), falling back to
 * NBD_OPT_EXPORT_NAME where proto.md says to: a fixed newstyle server that
 * answers NBD_OPT_GO with NBD_REP_ERR_UNSUP, and a plain newstyle server.
 * NBD_OPT_INFO is not sent: NBD_OPT_GO's reply carries the same
 * information, one round trip sooner. Oldstyle servers are refused.
 *
 * The server is not trusted: every magic, length and value is checked, an
 * option reply longer than {@linkcode MAX_OPTION_REPLY} is refused before
 * anything is read into memory for it, and the whole handshake has a
 * deadline. A refusal (unknown export, TLS required, shutting down) is a
 * `BAD_BACKING_FILE` error naming the URI and the server's own message.
 *
 * @module
 */

import { type ByteSink, Channel } from "./channel.ts";
import { exportError, serverMessage } from "./errors.ts";
import {
  type BlockSizes,
  DEFAULT_BLOCK_SIZES,
  describeExport,
  type NbdExport,
  type Negotiation,
} from "./export_info.ts";
import {
  ClientFlag,
  CLISERV_MAGIC,
  HandshakeFlag,
  IHAVEOPT,
  Info,
  infoName,
  isOptionError,
  MAX_STRING,
  NBD_MAGIC,
  Option,
  OPTION_REPLY_MAGIC,
  optionName,
  OptionReply,
  optionReplyName,
  WireSize,
} from "./protocol.ts";
import type { NbdAddress } from "./uri.ts";
import { encodeInfoRequest, encodeOption, readUint64 } from "./wire.ts";

/** The longest option reply accepted: a string of the longest length the protocol allows, and its fields. */
export const MAX_OPTION_REPLY: number = MAX_STRING + 64;

/** The most NBD_REP_INFO replies accepted for one option (a server that never ends its list is refused). */
export const MAX_INFO_REPLIES = 64;

/** How a handshake is done. */
export interface HandshakeOptions {
  /** Ask for structured replies (default true; false tests simple replies against any server). */
  readonly structuredReplies?: boolean;
  /** The whole handshake, connecting included, must end within this many milliseconds. */
  readonly timeoutMs: number;
}

/** A connection in the transmission phase. */
export interface Established {
  /** The connection, its bytes still going to the handshake's reader. */
  readonly channel: Channel;
  /** The export as negotiated. */
  readonly export: NbdExport;
  /**
   * Takes the bytes the server sent after its last handshake message (the
   * start of the reply stream); call it when switching the channel's sink.
   */
  readonly leftover: () => Uint8Array;
}

/**
 * Connects to `address` and negotiates its export.
 *
 * @throws VirtioBlkError BAD_BACKING_FILE naming the URI and the problem:
 *   unreachable server, refused export, broken handshake, unusable export
 */
export async function establish(
  address: NbdAddress,
  options: HandshakeOptions,
): Promise<Established> {
  const reader = new HandshakeReader();
  const channel = Channel.connect(address, reader);
  channel.onClose((error) => reader.fail(error ?? new Error("closed")));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    channel.destroy(new Error("timeout"));
  }, options.timeoutMs);
  try {
    try {
      await channel.connected();
    } catch (error) {
      if (timedOut) throw error;
      throw exportError(address.uri, `cannot connect: ${(error as Error).message}`, error);
    }
    const write = (bytes: Uint8Array) => channel.write(bytes);
    const exportInfo = await negotiate(reader, write, address, options);
    return { channel, export: exportInfo, leftover: () => reader.leftover() };
  } catch (error) {
    await closeQuietly(channel);
    if (timedOut) {
      throw exportError(address.uri, `no handshake within ${options.timeoutMs} ms`, error);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** How long a failed handshake's connection may take to close after this side ended it. */
const CLOSE_GRACE_MS = 1000;

/**
 * Closes `channel` after a failed handshake, sending what is queued first
 * (an NBD_OPT_ABORT), and waits until it has closed.
 */
async function closeQuietly(channel: Channel): Promise<void> {
  const closed = new Promise<void>((resolve) => channel.onClose(() => resolve()));
  channel.end();
  const timer = setTimeout(() => channel.destroy(), CLOSE_GRACE_MS);
  await closed;
  clearTimeout(timer);
}

/** Reads exactly the bytes asked for; what the server sends unasked waits, within a bound. */
class HandshakeReader implements ByteSink {
  #bytes = new Uint8Array(8192);
  #start = 0;
  #end = 0;
  #want = 0;
  #resolve: ((bytes: Uint8Array) => void) | undefined;
  #reject: ((error: Error) => void) | undefined;
  #failure: Error | undefined;

  buffer(): Uint8Array {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#bytes.length - this.#end < 1024) {
      const held = this.#end - this.#start;
      // Nothing the handshake asks for is longer than an option reply: a
      // server that sends more unasked is refused rather than buffered.
      if (held > 2 * MAX_OPTION_REPLY + WireSize.OPTION_REPLY_HEADER) {
        this.fail(new Error(`the server sent more than ${held} bytes unasked`));
        return this.#bytes.subarray(0, 1024);
      }
      const bytes = new Uint8Array(Math.max(this.#bytes.length, 2 * held + 1024));
      bytes.set(this.#bytes.subarray(this.#start, this.#end));
      this.#bytes = bytes;
      this.#end = held;
      this.#start = 0;
    }
    return this.#bytes.subarray(this.#end);
  }

  received(count: number): void {
    if (this.#failure !== undefined) return;
    this.#end += count;
    this.#deliver();
  }

  /** The next `count` bytes (a copy), once they have arrived. */
  read(count: number): Promise<Uint8Array> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#want = count;
      this.#resolve = resolve;
      this.#reject = reject;
      this.#deliver();
    });
  }

  /** Fails the pending and every later read with `error`. */
  fail(error: Error): void {
    this.#failure ??= error;
    const reject = this.#reject;
    this.#resolve = this.#reject = undefined;
    reject?.(this.#failure);
  }

  /** What arrived beyond the reads (the start of the transmission phase). */
  leftover(): Uint8Array {
    return this.#bytes.slice(this.#start, this.#end);
  }

  #deliver(): void {
    if (this.#resolve === undefined || this.#end - this.#start < this.#want) return;
    const bytes = this.#bytes.slice(this.#start, this.#start + this.#want);
    this.#start += this.#want;
    const resolve = this.#resolve;
    this.#resolve = this.#reject = undefined;
    resolve(bytes);
  }
}

type Write = (bytes: Uint8Array) => void;

/** The negotiation itself, over a reader and a writer (proto.md, "Newstyle negotiation"). */
async function negotiate(
  reader: HandshakeReader,
  write: Write,
  address: NbdAddress,
  options: HandshakeOptions,
): Promise<NbdExport> {
  const uri = address.uri;
  let step = "the server's greeting";
  const read = async (count: number) => {
    try {
      return new DataView((await reader.read(count)).buffer);
    } catch (error) {
      const reason = (error as Error).message;
      if (reason === "timeout") throw error;
      throw exportError(
        uri,
        `the connection closed during the handshake (${step}): ${reason}`,
        error,
      );
    }
  };

  const greeting = await read(16);
  if (greeting.getBigUint64(0) !== NBD_MAGIC) {
    throw exportError(uri, `not an NBD server (its greeting is not NBDMAGIC)`);
  }
  const second = greeting.getBigUint64(8);
  if (second === CLISERV_MAGIC) {
    throw exportError(uri, "the server speaks the oldstyle protocol, which is not supported");
  }
  if (second !== IHAVEOPT) {
    throw exportError(uri, `not an NBD newstyle server (0x${second.toString(16)} after NBDMAGIC)`);
  }
  step = "handshake flags";
  const serverFlags = (await read(2)).getUint16(0);
  const fixed = (serverFlags & HandshakeFlag.FIXED_NEWSTYLE) !== 0;
  const noZeroes = (serverFlags & HandshakeFlag.NO_ZEROES) !== 0;
  // Only flags the server offered ("Client flags": MUST NOT set any other).
  const clientFlags = new Uint8Array(4);
  new DataView(clientFlags.buffer).setUint32(
    0,
    (fixed ? ClientFlag.C_FIXED_NEWSTYLE : 0) | (noZeroes ? ClientFlag.C_NO_ZEROES : 0),
  );
  write(clientFlags);

  const exportName = address.exportName;
  /** Enters transmission with NBD_OPT_EXPORT_NAME (no reply header; the server closes to refuse). */
  const exportNameOption = async (
    structured: boolean,
    sizes: BlockSizes,
    negotiation: Negotiation,
  ) => {
    step = "NBD_OPT_EXPORT_NAME";
    write(encodeOption(Option.EXPORT_NAME, new TextEncoder().encode(exportName)));
    let reply: DataView;
    try {
      reply = await read(10 + (noZeroes ? 0 : WireSize.EXPORT_NAME_ZEROES));
    } catch (error) {
      throw exportError(
        uri,
        `the server closed the connection in reply to NBD_OPT_EXPORT_NAME (no export "${exportName}"?)`,
        error,
      );
    }
    const size = readUint64(reply, 0);
    return describeExport(
      uri,
      exportName,
      size,
      reply.getUint16(8),
      structured,
      sizes,
      negotiation,
    );
  };
  if (!fixed) return await exportNameOption(false, DEFAULT_BLOCK_SIZES, "newstyle");

  /** Sends `option` and reads one reply to it (header checked, payload bounded). */
  const ask = async (option: number, data?: Uint8Array) => {
    step = optionName(option);
    write(encodeOption(option, data));
    return await replyTo(option);
  };
  const replyTo = async (option: number) => {
    const header = await read(WireSize.OPTION_REPLY_HEADER);
    if (header.getBigUint64(0) !== OPTION_REPLY_MAGIC) {
      throw exportError(uri, `bad option reply magic in reply to ${optionName(option)}`);
    }
    const echoed = header.getUint32(8);
    if (echoed !== option) {
      throw exportError(
        uri,
        `the server replied to ${optionName(echoed)} when asked ${optionName(option)}`,
      );
    }
    const type = header.getUint32(12);
    const length = header.getUint32(16);
    if (length > MAX_OPTION_REPLY) {
      throw exportError(
        uri,
        `${optionReplyName(type)} reply to ${
          optionName(option)
        } of ${length} bytes (more than ${MAX_OPTION_REPLY})`,
      );
    }
    const payload = length === 0 ? new DataView(new ArrayBuffer(0)) : await read(length);
    return { type, payload };
  };
  /** A refusal of `option` as one line, with the server's message when it sent one. */
  const refusal = (option: number, type: number, payload: DataView) => {
    const message = serverMessage(
      new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
    );
    const what = refusalText(type, exportName);
    return exportError(
      uri,
      `${what} (${optionName(option)}: ${optionReplyName(type)}${message ? `: ${message}` : ""})`,
    );
  };

  let structured = false;
  if (options.structuredReplies !== false) {
    const { type, payload } = await ask(Option.STRUCTURED_REPLY);
    if (type === OptionReply.ACK) {
      if (payload.byteLength !== 0) throw exportError(uri, "NBD_REP_ACK with data");
      structured = true;
    } else if (!isOptionError(type)) {
      throw exportError(uri, `unexpected ${optionReplyName(type)} to NBD_OPT_STRUCTURED_REPLY`);
    } else if (type === OptionReply.ERR_TLS_REQD || type === OptionReply.ERR_SHUTDOWN) {
      abort(write);
      throw refusal(Option.STRUCTURED_REPLY, type, payload);
    }
    // Any other error: no structured replies; simple ones serve ("NBD_OPT_STRUCTURED_REPLY").
  }

  // NBD_OPT_GO, asking for the size constraints: from here on this client
  // MUST honour what the server states ("NBD_INFO_BLOCK_SIZE").
  step = "NBD_OPT_GO";
  write(encodeOption(Option.GO, encodeInfoRequest(exportName, [Info.BLOCK_SIZE])));
  let size: number | undefined;
  let flags: number | undefined;
  let sizes = DEFAULT_BLOCK_SIZES;
  for (let replies = 0;; replies++) {
    const { type, payload } = await replyTo(Option.GO);
    if (type === OptionReply.INFO) {
      if (replies === MAX_INFO_REPLIES) {
        throw exportError(uri, `more than ${MAX_INFO_REPLIES} NBD_REP_INFO replies to NBD_OPT_GO`);
      }
      if (payload.byteLength < 2) throw exportError(uri, "NBD_REP_INFO shorter than its type");
      const info = payload.getUint16(0);
      const expect = (length: number) => {
        if (payload.byteLength !== length) {
          throw exportError(
            uri,
            `${infoName(info)} of ${payload.byteLength} bytes (expected ${length})`,
          );
        }
      };
      if (info === Info.EXPORT) {
        expect(12);
        size = readUint64(payload, 2);
        flags = payload.getUint16(10);
      } else if (info === Info.BLOCK_SIZE) {
        expect(14);
        sizes = {
          minimumBlock: payload.getUint32(2),
          preferredBlock: payload.getUint32(6),
          maximumPayload: payload.getUint32(10),
          blockSizeAdvertised: true,
        };
      }
      // Other information types are ignored ("The client MUST ignore
      // information replies it does not understand").
      continue;
    }
    if (type === OptionReply.ACK) {
      if (flags === undefined) {
        throw exportError(uri, "NBD_OPT_GO succeeded without NBD_INFO_EXPORT (size and flags)");
      }
      return describeExport(uri, exportName, size, flags, structured, sizes, "go");
    }
    if (type === OptionReply.ERR_UNSUP) {
      // An old server: NBD_OPT_EXPORT_NAME it is ("NBD_OPT_INFO and NBD_OPT_GO":
      // clients SHOULD fall back to it on NBD_REP_ERR_UNSUP).
      return await exportNameOption(structured, sizes, "export-name");
    }
    if (isOptionError(type)) {
      abort(write);
      throw refusal(Option.GO, type, payload);
    }
    throw exportError(uri, `unexpected ${optionReplyName(type)} in reply to NBD_OPT_GO`);
  }
}

/** The soft disconnect after a refusal ("Termination of the session during option haggling"). */
function abort(write: Write): void {
  write(encodeOption(Option.ABORT));
}

function refusalText(type: number, exportName: string): string {
  switch (type) {
    case OptionReply.ERR_UNKNOWN:
      return `the server has no export "${exportName}"`;
    case OptionReply.ERR_TLS_REQD:
      return "the server requires TLS, which is not supported";
    case OptionReply.ERR_SHUTDOWN:
      return "the server is shutting down";
    case OptionReply.ERR_POLICY:
      return `the server's policy refuses export "${exportName}"`;
    case OptionReply.ERR_BLOCK_SIZE_REQD:
      return "the server demands NBD_INFO_BLOCK_SIZE, which was sent";
    default:
      return `the server refused export "${exportName}"`;
  }
}
