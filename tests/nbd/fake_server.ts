/**
 * An NBD server in the test's own process (node:net, a Unix socket) that
 * says exactly what the test tells it to, right or wrong: the handshake
 * step by step or in one call, then requests read and replies written
 * byte by byte as the test chooses. Each accepted connection runs the
 * test's script; the scripts' errors fail the test.
 *
 * Plain `node:` modules: runs on Deno and on Node.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import {
  ChunkType,
  HandshakeFlag,
  IHAVEOPT,
  Info,
  NBD_MAGIC,
  Option,
  OPTION_REPLY_MAGIC,
  OptionReply,
  ReplyFlag,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  TransmissionFlag,
} from "../../src/nbd/protocol.ts";

/** A request as the fake server received it. */
export interface ReceivedRequest {
  readonly flags: number;
  readonly type: number;
  readonly cookie: Uint8Array;
  readonly offset: number;
  readonly length: number;
  /** A write's payload. */
  readonly data?: Uint8Array;
}

/** What {@linkcode FakeSession.handshake} offers. */
export interface FakeExport {
  readonly size: number;
  /** Transmission flags (HAS_FLAGS is added). */
  readonly flags?: number;
  /** Agree to structured replies (default true). */
  readonly structured?: boolean;
  /** [minimum, preferred, maximum] for NBD_INFO_BLOCK_SIZE, if any. */
  readonly blockSize?: readonly [number, number, number];
}

/** Flags of an export that offers everything. */
export const ALL_FLAGS = TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA |
  TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES;

/** One accepted connection. */
export class FakeSession {
  readonly #socket: Socket;
  #chunks: Uint8Array[] = [];
  #held = 0;
  #waiter: (() => void) | undefined;
  #closed = false;
  /** Options received, in order (NBD_OPT_*). */
  readonly options: number[] = [];
  /** The client's flags. */
  clientFlags = -1;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#held += chunk.length;
      this.#waiter?.();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#waiter?.();
    });
    socket.on("error", () => {});
  }

  /** Resolves once the client has closed the connection. */
  async closedByClient(): Promise<void> {
    while (!this.#closed) await new Promise<void>((resolve) => (this.#waiter = resolve));
  }

  /** The next `count` bytes from the client; rejects if it closes first. */
  async read(count: number): Promise<Uint8Array> {
    while (this.#held < count) {
      if (this.#closed) throw new Error(`the client closed (waiting for ${count} bytes)`);
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    const bytes = new Uint8Array(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.length, count - filled);
      bytes.set(chunk.subarray(0, take), filled);
      filled += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#held -= count;
    return bytes;
  }

  write(bytes: Uint8Array): void {
    if (!this.#socket.destroyed) this.#socket.write(bytes);
  }

  /** Closes the connection (a hard disconnect). */
  destroy(): void {
    this.#socket.destroy();
  }

  /** NBDMAGIC, IHAVEOPT, handshake flags; then reads the client's flags. */
  async greet(flags = HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES): Promise<void> {
    const bytes = new Uint8Array(18);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, NBD_MAGIC);
    view.setBigUint64(8, IHAVEOPT);
    view.setUint16(16, flags);
    this.write(bytes);
    this.clientFlags = new DataView((await this.read(4)).buffer).getUint32(0);
  }

  /** Reads one option: its number and data. */
  async option(): Promise<{ option: number; data: Uint8Array }> {
    const header = new DataView((await this.read(16)).buffer);
    if (header.getBigUint64(0) !== IHAVEOPT) throw new Error("option without IHAVEOPT");
    const option = header.getUint32(8);
    const data = await this.read(header.getUint32(12));
    this.options.push(option);
    return { option, data };
  }

  /** An option reply; `length` overrides the length field (a lie about the payload). */
  optionReply(option: number, type: number, data = new Uint8Array(0), length = data.length): void {
    const bytes = new Uint8Array(20 + data.length);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, OPTION_REPLY_MAGIC);
    view.setUint32(8, option);
    view.setUint32(12, type);
    view.setUint32(16, length);
    bytes.set(data, 20);
    this.write(bytes);
  }

  /** NBD_REP_INFO with NBD_INFO_EXPORT. */
  infoExport(option: number, size: bigint | number, flags: number): void {
    const data = new Uint8Array(12);
    const view = new DataView(data.buffer);
    view.setUint16(0, Info.EXPORT);
    view.setBigUint64(2, BigInt(size));
    view.setUint16(10, flags);
    this.optionReply(option, OptionReply.INFO, data);
  }

  /** NBD_REP_INFO with NBD_INFO_BLOCK_SIZE. */
  infoBlockSize(
    option: number,
    [minimum, preferred, maximum]: readonly [number, number, number],
  ): void {
    const data = new Uint8Array(14);
    const view = new DataView(data.buffer);
    view.setUint16(0, Info.BLOCK_SIZE);
    view.setUint32(2, minimum);
    view.setUint32(6, preferred);
    view.setUint32(10, maximum);
    this.optionReply(option, OptionReply.INFO, data);
  }

  /**
   * A well-behaved fixed-newstyle handshake: answers STRUCTURED_REPLY
   * (ACK, or ERR_UNSUP when `structured` is false) and GO (the export,
   * block sizes if given, ACK).
   */
  async handshake(offer: FakeExport): Promise<void> {
    await this.greet();
    for (;;) {
      const { option } = await this.option();
      if (option === Option.STRUCTURED_REPLY) {
        this.optionReply(
          option,
          offer.structured === false ? OptionReply.ERR_UNSUP : OptionReply.ACK,
        );
      } else if (option === Option.GO) {
        this.infoExport(
          option,
          offer.size,
          TransmissionFlag.HAS_FLAGS | (offer.flags ?? ALL_FLAGS),
        );
        if (offer.blockSize) this.infoBlockSize(option, offer.blockSize);
        this.optionReply(option, OptionReply.ACK);
        return;
      } else {
        this.optionReply(option, OptionReply.ERR_UNSUP);
      }
    }
  }

  /** Reads a request (and a write's payload). */
  async request(): Promise<ReceivedRequest> {
    const bytes = await this.read(28);
    const view = new DataView(bytes.buffer);
    if (view.getUint32(0) !== 0x25609513) throw new Error("request without NBD_REQUEST_MAGIC");
    const type = view.getUint16(6);
    const length = view.getUint32(24);
    return {
      flags: view.getUint16(4),
      type,
      cookie: bytes.slice(8, 16),
      offset: Number(view.getBigUint64(16)),
      length,
      data: type === 1 ? await this.read(length) : undefined,
    };
  }

  /** A simple reply, with data (a read's) after it if given. */
  simpleReply(
    cookie: Uint8Array,
    error: number,
    data?: Uint8Array,
    magic = SIMPLE_REPLY_MAGIC,
  ): void {
    const bytes = new Uint8Array(16 + (data?.length ?? 0));
    const view = new DataView(bytes.buffer);
    view.setUint32(0, magic);
    view.setUint32(4, error);
    bytes.set(cookie, 8);
    if (data) bytes.set(data, 16);
    this.write(bytes);
  }

  /** A structured reply chunk; `length` overrides the length field. */
  chunk(
    cookie: Uint8Array,
    type: number,
    flags: number,
    payload: Uint8Array,
    length = payload.length,
  ): void {
    const bytes = new Uint8Array(20 + payload.length);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, STRUCTURED_REPLY_MAGIC);
    view.setUint16(4, flags);
    view.setUint16(6, type);
    bytes.set(cookie, 8);
    view.setUint32(16, length);
    bytes.set(payload, 20);
    this.write(bytes);
  }

  /** NBD_REPLY_TYPE_OFFSET_DATA. */
  offsetData(cookie: Uint8Array, offset: number, data: Uint8Array, done: boolean): void {
    const payload = new Uint8Array(8 + data.length);
    new DataView(payload.buffer).setBigUint64(0, BigInt(offset));
    payload.set(data, 8);
    this.chunk(cookie, ChunkType.OFFSET_DATA, done ? ReplyFlag.DONE : 0, payload);
  }

  /** NBD_REPLY_TYPE_OFFSET_HOLE. */
  hole(cookie: Uint8Array, offset: number, size: number, done: boolean): void {
    const payload = new Uint8Array(12);
    const view = new DataView(payload.buffer);
    view.setBigUint64(0, BigInt(offset));
    view.setUint32(8, size);
    this.chunk(cookie, ChunkType.OFFSET_HOLE, done ? ReplyFlag.DONE : 0, payload);
  }

  /** An error chunk (NBD_REPLY_TYPE_ERROR, or `type`), with an offset for ERROR_OFFSET. */
  errorChunk(
    cookie: Uint8Array,
    error: number,
    message: string,
    done: boolean,
    options: { type?: number; offset?: number } = {},
  ): void {
    const text = new TextEncoder().encode(message);
    const withOffset = options.offset !== undefined;
    const payload = new Uint8Array(6 + text.length + (withOffset ? 8 : 0));
    const view = new DataView(payload.buffer);
    view.setUint32(0, error);
    view.setUint16(4, text.length);
    payload.set(text, 6);
    if (withOffset) view.setBigUint64(6 + text.length, BigInt(options.offset!));
    const type = options.type ?? (withOffset ? ChunkType.ERROR_OFFSET : ChunkType.ERROR);
    this.chunk(cookie, type, done ? ReplyFlag.DONE : 0, payload);
  }

  /** NBD_REPLY_TYPE_NONE with NBD_REPLY_FLAG_DONE. */
  none(cookie: Uint8Array): void {
    this.chunk(cookie, ChunkType.NONE, ReplyFlag.DONE, new Uint8Array(0));
  }
}

