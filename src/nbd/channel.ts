/**
 * One connection to an NBD server (node:net, which Deno and Node both
 * have, over TCP or a Unix socket), whose incoming bytes go to one
 * {@linkcode ByteSink} at a time: the handshake's reader, then the reply
 * reader of the transmission phase.
 *
 * Reads use node:net's `onread` with a buffer chosen per read: the sink
 * says where the next bytes go, so the payload of a large read reply is
 * read by the kernel straight into the caller's memory (no copy), while
 * headers and small payloads go through a scratch buffer, many per read.
 *
 * @module
 */

import { connect, type Socket } from "node:net";
import { describeEndpoint, type NbdAddress } from "./uri.ts";

/** Where received bytes go. */
export interface ByteSink {
  /** Where the next read may put bytes (never empty). */
  buffer(): Uint8Array;
  /** `count` bytes were read into the start of the buffer {@linkcode buffer} last returned. */
  received(count: number): void;
}

/** Why a channel closed: undefined for a close this side asked for. */
export type CloseListener = (error: Error | undefined) => void;

/** A connected socket to an NBD server. */
export class Channel {
  /** Where incoming bytes go; replaced ({@linkcode switchSink}) as the connection moves to transmission. */
  sink: ByteSink;
  readonly #socket: Socket;
  readonly #address: NbdAddress;
  #error: Error | undefined;
  #closedByUs = false;
  #closed = false;
  #reason: Error | undefined;
  #closeListeners: CloseListener[] = [];
  /** The sink, and the buffer, the pending read was given. */
  #reading: ByteSink | undefined;
  #readBuffer: Uint8Array | undefined;

  private constructor(address: NbdAddress, sink: ByteSink) {
    this.#address = address;
    this.sink = sink;
    const onread = {
      buffer: () => {
        this.#reading = this.sink;
        this.#readBuffer = this.sink.buffer();
        return this.#readBuffer;
      },
      callback: (count: number) => {
        try {
          if (this.#reading === this.sink) this.sink.received(count);
          else {
            // The sink changed while a read was pending (Deno's reads are
            // asynchronous): the bytes landed in the old sink's buffer and
            // belong to the new one.
            this.#deliver(this.#readBuffer!.slice(0, count));
          }
        } catch (error) {
          // A bug of ours must not leave the connection half-parsed.
          this.destroy(error instanceof Error ? error : new Error(String(error)));
        }
        return true;
      },
    };
    this.#socket = address.transport === "unix"
      ? connect({ path: address.socketPath, onread })
      : connect({ host: address.host, port: address.port, onread });
    // Requests are small and latency-bound: no Nagle delay (Unix sockets ignore this).
    if (address.transport === "tcp") this.#socket.setNoDelay(true);
    this.#socket.on("error", (error) => {
      this.#error ??= error;
    });
    this.#socket.on("close", () => {
      this.#closed = true;
      this.#reason = this.#closedByUs && this.#error === undefined ? undefined : (
        this.#error ?? new Error(`the server at ${describeEndpoint(address)} closed the connection`)
      );
      for (const listener of this.#closeListeners.splice(0)) listener(this.#reason);
    });
  }

  /**
   * Starts connecting to `address`; {@linkcode connected} says how that
   * went. Received bytes go to `sink`.
   */
  static connect(address: NbdAddress, sink: ByteSink): Channel {
    return new Channel(address, sink);
  }

  /**
   * Resolves once connected; rejects with the socket's error (ECONNREFUSED,
   * ENOENT, …, or the one {@linkcode destroy} gave) if it closes first.
   */
  connected(): Promise<void> {
    const socket = this.#socket;
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(this.#reason ?? new Error("closed"));
        return;
      }
      if (!socket.connecting) {
        resolve();
        return;
      }
      const onConnect = () => {
        socket.off("close", onClose);
        resolve();
      };
      const onClose = () => {
        socket.off("connect", onConnect);
        reject(this.#error ?? new Error(`could not connect to ${describeEndpoint(this.#address)}`));
      };
      socket.once("connect", onConnect);
      socket.once("close", onClose);
    });
  }

  /**
   * Sends received bytes to `sink` from now on, starting with `pending`
   * (bytes the previous sink received beyond its needs).
   */
  switchSink(sink: ByteSink, pending: Uint8Array): void {
    this.sink = sink;
    if (pending.length > 0) this.#deliver(pending);
  }

  /** Hands `bytes` to the sink as if they had just been read. */
  #deliver(bytes: Uint8Array): void {
    for (let from = 0; from < bytes.length;) {
      const into = this.sink.buffer();
      const count = Math.min(into.length, bytes.length - from);
      into.set(bytes.subarray(from, from + count));
      from += count;
      this.sink.received(count);
    }
  }

  /** Whether the socket has closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Calls `listener` once the socket has closed (at once if it has). */
  onClose(listener: CloseListener): void {
    if (this.#closed) listener(this.#reason);
    else this.#closeListeners.push(listener);
  }

  /** Queues `bytes` for sending; they must stay unchanged until sent (no copy is made). */
  write(bytes: Uint8Array): void {
    if (!this.#socket.destroyed) this.#socket.write(bytes);
  }

  /** Holds writes back until {@linkcode uncork} (one system call for a batch). */
  cork(): void {
    this.#socket.cork();
  }

  /** Sends what {@linkcode cork} held back. */
  uncork(): void {
    this.#socket.uncork();
  }

  /** Sends what is queued, then closes this side (the soft disconnect after NBD_CMD_DISC). */
  end(): void {
    this.#closedByUs = true;
    this.#socket.end();
  }

  /**
   * Drops the connection at once (a hard disconnect). With `error`, close
   * listeners get it as the reason; without, the close counts as asked for.
   */
  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    else this.#closedByUs = true;
    this.#socket.destroy();
  }
}
