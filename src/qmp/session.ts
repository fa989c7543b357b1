/**
 * One QMP client's conversation (QEMU's docs/interop/qmp-spec.rst): the
 * greeting, capabilities negotiation, then commands answered one at a
 * time, in order, each reply echoing the command's `id`; events once the
 * client negotiated. Independent of the socket: bytes go in through
 * {@linkcode QmpSession.receive} and messages come out through the
 * session's output.
 *
 * Untrusted input: a malformed or oversized text, a text that is not a
 * command, or a command with bad arguments gets an error reply and the
 * conversation goes on. Commands that wait (a resize waits for the medium)
 * hold the next ones back; once {@linkcode MAX_PENDING} wait, the session
 * asks its transport to stop reading, so a client that floods it costs
 * bounded memory.
 *
 * @module
 */

import { NEGOTIATION, NEGOTIATION_ARGS, type QmpHost, runCommand } from "./commands.ts";
import { checkArguments } from "./arguments.ts";
import { type JsonPiece, type JsonStreamLimits, JsonStreamSplitter } from "./json_stream.ts";
import {
  errorReply,
  genericError,
  greeting,
  idOf,
  type JsonObject,
  parseCommand,
  type QmpCommand,
  QmpError,
  returnReply,
} from "./protocol.ts";

/** Texts a session holds back while a command runs, before it asks for no more input. */
export const MAX_PENDING = 16;

/** Where a session's messages go, and how it holds its input back. */
export interface SessionTransport {
  /** Sends one message (a greeting, reply or event). */
  send(message: JsonObject): void;
  /** Stop reading the client: the session holds {@linkcode MAX_PENDING} texts. */
  pause(): void;
  /** Read the client again. */
  resume(): void;
  /** Every reply is out after the client's input ended: finish the conversation. */
  end(): void;
}

/** One client's QMP conversation. */
export class QmpSession {
  readonly #host: QmpHost;
  readonly #transport: SessionTransport;
  readonly #splitter: JsonStreamSplitter;
  readonly #pending: JsonPiece[] = [];
  #negotiated = false;
  #running = false;
  #paused = false;
  #closed = false;
  #inputEnded = false;

  /**
   * Starts the conversation: the greeting goes out at once.
   *
   * @param host the drives and machine the commands act on
   * @param transport where messages go
   * @param limits how large and deep one text may be
   */
  constructor(host: QmpHost, transport: SessionTransport, limits?: JsonStreamLimits) {
    this.#host = host;
    this.#transport = transport;
    this.#splitter = new JsonStreamSplitter(limits);
    transport.send(greeting(host.version));
  }

  /** Whether the client negotiated capabilities (it then gets events). */
  get negotiated(): boolean {
    return this.#negotiated;
  }

  /** Takes bytes from the client. */
  receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#pending.push(...this.#splitter.push(bytes));
    if (this.#pending.length >= MAX_PENDING && !this.#paused) {
      this.#paused = true;
      this.#transport.pause();
    }
    void this.#run();
  }

  /** Sends `event` if the client is in command mode (QEMU sends none before). */
  event(event: JsonObject): void {
    if (this.#negotiated && !this.#closed) this.#transport.send(event);
  }

  /**
   * The client sent all it will (it shut down its side, as `socat` does at
   * the end of its input): the commands it sent are answered, in order, and
   * then the conversation ends. So `printf … | socat - UNIX-CONNECT:…` gets
   * every reply, as from QEMU, which answers each command as it reads it.
   * An unfinished text at the end is dropped, as QEMU drops it.
   */
  endOfInput(): void {
    if (this.#closed || this.#inputEnded) return;
    this.#inputEnded = true;
    void this.#run();
  }

  /**
   * The client went away: nothing more is sent. A command running now
   * finishes (a half-done resize would leave the device and its file apart).
   */
  close(): void {
    this.#closed = true;
    this.#pending.length = 0;
  }

  async #run(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      for (let piece = this.#pending.shift(); piece !== undefined; piece = this.#pending.shift()) {
        if (this.#paused && this.#pending.length < MAX_PENDING / 2) {
          this.#paused = false;
          this.#transport.resume();
        }
        const { reply, quit } = piece.kind === "error"
          ? { reply: errorReply(genericError(piece.reason)), quit: false }
          : await this.#answer(piece.text);
        if (!this.#closed) this.#transport.send(reply);
        // After the reply, as QEMU: then SHUTDOWN, then the end.
        if (quit) this.#host.quit();
        if (this.#closed) return;
      }
      if (this.#inputEnded) {
        this.#closed = true;
        this.#transport.end();
      }
    } finally {
      this.#running = false;
    }
  }

  /** The reply to one text, and whether it asked the device model to quit. */
  async #answer(text: string): Promise<{ reply: JsonObject; quit: boolean }> {
    let command;
    try {
      command = parseCommand(text);
    } catch (error) {
      return { reply: errorReply(error as QmpError, idOf(error)), quit: false };
    }
    const reply = await this.#execute(command);
    return { reply, quit: command.execute === "quit" && "return" in reply };
  }

  async #execute(command: QmpCommand): Promise<JsonObject> {
    const { id } = command;
    try {
      if (command.execute === NEGOTIATION) {
        if (this.#negotiated) {
          throw new QmpError(
            "CommandNotFound",
            "Capabilities negotiation is already complete, command ignored",
          );
        }
        const { enable } = checkArguments(command.arguments, NEGOTIATION_ARGS);
        for (const capability of (enable ?? []) as string[]) {
          throw genericError(`Capability '${capability}' not available`);
        }
        this.#negotiated = true;
        return returnReply({}, id);
      }
      if (!this.#negotiated) {
        throw new QmpError(
          "CommandNotFound",
          "Expecting capabilities negotiation with 'qmp_capabilities'",
        );
      }
      return returnReply(await runCommand(command, this.#host), id);
    } catch (error) {
      if (error instanceof QmpError) return errorReply(error, id);
      return errorReply(genericError((error as Error).message), id);
    }
  }
}
