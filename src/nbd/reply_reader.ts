/**
 * Reads the server's side of the transmission phase: simple replies and
 * structured reply chunks, interleaved in any order (proto.md,
 * "Transmission"), each checked before anything of it is believed.
 *
 * - Data goes straight to the operation's memory: from the scratch buffer
 *   a read landed in (small payloads, many replies per read), or read by
 *   the kernel directly into that memory when at least
 *   {@linkcode DIRECT_READ_MIN} bytes of one payload remain.
 * - Holes (NBD_REPLY_TYPE_OFFSET_HOLE) are zeroed in that memory.
 * - Nothing is allocated for what the server announces: data lengths are
 *   bounded by the request they answer (its memory), other payloads by
 *   {@linkcode MAX_SMALL_PAYLOAD}, ranges are checked against the request,
 *   and a structured read is complete only when its chunks covered every
 *   byte without overlap.
 *
 * Anything else (a wrong magic, a cookie not in flight, a wrong length, a
 * chunk type not valid for the request, data outside it) is a protocol
 * violation: the reader stops and tells its target, which drops the
 * connection ("A client MAY initiate a hard disconnect if it detects that
 * the server has sent invalid chunks").
 *
 * @module
 */

import type { ByteSink } from "./channel.ts";
import { CoverageResult } from "./coverage.ts";
import { errnoFromServer, serverMessage } from "./errors.ts";
import type { NbdCommand } from "./operation.ts";
import {
  ChunkType,
  chunkTypeName,
  Command,
  EXTENDED_REPLY_MAGIC,
  isErrorChunk,
  MAX_STRING,
  ReplyFlag,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  WireSize,
} from "./protocol.ts";
import { readUint64 } from "./wire.ts";

/** Payloads at least this long are read straight into the caller's memory. */
export const DIRECT_READ_MIN = 64 * 1024;

/** The longest non-data chunk payload accepted: an error chunk with the longest message. */
export const MAX_SMALL_PAYLOAD: number = MAX_STRING + 64;

/** Bytes of the scratch buffer replies are read into. */
const SCRATCH_BYTES = 128 * 1024;

/** Free bytes below which the scratch buffer's unread bytes move to its start. */
const SCRATCH_SLACK = 32 * 1024;

/** The connection the replies belong to. */
export interface ReplyTarget {
  /** The command in flight under cookie (high, low), or undefined. */
  lookup(cookieHigh: number, cookieLow: number): NbdCommand | undefined;
  /** `command`'s reply is complete (its `errno` says how it went). */
  replied(command: NbdCommand): void;
  /** The server broke the protocol (`problem` names how): stop believing it. */
  violation(problem: string): void;
  /** False once the connection is being dropped: nothing more is parsed. */
  readonly alive: boolean;
}

const State = {
  /** Waiting for a reply header. */
  HEADER: 0,
  /** Receiving data for a read. */
  DATA: 1,
  /** Waiting for a whole small chunk payload. */
  PAYLOAD: 2,
} as const;

/** What ends with the data being received. */
const DataEnd = {
  /** Nothing (a chunk without NBD_REPLY_FLAG_DONE). */
  NONE: 0,
  /** The reply (a simple reply, or the final chunk). */
  REPLY: 1,
} as const;

/** The reply stream parser of one connection. */
export class ReplyReader implements ByteSink {
  readonly #target: ReplyTarget;
  readonly #structured: boolean;
  #scratch = new Uint8Array(SCRATCH_BYTES);
  #view = new DataView(this.#scratch.buffer);
  #start = 0;
  #end = 0;
  #state: number = State.HEADER;
  /** Bytes the last buffer() handed out of the caller's memory (0: it handed out scratch). */
  #direct = 0;
  // The chunk or reply being received.
  #command: NbdCommand | undefined;
  #chunkType = 0;
  #chunkDone = false;
  #payloadLength = 0;
  /** OFFSET_DATA: the data bytes after the offset (the header's length less 8). */
  #chunkDataLength = 0;
  #dataAt = 0;
  #dataRemaining = 0;
  #dataEnd: number = DataEnd.NONE;

  /**
   * A parser for one connection's reply stream.
   *
   * @param target the connection the replies belong to
   * @param structured structured replies were agreed (chunks are valid, and
   *   the only valid reply to a read)
   */
  constructor(target: ReplyTarget, structured: boolean) {
    this.#target = target;
    this.#structured = structured;
  }

