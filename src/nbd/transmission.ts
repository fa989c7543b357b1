/**
 * One connection in the transmission phase: requests out, replies in, many
 * in flight at once (proto.md, "Transmission").
 *
 * - Each request in flight has a slot; its cookie is the slot (low 32 bits)
 *   and the slot's use count (high 32 bits), so a reply is matched in O(1)
 *   and a reply for a slot's earlier use, or for a slot not in use, is
 *   caught as "not in flight".
 * - Request headers of one batch go out in one write; a write's payload is
 *   sent from the caller's memory, piece by piece, without a copy. Writes
 *   are corked until the batch ends (the microtask after the first send,
 *   or {@linkcode Transmission.flush}): one system call per batch.
 * - When the connection fails (closed by the server, a protocol violation,
 *   a request past its deadline), it is dropped at once and every request
 *   in flight on it fails: none hangs, none completes with data that was
 *   not verified.
 * - NBD_ESHUTDOWN in a reply ("the server is shutting down"): no more
 *   requests go out on this connection; once the last reply is in, the
 *   client disconnects softly, as proto.md demands ("Terminating the
 *   transmission phase"), and the owner may connect again.
 *
 * @module
 */

import type { Channel } from "./channel.ts";
import { ClientErrno, ESHUTDOWN } from "./errors.ts";
import type { NbdExport } from "./export_info.ts";
import type { Established } from "./handshake.ts";
import type { NbdCommand } from "./operation.ts";
import { Command, WireSize } from "./protocol.ts";
import { ReplyReader, type ReplyTarget } from "./reply_reader.ts";
import { writeRequest } from "./wire.ts";

/** Request headers per arena (a buffer headers are written into, never reused while a write may hold it). */
const ARENA_HEADERS = 128;

/** How long a soft disconnect waits for the server to close before dropping the connection. */
const DISCONNECT_GRACE_MS = 2000;

/** What a transmission tells its owner. */
export interface TransmissionEvents {
  /** `command`'s reply arrived, or the connection failed it (its `errno` says which). */
  replied(command: NbdCommand): void;
  /**
   * The connection ended: `reason` is one line saying why, or undefined
   * for a soft disconnect this side asked for.
   */
  ended(transmission: Transmission, reason: string | undefined): void;
}

/** An established connection's transmission phase. */
export class Transmission implements ReplyTarget {
  /** The export as this connection negotiated it. */
  readonly export: NbdExport;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;
  readonly #channel: Channel;
  readonly #events: TransmissionEvents;
  readonly #maxInFlight: number;
  readonly #reader: ReplyReader;
  readonly #leftover: () => Uint8Array;
  readonly #slots: (NbdCommand | undefined)[] = [];
  #uses = new Uint32Array(16);
  readonly #free: number[] = [];
  #inFlight = 0;
  #alive = true;
  #draining = false;
  #corked = false;
  #arena = new Uint8Array(ARENA_HEADERS * WireSize.REQUEST);
  #arenaView = new DataView(this.#arena.buffer);
  #arenaUsed = 0;
  #arenaSent = 0;
  readonly #write = (bytes: Uint8Array) => this.#channel.write(bytes);
  readonly #endBatch = () => this.flush();

