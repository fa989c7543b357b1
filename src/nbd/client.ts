/**
 * An NBD client for one export: the object a block back end reads and
 * writes through. Asynchronous, usable on Deno and Node (node:net), on
 * any thread whose event loop runs.
 *
 * Requests go in with {@linkcode NbdClient.submit} and a token; each
 * completes exactly once, through the `onComplete(token, result)` callback
 * given to {@linkcode NbdClient.connect}, with 0 or -errno, called on the
 * client's thread from its socket's read callback (or a microtask), never
 * inside `submit`. The promise methods ({@linkcode NbdClient.read}, …) are
 * the same path for callers that prefer promises.
 *
 * What it guarantees:
 * - Requests obey the export: beyond its end, misaligned to its minimum
 *   block, an operation it does not offer, or a write to a read-only
 *   export fail with -EINVAL / -EOPNOTSUPP / -EROFS without being sent.
 *   Reads and writes larger than the server's maximum payload (at most
 *   32 MiB) are split; the operation completes when every part has.
 * - A write completes only after the server's reply; with `fua` only
 *   after it is durable: NBD_CMD_FLAG_FUA where the export offers it,
 *   otherwise the write followed by NBD_CMD_FLUSH (an export offering
 *   neither gives no durability to ask for; the reply is all there is).
 * - Every request completes within `requestTimeoutMs` (default 30 s) of
 *   its submission, plus at most one timer period (timeout / 8, at most
 *   1 s): a server that stops answering has its connection dropped and
 *   every request in flight on it fails with -ETIMEDOUT; one that closes
 *   the connection or breaks the protocol fails them with -ECONNRESET.
 * - After a failed connection the client connects again, waiting
 *   `reconnectDelayMs` (100 ms) before the first try and doubling up to
 *   `maxReconnectDelayMs` (5 s), for as long as it is open. A new
 *   connection must find the same export (size, offered operations, size
 *   constraints); otherwise it is dropped and the client keeps trying.
 *   Requests submitted meanwhile wait (within their timeout) and go out
 *   on the new connection; requests that were in flight are not retried.
 *
 * @module
 */

import { ClientErrno, exportError, nbdErrnoName, NbdRequestError } from "./errors.ts";
import { exportChange, MAX_EFFECT_LENGTH, maxTransfer, type NbdExport } from "./export_info.ts";
import { establish, type Established } from "./handshake.ts";
import { NbdCommand, NbdOp, type NbdOpCode, Operation, RecordPool } from "./operation.ts";
import { Command, CommandFlag } from "./protocol.ts";
import type { ByteVector } from "./scatter.ts";
import { Transmission, type TransmissionEvents } from "./transmission.ts";
import { type NbdAddress, parseNbdUri } from "./uri.ts";

/** One request, as {@linkcode NbdClient.submit} receives it (the caller's record, reusable at once). */
export interface NbdRequest {
  /** What to do. */
  op: NbdOpCode;
  /** Export byte offset (0 for FLUSH). */
  offset: number;
  /** Bytes (0 for FLUSH). */
  length: number;
  /** READ: where the data goes; WRITE: where it comes from (its lengths add up to `length`). */
  vector?: ByteVector;
  /** WRITE, TRIM, WRITE_ZEROES: complete only once durable. */
  fua?: boolean;
  /** WRITE_ZEROES: the range must stay allocated (NBD_CMD_FLAG_NO_HOLE). */
  noHole?: boolean;
}

/** How a client behaves; every field has a default. */
export interface NbdClientOptions {
  /** Every request completes within this many milliseconds (default 30 000). */
  readonly requestTimeoutMs?: number;
  /** Connecting plus the handshake must end within this many milliseconds (default 10 000). */
  readonly connectTimeoutMs?: number;
  /** Wait before the first reconnection attempt (default 100 ms; doubles per failure). */
  readonly reconnectDelayMs?: number;
  /** Longest wait between reconnection attempts (default 5 000 ms). */
  readonly maxReconnectDelayMs?: number;
  /** Most NBD requests in flight on the connection; more wait in order (default 128). */
  readonly maxInFlight?: number;
  /** Ask for structured replies (default true). */
  readonly structuredReplies?: boolean;
  /** The export must be this one (another connection's): see {@linkcode exportChange}. */
  readonly expect?: NbdExport;
  /**
   * This connection is one of several to the export (multi-conn): it, and
   * every reconnection, must offer NBD_FLAG_CAN_MULTI_CONN when the first
   * did (default false).
   */
  readonly multiConn?: boolean;
  /** Receives each request's token and result (0 or -errno). */
  readonly onComplete?: (token: number, result: number) => void;
  /** Receives one line per connection event (lost, reconnected, a failed attempt). */
  readonly log?: (line: string) => void;
}