  buffer(): Uint8Array {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (
      this.#state === State.DATA && this.#start === this.#end &&
      this.#dataRemaining >= DIRECT_READ_MIN
    ) {
      const view = this.#command!.operation!.memory.view(this.#dataAt, this.#dataRemaining);
      if (view.length >= DIRECT_READ_MIN) {
        this.#direct = view.length;
        return view;
      }
    }
    this.#direct = 0;
    if (this.#scratch.length - this.#end < SCRATCH_SLACK) {
      this.#scratch.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    return this.#scratch.subarray(this.#end);
  }

  received(count: number): void {
    if (!this.#target.alive) return;
    if (this.#direct > 0) {
      this.#direct = 0;
      this.#dataAt += count;
      this.#dataRemaining -= count;
      if (this.#dataRemaining === 0) this.#dataReceived();
      return;
    }
    this.#end += count;
    this.#parse();
  }

  #parse(): void {
    const target = this.#target;
    while (target.alive) {
      const available = this.#end - this.#start;
      if (this.#state === State.DATA) {
        if (available === 0) return;
        const count = Math.min(available, this.#dataRemaining);
        this.#command!.operation!.memory.copyIn(this.#dataAt, this.#scratch, this.#start, count);
        this.#start += count;
        this.#dataAt += count;
        this.#dataRemaining -= count;
        if (this.#dataRemaining === 0) this.#dataReceived();
      } else if (this.#state === State.HEADER) {
        if (available < 4) return;
        const magic = this.#view.getUint32(this.#start);
        if (magic === SIMPLE_REPLY_MAGIC) {
          if (available < WireSize.SIMPLE_REPLY) return;
          this.#simpleReply();
        } else if (magic === STRUCTURED_REPLY_MAGIC) {
          if (available < WireSize.CHUNK_HEADER) return;
          this.#chunkHeader();
        } else {
          const what = magic === EXTENDED_REPLY_MAGIC
            ? "an extended reply header (never negotiated)"
            : `reply magic ${hex(magic)} (expected ${hex(SIMPLE_REPLY_MAGIC)} or ${
              hex(STRUCTURED_REPLY_MAGIC)
            })`;
          target.violation(`the server sent ${what}`);
        }
      } else {
        if (available < this.#payloadLength) return;
        this.#chunkPayload();
      }
    }
  }

  /** The command for a cookie, or a violation naming the reply that came for nothing. */
  #inFlight(at: number, what: string): NbdCommand | undefined {
    const high = this.#view.getUint32(at);
    const low = this.#view.getUint32(at + 4);
    const command = this.#target.lookup(high, low);
    if (command === undefined) {
      this.#target.violation(
        `the server sent ${what} for cookie 0x${high.toString(16).padStart(8, "0")}${
          low.toString(16).padStart(8, "0")
        }, which is not in flight`,
      );
    }
    return command;
  }

  #simpleReply(): void {
    const view = this.#view;
    const at = this.#start;
    const error = view.getUint32(at + 4);
    const command = this.#inFlight(at + 8, "a simple reply");
    if (command === undefined) return;
    this.#start += WireSize.SIMPLE_REPLY;
    if (command.chunks > 0) {
      return this.#target.violation(
        `the server sent a simple reply to ${command.describe()} after structured chunks`,
      );
    }
    if (error !== 0) {
      // An error reply has no payload, simple or structured replies alike.
      this.#fail(command, errnoFromServer(error), "");
      return this.#target.replied(command);
    }
    if (command.type !== Command.READ) return this.#target.replied(command);
    if (this.#structured) {
      // "MUST NOT use a simple reply for NBD_CMD_READ": whether data follows is unknowable.
      return this.#target.violation(
        `the server sent a simple reply to ${command.describe()}, but structured replies were agreed`,
      );
    }
    this.#receiveData(command, command.memoryAt, command.length, DataEnd.REPLY);
  }

