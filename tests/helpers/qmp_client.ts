/**
 * A QMP client for tests, over the real Unix socket (`node:net`, so it
 * runs on Deno and Node): reads the greeting, sends commands (or any raw
 * bytes), and hands back replies in order, keeping the events that arrive
 * in between.
 */

import assert from "node:assert/strict";
import net from "node:net";

/** A message the server sent. */
// deno-lint-ignore no-explicit-any
export type QmpMessage = Record<string, any>;

/** One connection to a QMP server. */
export class QmpClient {
  readonly socket: net.Socket;
  /** Events received so far, in order. */
  readonly events: QmpMessage[] = [];
  readonly #messages: QmpMessage[] = [];
  #waiters: (() => void)[] = [];
  #text = "";
  #closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#text += chunk;
      let end;
      while ((end = this.#text.indexOf("\n")) >= 0) {
        const line = this.#text.slice(0, end).replace(/\r$/, "");
        this.#text = this.#text.slice(end + 1);
        if (line === "") continue;
        const message = JSON.parse(line) as QmpMessage;
        if ("event" in message) this.events.push(message);
        else this.#messages.push(message);
      }
      this.#wake();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on("error", () => {});
  }

  /** Connects to `path`; with `negotiate`, reads the greeting and sends qmp_capabilities. */
  static async connect(path: string, options: { negotiate?: boolean } = {}): Promise<QmpClient> {
    const socket = net.createConnection(path);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new QmpClient(socket);
    if (options.negotiate) {
      const greeting = await client.next();
      assert.ok("QMP" in greeting, `a greeting, got ${JSON.stringify(greeting)}`);
      assert.deepEqual(await client.command("qmp_capabilities"), { return: {} });
    }
    return client;
  }

  /** Whether the server closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The next reply (or greeting), waiting for it; throws if the connection ends first. */
  async next(): Promise<QmpMessage> {
    while (this.#messages.length === 0) {
      if (this.#closed) throw new Error("the QMP server closed the connection");
      await this.#changed();
    }
    return this.#messages.shift()!;
  }

  /** Sends one command and returns its reply. */
  command(execute: string, args?: Record<string, unknown>, id?: unknown): Promise<QmpMessage> {
    const command: Record<string, unknown> = { execute };
    if (args !== undefined) command.arguments = args;
    if (id !== undefined) command.id = id;
    this.send(JSON.stringify(command));
    return this.next();
  }

  /** Sends bytes as they are. */
  send(text: string | Uint8Array): void {
    this.socket.write(text);
  }

  /** Waits until an event named `name` arrived (or the connection ended); returns it. */
  async event(name: string): Promise<QmpMessage> {
    for (;;) {
      const found = this.events.find((e) => e.event === name);
      if (found) return found;
      if (this.#closed) throw new Error(`the connection ended before a ${name} event`);
      await this.#changed();
    }
  }

  /** Waits until the server closes the connection. */
  async ended(): Promise<void> {
    while (!this.#closed) await this.#changed();
  }

  /** Shuts down the sending side only (as `socat` does at the end of its input); replies still come. */
  endInput(): void {
    this.socket.end();
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
  }

  /** Resolves at the next message or at the end of the connection. */
  #changed(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}