/** The defaults of {@linkcode NbdClientOptions}. */
export const NBD_CLIENT_DEFAULTS = {
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  reconnectDelayMs: 100,
  maxReconnectDelayMs: 5_000,
  maxInFlight: 128,
} as const;

/** A connected NBD export. */
export class NbdClient implements AsyncDisposable {
  /** Where the export is. */
  readonly address: NbdAddress;
  /** The export, as the first connection negotiated it (every later one must match). */
  readonly export: NbdExport;
  /** Connections made after the first. */
  reconnects = 0;
  /** Whether a connection was ever made (false while an {@linkcode open}ed client connects). */
  #connectedOnce = false;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #firstDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxInFlight: number;
  readonly #structured: boolean | undefined;
  readonly #multiConn: boolean;
  readonly #onComplete: (token: number, result: number) => void;
  readonly #log: (line: string) => void;
  readonly #transfer: number;
  readonly #operations = new RecordPool(() => new Operation());
  readonly #commands = new RecordPool(() => new NbdCommand());
  #transmission: Transmission | undefined;
  #queueHead: NbdCommand | undefined;
  #queueTail: NbdCommand | undefined;
  /** Operations submitted and not yet completed. */
  #pending = 0;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #delayMs: number;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #attempt: Promise<void> | undefined;
  #lastFailure = "";
  /** Connection attempts that failed since the last connection. */
  #attemptsFailed = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  /** Sockets of ended connections still closing (close() waits for them). */
  readonly #closingSockets = new Set<Promise<void>>();
  readonly #events: TransmissionEvents = {
    replied: (command) => this.#replied(command),
    ended: (transmission, reason) => this.#ended(transmission, reason),
  };
  readonly #tick = () => this.#checkDeadlines();

  private constructor(
    address: NbdAddress,
    established: Established | undefined,
    info: NbdExport,
    options: NbdClientOptions,
  ) {
    this.address = address;
    this.export = info;
    this.#timeoutMs = options.requestTimeoutMs ?? NBD_CLIENT_DEFAULTS.requestTimeoutMs;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? NBD_CLIENT_DEFAULTS.connectTimeoutMs;
    this.#firstDelayMs = options.reconnectDelayMs ?? NBD_CLIENT_DEFAULTS.reconnectDelayMs;
    this.#maxDelayMs = options.maxReconnectDelayMs ?? NBD_CLIENT_DEFAULTS.maxReconnectDelayMs;
    this.#maxInFlight = options.maxInFlight ?? NBD_CLIENT_DEFAULTS.maxInFlight;
    this.#structured = options.structuredReplies;
    this.#multiConn = options.multiConn === true;
    this.#onComplete = options.onComplete ?? (() => {});
    this.#log = options.log ?? (() => {});
    this.#delayMs = this.#firstDelayMs;
    this.#transfer = maxTransfer(this.export);
    if (established === undefined) {
      this.#startAttempt();
      return;
    }
    this.#connectedOnce = true;
    this.#transmission = new Transmission(established, this.#events, this.#maxInFlight);
    this.#transmission.start();
  }

  /**
   * Connects to the export `uri` names (an NBD URI, see `uri.ts`) and
   * negotiates it.
   *
   * @throws VirtioBlkError INVALID_CONFIG (bad URI), UNSUPPORTED (TLS),
   *   BAD_BACKING_FILE (unreachable, refused or unusable export; not the
   *   `expect`ed export)
   */
  static async connect(
    uri: string | NbdAddress,
    options: NbdClientOptions = {},
  ): Promise<NbdClient> {
    const address = typeof uri === "string" ? parseNbdUri(uri) : uri;
    checkOptions(address, options);
    const established = await establish(address, {
      timeoutMs: options.connectTimeoutMs ?? NBD_CLIENT_DEFAULTS.connectTimeoutMs,
      structuredReplies: options.structuredReplies,
    });
    const change = options.expect &&
      exportChange(options.expect, established.export, options.multiConn === true);
    if (change) {
      await new Transmission(established, IGNORE_EVENTS, 1).disconnect();
      throw exportError(address.uri, `not the export the other connections have: ${change}`);
    }
    return new NbdClient(address, established, established.export, options);
  }

  /**
   * A client of an export already known (another connection's `export`,
   * plain data: one probed on another thread), returned at once: it
   * connects in the background as it would reconnect (the export must be
   * `expected`; failures are logged and retried with back-off). Requests
   * submitted meanwhile wait for the connection within their timeout.
   *
   * @throws VirtioBlkError INVALID_CONFIG (bad URI or options), UNSUPPORTED (TLS)
   */
  static open(
    uri: string | NbdAddress,
    expected: NbdExport,
    options: NbdClientOptions = {},
  ): NbdClient {
    const address = typeof uri === "string" ? parseNbdUri(uri) : uri;
    checkOptions(address, options);
    return new NbdClient(address, undefined, expected, options);
  }

  /** Operations submitted and not yet completed. */
  get inFlight(): number {
    return this.#pending;
  }

  /** Whether a connection is up now. */
  get connected(): boolean {
    return this.#transmission?.alive === true;
  }

  /**
   * Starts `request`; its completion calls `onComplete(token, result)`
   * once, later. The request record may be reused when this returns; the
   * memory its vector names must stay untouched until completion.
   */
  submit(request: NbdRequest, token: number): void {
    const operation = this.#operations.take();
    operation.token = token;
    operation.callback = undefined;
    this.#start(operation, request);
  }

  /** Sends what was submitted in this batch now (otherwise at the end of the current task). */
  commit(): void {
    this.#transmission?.flush();
  }

  /** Reads `into.length` bytes at `offset` into `into`. */
  read(offset: number, into: Uint8Array): Promise<void> {
    return this.#promise({ op: NbdOp.READ, offset, length: into.length, vector: single(into) });
  }

  /** Writes `from` at `offset`; with `fua`, resolves once it is durable. */
  write(offset: number, from: Uint8Array, options: { fua?: boolean } = {}): Promise<void> {
    return this.#promise({
      op: NbdOp.WRITE,
      offset,
      length: from.length,
      vector: single(from),
      fua: options.fua,
    });
  }

  /** Makes every write completed before it durable. */
  flush(): Promise<void> {
    return this.#promise({ op: NbdOp.FLUSH, offset: 0, length: 0 });
  }

  /** Discards `length` bytes at `offset`. */
  trim(offset: number, length: number, options: { fua?: boolean } = {}): Promise<void> {
    return this.#promise({ op: NbdOp.TRIM, offset, length, fua: options.fua });
  }

  /** Writes `length` zero bytes at `offset` (with `noHole`, keeping them allocated). */
  writeZeroes(
    offset: number,
    length: number,
    options: { fua?: boolean; noHole?: boolean } = {},
  ): Promise<void> {
    return this.#promise({ op: NbdOp.WRITE_ZEROES, offset, length, ...options });
  }

  /**
   * Ends every operation now, each completing before this returns: those
   * not sent fail with ECANCELED, and the connection is dropped (a hard
   * disconnect, as after a protocol violation) so that those in flight
   * fail too and no reply ever touches their memory. The client then
   * connects again as after any lost connection. For a caller that must
   * be sure no request of its touches memory any more and cannot wait for
   * replies (a device reset on the thread that runs this client).
   *
   * @param reason one line for the log and the failures (`the device was reset`)
   */
  abort(reason: string): void {
    this.#failQueued(ClientErrno.CANCELLED, reason);
    this.#transmission?.abort(reason, ClientErrno.CANCELLED);
  }

  /**
   * Closes the client: requests submitted from now on fail with
   * -ENOTCONN; those already submitted complete (within their timeout;
   * at once, failed, when there is no connection), then NBD_CMD_DISC ends
   * the connection. Resolves once the socket has closed and no timer is
   * left.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /** {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    if (this.#transmission === undefined) this.#failQueued(ClientErrno.CLOSED, "the client closed");
    if (this.#pending > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    await this.#attempt;
    await this.#transmission?.disconnect();
    this.#transmission = undefined;
    await Promise.all(this.#closingSockets);
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  #promise(request: NbdRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      const operation = this.#operations.take();
      operation.callback = (result: number, done: Operation) => {
        if (result === 0) resolve();
        else reject(new NbdRequestError(-result, `${this.address.uri}: ${done.reason}`));
      };
      this.#start(operation, request);
    });
  }

  #start(operation: Operation, request: NbdRequest): void {
    operation.op = request.op;
    operation.offset = request.offset;
    operation.length = request.length;
    operation.fua = request.fua === true;
    operation.noHole = request.noHole === true;
    operation.result = 0;
    operation.reason = "";
    operation.finished = false;
    operation.flushAfter = false;
    operation.remaining = 0;
    if (request.vector !== undefined) operation.memory.setVector(request.vector);
    else operation.memory.clear();
    operation.deadline = performance.now() + this.#timeoutMs;
    this.#pending++;
    this.#ticker ??= setInterval(this.#tick, tickPeriod(this.#timeoutMs));

    const refusal = this.#refusal(operation, request);
    if (refusal !== undefined) {
      const [errno, reason] = refusal;
      queueMicrotask(() => this.#fail(operation, errno, reason));
      return;
    }
    if (operation.op !== NbdOp.FLUSH && operation.length === 0) {
      queueMicrotask(() => this.#finish(operation));
      return;
    }
    this.#split(operation);
    this.#pump();
  }

  /** Why `request` cannot be sent ([errno, reason]), or undefined. */
  #refusal(operation: Operation, request: NbdRequest): [number, string] | undefined {
    const info = this.export;
    const { op, offset, length } = operation;
    const invalid = (problem: string): [number, string] => [ClientErrno.INVALID, problem];
    if (this.#closing) return [ClientErrno.CLOSED, "the client is closed"];
    if (!(op in NBD_OP_SUPPORT)) return invalid(`unknown operation ${op}`);
    if (op === NbdOp.FLUSH) {
      return info.canFlush
        ? undefined
        : [ClientErrno.UNSUPPORTED, "the export does not offer NBD_CMD_FLUSH"];
    }
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0
    ) {
      return invalid("offset and length must be non-negative integers");
    }
    if (offset + length > info.size) return invalid(`beyond the export's end (${info.size} bytes)`);
    if (offset % info.minimumBlock !== 0 || length % info.minimumBlock !== 0) {
      return invalid(`not aligned to the export's minimum block size ${info.minimumBlock}`);
    }
    if (op === NbdOp.READ || op === NbdOp.WRITE) {
      if (request.vector === undefined) return invalid("no memory given");
      if (operation.memory.total !== length) {
        return invalid(`the memory given holds ${operation.memory.total} bytes`);
      }
      if (!operation.memory.inBounds()) return invalid("the memory given lies outside its buffers");
    }
    if (op !== NbdOp.READ && info.readOnly) {
      return [ClientErrno.READ_ONLY, "the export is read-only"];
    }
    if (op === NbdOp.TRIM && !info.canTrim) {
      return [ClientErrno.UNSUPPORTED, "the export does not offer NBD_CMD_TRIM"];
    }
    if (op === NbdOp.WRITE_ZEROES && !info.canWriteZeroes) {
      return [ClientErrno.UNSUPPORTED, "the export does not offer NBD_CMD_WRITE_ZEROES"];
    }
    return undefined;
  }

  /** Queues the commands `operation` becomes. */
  #split(operation: Operation): void {
    const info = this.export;
    const { op } = operation;
    if (op === NbdOp.FLUSH) return this.#queue(operation, Command.FLUSH, 0, 0, 0, 0);
    const type = NBD_OP_SUPPORT[op];
    let flags = 0;
    if (op !== NbdOp.READ && operation.fua) {
      // Durable before completion: FUA where offered, otherwise a FLUSH after
      // the writes ("Ordering of messages and writes").
      if (info.canFua) flags |= CommandFlag.FUA;
      else operation.flushAfter = info.canFlush;
    }
    if (op === NbdOp.WRITE_ZEROES && operation.noHole) flags |= CommandFlag.NO_HOLE;
    const unit = op === NbdOp.READ || op === NbdOp.WRITE ? this.#transfer : MAX_EFFECT_LENGTH;
    for (let done = 0; done < operation.length; done += unit) {
      const length = Math.min(unit, operation.length - done);
      this.#queue(operation, type, flags, operation.offset + done, length, done);
    }
  }

  #queue(
    operation: Operation,
    type: number,
    flags: number,
    offset: number,
    length: number,
    at: number,
  ) {
    const command = this.#commands.take();
    command.type = type;
    command.flags = flags;
    command.offset = offset;
    command.length = length;
    command.memoryAt = at;
    command.operation = operation;
    command.errno = 0;
    command.reason = "";
    command.next = undefined;
    operation.remaining++;
    if (this.#queueTail === undefined) this.#queueHead = command;
    else this.#queueTail.next = command;
    this.#queueTail = command;
  }

  /** Sends queued commands while the connection takes more. */
  #pump(): void {
    const transmission = this.#transmission;
    if (transmission === undefined) return;
    while (this.#queueHead !== undefined && transmission.canSend) {
      const command = this.#queueHead;
      this.#queueHead = command.next;
      if (this.#queueHead === undefined) this.#queueTail = undefined;
      command.next = undefined;
      transmission.send(command);
    }
  }

  #replied(command: NbdCommand): void {
    const operation = command.operation!;
    if (command.errno !== 0 && operation.result === 0) {
      operation.result = -command.errno;
      operation.reason = failure(command.describe(), command.errno, command.reason);
    }
    this.#release(command);
    operation.remaining--;
    if (operation.result !== 0 && operation.remaining > 0) this.#unqueue(operation);
    if (operation.remaining === 0) this.#partsDone(operation);
    this.#pump();
  }

  /** Every command of `operation` finished: a FLUSH may follow, or it is done. */
  #partsDone(operation: Operation): void {
    if (operation.result === 0 && operation.flushAfter) {
      operation.flushAfter = false;
      this.#queue(operation, Command.FLUSH, 0, 0, 0, 0);
      return;
    }
    this.#finish(operation);
  }

  #fail(operation: Operation, errno: number, why: string): void {
    this.#setFailure(operation, errno, why);
    this.#finish(operation);
  }

  /** Records the first failure of `operation`: its result, and one line saying why. */
  #setFailure(operation: Operation, errno: number, why: string): void {
    if (operation.result !== 0) return;
    operation.result = -errno;
    operation.reason = failure(operation.describe(), errno, why);
  }

  #finish(operation: Operation): void {
    operation.finished = true;
    this.#pending--;
    const { callback, token, result } = operation;
    try {
      if (callback !== undefined) callback(result, operation);
      else this.#onComplete(token, result);
    } catch (error) {
      // The caller's bug: surfaced, without leaving this client half-updated.
      queueMicrotask(() => {
        throw error;
      });
    } finally {
      operation.memory.clear();
      operation.callback = undefined;
      this.#operations.give(operation);
    }
    if (this.#pending === 0 && this.#drained !== undefined) this.#drained();
  }

  #release(command: NbdCommand): void {
    command.operation = undefined;
    command.next = undefined;
    this.#commands.give(command);
  }

  /** Takes `operation`'s commands that were not sent off the queue (it failed already). */
  #unqueue(operation: Operation): void {
    let previous: NbdCommand | undefined;
    let command = this.#queueHead;
    while (command !== undefined) {
      const next = command.next;
      if (command.operation === operation) {
        if (previous === undefined) this.#queueHead = next;
        else previous.next = next;
        if (this.#queueTail === command) this.#queueTail = previous;
        this.#release(command);
        operation.remaining--;
      } else previous = command;
      command = next;
    }
  }

  /** Fails every operation with a command still queued. */
  #failQueued(errno: number, why: string): void {
    while (this.#queueHead !== undefined) {
      const operation = this.#queueHead.operation!;
      this.#setFailure(operation, errno, why);
      this.#unqueue(operation);
      if (operation.remaining === 0) this.#partsDone(operation);
    }
  }

  /** The timer's work: requests past their deadline fail, on the wire or in the queue. */
  #checkDeadlines(): void {
    const now = performance.now();
    const transmission = this.#transmission;
    const late = transmission?.expired(now);
    if (late !== undefined) {
      transmission!.abort(
        `no reply to ${late.describe()} within ${this.#timeoutMs} ms`,
        ClientErrno.TIMEOUT,
      );
    }
    const expired: Operation[] = [];
    for (let command = this.#queueHead; command !== undefined; command = command.next) {
      const operation = command.operation!;
      if (operation.deadline <= now && !expired.includes(operation)) expired.push(operation);
    }
    for (const operation of expired) {
      this.#setFailure(
        operation,
        ClientErrno.TIMEOUT,
        `not sent within ${this.#timeoutMs} ms: ${
          this.#transmission === undefined
            ? `no connection to the server${this.#lastFailure ? ` (${this.#lastFailure})` : ""}`
            : "the connection is busy"
        }`,
      );
      this.#unqueue(operation);
      if (operation.remaining === 0) this.#partsDone(operation);
    }
    if (this.#pending === 0) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  #ended(transmission: Transmission, reason: string | undefined): void {
    if (transmission !== this.#transmission) return;
    this.#transmission = undefined;
    const closed = transmission.closed;
    this.#closingSockets.add(closed);
    void closed.then(() => this.#closingSockets.delete(closed));
    if (this.#closing) {
      this.#failQueued(ClientErrno.CLOSED, "the client closed");
      return;
    }
    this.#log(`${this.address.uri}: ${reason ?? "disconnected"}; reconnecting`);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closing || this.#reconnectTimer !== undefined || this.#attempt !== undefined) return;
    const delay = this.#delayMs;
    this.#delayMs = Math.min(2 * delay, this.#maxDelayMs);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#startAttempt();
    }, delay);
  }

  /** Tries to connect now; schedules the next try if it fails. */
  #startAttempt(): void {
    this.#attempt = this.#reconnect().finally(() => {
      this.#attempt = undefined;
      if (this.#transmission === undefined) this.#scheduleReconnect();
    });
  }

  async #reconnect(): Promise<void> {
    let established: Established;
    try {
      established = await establish(this.address, {
        timeoutMs: this.#connectTimeoutMs,
        structuredReplies: this.#structured,
      });
    } catch (error) {
      this.#attemptFailed((error as Error).message);
      return;
    }
    const change = exportChange(this.export, established.export, this.#multiConn);
    if (this.#closing || change !== undefined) {
      await new Transmission(established, IGNORE_EVENTS, 1).disconnect();
      if (change !== undefined) this.#attemptFailed(`${this.address.uri}: ${change}`);
      return;
    }
    this.#transmission = new Transmission(established, this.#events, this.#maxInFlight);
    this.#delayMs = this.#firstDelayMs;
    this.#lastFailure = "";
    if (this.#connectedOnce) {
      this.reconnects++;
      this.#log(`${this.address.uri}: reconnected`);
    } else if (this.#attemptsFailed > 0) {
      this.#log(`${this.address.uri}: connected`);
    }
    this.#connectedOnce = true;
    this.#attemptsFailed = 0;
    this.#transmission.start();
    this.#pump();
  }

  #attemptFailed(message: string): void {
    this.#attemptsFailed++;
    // One line per new reason, not one per attempt.
    if (message !== this.#lastFailure) {
      this.#log(`${this.#connectedOnce ? "reconnecting" : "connecting"} failed: ${message}`);
    }
    this.#lastFailure = message;
  }
}