  #chunkHeader(): void {
    const view = this.#view;
    const at = this.#start;
    if (!this.#structured) {
      return this.#target.violation(
        "the server sent a structured reply chunk, but structured replies were not agreed",
      );
    }
    const flags = view.getUint16(at + 4);
    const type = view.getUint16(at + 6);
    const command = this.#inFlight(at + 8, `a ${chunkTypeName(type)} chunk`);
    if (command === undefined) return;
    const length = view.getUint32(at + 16);
    this.#start += WireSize.CHUNK_HEADER;
    command.chunks++;
    const done = (flags & ReplyFlag.DONE) !== 0;
    const wrong = (problem: string) =>
      this.#target.violation(
        `the server sent a ${
          chunkTypeName(type)
        } chunk of ${length} bytes ${problem} (reply to ${command.describe()})`,
      );
    switch (type) {
      case ChunkType.NONE:
        if (length !== 0) return wrong("(it MUST be empty)");
        if (!done) return wrong("without NBD_REPLY_FLAG_DONE");
        return this.#replyDone(command);
      case ChunkType.OFFSET_DATA:
        if (command.type !== Command.READ) return wrong("(valid only for NBD_CMD_READ)");
        if (length < 9) return wrong("(it MUST be at least 9)");
        // Bounded by the request before a byte of it is read.
        if (length - 8 > command.length) return wrong("(more data than the request asked for)");
        this.#chunkDataLength = length - 8;
        return this.#expectPayload(command, type, done, 8);
      case ChunkType.OFFSET_HOLE:
        if (command.type !== Command.READ) return wrong("(valid only for NBD_CMD_READ)");
        if (length !== 12) return wrong("(it MUST be 12)");
        return this.#expectPayload(command, type, done, 12);
      default:
        if (!isErrorChunk(type)) return wrong("(a type this client never asked for)");
        if (length < 6) return wrong("(an error chunk is at least 6)");
        if (length > MAX_SMALL_PAYLOAD) {
          return wrong(`(more than the ${MAX_SMALL_PAYLOAD} accepted)`);
        }
        return this.#expectPayload(command, type, done, length);
    }
  }

  #expectPayload(command: NbdCommand, type: number, done: boolean, length: number): void {
    this.#command = command;
    this.#chunkType = type;
    this.#chunkDone = done;
    this.#payloadLength = length;
    this.#state = State.PAYLOAD;
  }

  #chunkPayload(): void {
    const command = this.#command!;
    const type = this.#chunkType;
    const done = this.#chunkDone;
    const view = this.#view;
    const at = this.#start;
    const length = this.#payloadLength;
    this.#start += length;
    this.#state = State.HEADER;
    if (type === ChunkType.OFFSET_DATA || type === ChunkType.OFFSET_HOLE) {
      const offset = readUint64(view, at);
      const count = type === ChunkType.OFFSET_HOLE ? view.getUint32(at + 8) : 0;
      const data = type === ChunkType.OFFSET_DATA;
      const size = data ? this.#chunkDataLength : count;
      if (!this.#addRange(command, type, offset, size)) return;
      const memoryAt = command.memoryAt + (offset! - command.offset);
      if (data) {
        return this.#receiveData(command, memoryAt, size, done ? DataEnd.REPLY : DataEnd.NONE);
      }
      command.operation!.memory.zero(memoryAt, count);
      if (done) this.#replyDone(command);
      return;
    }
    // An error chunk: error, message length, message, and for ERROR_OFFSET an offset.
    const error = view.getUint32(at);
    const messageLength = view.getUint16(at + 4);
    const fixed = type === ChunkType.ERROR_OFFSET ? 14 : 6;
    const wrong = (problem: string) =>
      this.#target.violation(
        `the server sent a ${
          chunkTypeName(type)
        } chunk ${problem} (reply to ${command.describe()})`,
      );
    if (type === ChunkType.ERROR_OFFSET && length < 14) {
      return wrong(`of ${length} bytes (it MUST be at least 14)`);
    }
    if (messageLength > length - fixed) {
      return wrong(`whose message of ${messageLength} bytes does not fit its ${length} bytes`);
    }
    if (error === 0) return wrong("with error value 0 (it MUST be nonzero)");
    if (type === ChunkType.ERROR_OFFSET) {
      if (command.type === Command.FLUSH) return wrong("(not valid for NBD_CMD_FLUSH)");
      const offset = readUint64(view, at + 6 + messageLength);
      if (
        offset === undefined || offset < command.offset || offset >= command.offset + command.length
      ) {
        return wrong(`for offset ${offset ?? "≥ 2^53"}, outside the request`);
      }
    }
    const message = serverMessage(this.#scratch.subarray(at + 6, at + 6 + messageLength));
    this.#fail(command, errnoFromServer(error), message);
    if (done) this.#replyDone(command);
  }

  /** Checks a content chunk's range against its request and earlier chunks; false after a violation. */
  #addRange(command: NbdCommand, type: number, offset: number | undefined, size: number): boolean {
    const name = chunkTypeName(type);
    const end = command.offset + command.length;
    if (size === 0) {
      this.#target.violation(
        `the server sent an empty ${name} chunk (reply to ${command.describe()})`,
      );
      return false;
    }
    if (offset === undefined || offset < command.offset || offset + size > end) {
      this.#target.violation(
        `the server sent a ${name} chunk for bytes ${offset ?? "≥ 2^53"}..${
          offset === undefined ? "" : offset + size
        }, outside ${command.describe()}`,
      );
      return false;
    }
    const added = command.coverage.add(offset, offset + size);
    if (added === CoverageResult.ADDED) return true;
    this.#target.violation(
      added === CoverageResult.OVERLAP
        ? `the server sent a ${name} chunk for bytes ${offset}..${
          offset + size
        } that overlap an earlier chunk (reply to ${command.describe()})`
        : `the server split its reply to ${command.describe()} into too many separate chunks`,
    );
    return false;
  }

  #receiveData(command: NbdCommand, memoryAt: number, count: number, end: number): void {
    this.#command = command;
    this.#dataAt = memoryAt;
    this.#dataRemaining = count;
    this.#dataEnd = end;
    this.#state = State.DATA;
    if (count === 0) this.#dataReceived();
  }

  #dataReceived(): void {
    this.#state = State.HEADER;
    if (this.#dataEnd === DataEnd.REPLY) this.#replyDone(this.#command!);
  }

  /** The final chunk (or simple reply) of `command` arrived. */
  #replyDone(command: NbdCommand): void {
    if (
      command.errno === 0 && command.type === Command.READ && command.chunks > 0 &&
      command.coverage.covered !== command.length
    ) {
      return this.#target.violation(
        `the server ended its reply to ${command.describe()} after ${command.coverage.covered} bytes`,
      );
    }
    this.#target.replied(command);
  }

  #fail(command: NbdCommand, errno: number, message: string): void {
    if (command.errno !== 0) return;
    command.errno = errno;
    command.reason = message;
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}