  /**
   * Takes over `established`'s connection; replies are read from
   * {@linkcode start} on.
   *
   * @param maxInFlight most requests sent and not yet answered
   */
  constructor(established: Established, events: TransmissionEvents, maxInFlight: number) {
    this.export = established.export;
    this.#channel = established.channel;
    this.#events = events;
    this.#maxInFlight = maxInFlight;
    this.#reader = new ReplyReader(this, established.export.structuredReplies);
    this.#leftover = established.leftover;
    this.closed = new Promise((resolve) => this.#channel.onClose(() => resolve()));
    this.#channel.onClose((error) => {
      if (this.#alive) {
        this.#end(
          `connection lost: ${error?.message ?? "closed"}`,
          ClientErrno.CONNECTION,
        );
      }
    });
  }

  /**
   * Starts reading replies, beginning with what arrived with the end of
   * the handshake (which may already end the connection: call this once
   * the owner is ready for `ended`).
   */
  start(): void {
    this.#channel.switchSink(this.#reader, this.#leftover());
  }

  /** Replies are being read and requests may be sent. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether another request may be sent now. */
  get canSend(): boolean {
    return this.#alive && !this.#draining && this.#inFlight < this.#maxInFlight;
  }

  /** Sends `command` (only when {@linkcode canSend}); its reply comes through `replied`. */
  send(command: NbdCommand): void {
    const slot = this.#free.pop() ?? this.#slots.length;
    if (slot === this.#slots.length) {
      this.#slots.push(undefined);
      if (slot === this.#uses.length) {
        const uses = new Uint32Array(2 * slot);
        uses.set(this.#uses);
        this.#uses = uses;
      }
    }
    const use = (this.#uses[slot] + 1) >>> 0;
    this.#uses[slot] = use;
    this.#slots[slot] = command;
    command.slot = slot;
    command.chunks = 0;
    command.coverage.reset();
    this.#inFlight++;
    this.#header(command.flags, command.type, use, slot, command.offset, command.length);
    if (command.type === Command.WRITE) {
      this.#sendHeaders();
      command.operation!.memory.pieces(command.memoryAt, command.length, this.#write);
    }
  }

  /** Sends what this batch queued (the microtask after the first send does it anyway). */
  flush(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#sendHeaders();
    this.#channel.uncork();
  }

  /** The first request in flight whose operation's deadline has passed, if any. */
  expired(now: number): NbdCommand | undefined {
    if (this.#inFlight === 0) return undefined;
    for (const command of this.#slots) {
      if (command !== undefined && command.operation!.deadline <= now) return command;
    }
    return undefined;
  }

  /**
   * Drops the connection (a hard disconnect) and fails every request in
   * flight with `errno`; `reason` is one line for the log.
   */
  abort(reason: string, errno: number): void {
    if (this.#alive) this.#end(reason, errno);
  }

  /**
   * Ends the connection softly: NBD_CMD_DISC, then close (requests still
   * in flight fail: callers wait for them first). Resolves once closed.
   *
   * @param reason why, for the owner's `ended` (undefined: this side just wanted to)
   */
  disconnect(reason?: string): Promise<void> {
    const closed = this.closed;
    if (this.#alive) {
      this.#alive = false;
      this.#header(0, Command.DISC, 0, 0, 0, 0);
      this.flush();
      this.#channel.end();
      // A server that never closes is not waited for.
      const timer = setTimeout(() => this.#channel.destroy(), DISCONNECT_GRACE_MS);
      void closed.then(() => clearTimeout(timer));
      this.#failAll(reason ?? "the client disconnected", ClientErrno.CLOSED);
      this.#events.ended(this, reason);
    }
    return closed;
  }

  lookup(cookieHigh: number, cookieLow: number): NbdCommand | undefined {
    const command = this.#slots[cookieLow];
    return command !== undefined && this.#uses[cookieLow] === cookieHigh ? command : undefined;
  }

  replied(command: NbdCommand): void {
    this.#release(command);
    if (command.errno === ESHUTDOWN) this.#draining = true;
    this.#events.replied(command);
    if (this.#draining && this.#inFlight === 0 && this.#alive) {
      // The owner learns why, and may connect again.
      void this.disconnect("the server is shutting down (NBD_ESHUTDOWN)");
    }
  }

  violation(problem: string): void {
    this.abort(`protocol violation: ${problem}`, ClientErrno.CONNECTION);
  }

  #end(reason: string, errno: number): void {
    this.#alive = false;
    this.#channel.destroy(new Error(reason));
    this.#failAll(reason, errno);
    this.#events.ended(this, reason);
  }

  #failAll(reason: string, errno: number): void {
    for (let slot = 0; slot < this.#slots.length && this.#inFlight > 0; slot++) {
      const command = this.#slots[slot];
      if (command === undefined) continue;
      this.#release(command);
      if (command.errno === 0) {
        command.errno = errno;
        command.reason = reason;
      }
      this.#events.replied(command);
    }
  }

  #release(command: NbdCommand): void {
    this.#slots[command.slot] = undefined;
    this.#free.push(command.slot);
    command.slot = -1;
    this.#inFlight--;
  }

  #header(flags: number, type: number, high: number, low: number, offset: number, length: number) {
    if (this.#arenaUsed === this.#arena.length) {
      this.#sendHeaders();
      // The old arena may still be held by queued writes: a new one.
      this.#arena = new Uint8Array(ARENA_HEADERS * WireSize.REQUEST);
      this.#arenaView = new DataView(this.#arena.buffer);
      this.#arenaUsed = this.#arenaSent = 0;
    }
    writeRequest(this.#arenaView, this.#arenaUsed, flags, type, high, low, offset, length);
    this.#arenaUsed += WireSize.REQUEST;
    if (!this.#corked) {
      this.#corked = true;
      this.#channel.cork();
      queueMicrotask(this.#endBatch);
    }
  }

  #sendHeaders(): void {
    if (this.#arenaUsed === this.#arenaSent) return;
    this.#channel.write(this.#arena.subarray(this.#arenaSent, this.#arenaUsed));
    this.#arenaSent = this.#arenaUsed;
  }
}