/** The NBD command of each operation. */
const NBD_OP_SUPPORT: Readonly<Record<NbdOpCode, number>> = {
  [NbdOp.READ]: Command.READ,
  [NbdOp.WRITE]: Command.WRITE,
  [NbdOp.FLUSH]: Command.FLUSH,
  [NbdOp.TRIM]: Command.TRIM,
  [NbdOp.WRITE_ZEROES]: Command.WRITE_ZEROES,
};

/** "read of 512 bytes at 0 failed: ETIMEDOUT (why)": how every failure reads. */
function failure(what: string, errno: number, why: string): string {
  return `${what} failed: ${nbdErrnoName(errno)}${why ? ` (${why})` : ""}`;
}

const IGNORE_EVENTS: TransmissionEvents = { replied: () => {}, ended: () => {} };

/** How often deadlines are checked: an eighth of the timeout, between 10 ms and 1 s. */
function tickPeriod(timeoutMs: number): number {
  return Math.min(1000, Math.max(10, Math.floor(timeoutMs / 8)));
}

function single(bytes: Uint8Array): ByteVector {
  return { count: 1, regions: [{ bytes }], offsets: [0], lengths: [bytes.length] };
}

function checkOptions(address: NbdAddress, options: NbdClientOptions): void {
  const positive: (keyof NbdClientOptions)[] = [
    "requestTimeoutMs",
    "connectTimeoutMs",
    "reconnectDelayMs",
    "maxReconnectDelayMs",
    "maxInFlight",
  ];
  for (const name of positive) {
    const value = options[name];
    if (
      value !== undefined && !(typeof value === "number" && Number.isInteger(value) && value > 0)
    ) {
      throw exportError(address.uri, `option ${name} must be a positive integer (got ${value})`);
    }
  }
}