/** A listening fake server. */
export class FakeServer implements AsyncDisposable {
  /** `nbd+unix:///<export>?socket=…` */
  readonly uri: string;
  /** Connections accepted so far. */
  connections = 0;
  readonly #server: Server;
  readonly #dir: string;
  readonly #sockets = new Set<Socket>();
  readonly #scripts: Promise<void>[] = [];
  #failure: unknown;

  private constructor(server: Server, dir: string, exportName: string) {
    this.#server = server;
    this.#dir = dir;
    this.uri = `nbd+unix:///${exportName}?socket=${dir}/fake.sock`;
  }

  /**
   * Listens; each connection runs `script` with its session and its
   * number (0 for the first).
   */
  static async start(
    script: (session: FakeSession, index: number) => Promise<void>,
    exportName = "fake",
  ): Promise<FakeServer> {
    const dir = mkdtempSync(`${tmpdir()}/nbd-fake-`);
    const server = createServer();
    const fake = new FakeServer(server, dir, exportName);
    server.on("connection", (socket: Socket) => {
      fake.#sockets.add(socket);
      socket.on("close", () => fake.#sockets.delete(socket));
      const index = fake.connections++;
      fake.#scripts.push(
        script(new FakeSession(socket), index).catch((error) => {
          // A script that ends because the client hung up is not a failure.
          if (!/the client closed/.test(String(error))) fake.#failure ??= error;
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(`${dir}/fake.sock`, resolve));
    return fake;
  }

  /** Throws the first error a script threw. */
  check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await Promise.all(this.#scripts);
    rmSync(this.#dir, { recursive: true, force: true });
    this.check();
  }
}
