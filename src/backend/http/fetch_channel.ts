/**
 * Synchronous range reads on runtimes without synchronous HTTP (Deno,
 * Node): the thread that needs the bytes (a blockif worker) hands the
 * request to a helper thread of its own through a small SharedArrayBuffer,
 * the channel, and sleeps in `Atomics.wait`; the helper runs `fetch` and
 * streams the body into the channel, then wakes it. This module owns the
 * channel's layout and both ends: {@linkcode FetchThreadReader} (the
 * waiting side, a {@linkcode RangeReader}) and {@linkcode serveFetchThread}
 * (the helper, `fetch_thread.ts`). Browser-safe (a worker without sync XHR
 * could use it too).
 *
 * One request at a time: the asking thread is blocked until its answer.
 * The helper always answers (its fetch has a time limit); if it does not
 * within that limit and a grace period, the channel counts as broken and
 * every later read fails at once instead of waiting again.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { parentChannel, siblingModule, startThread, type Thread } from "../../runtime/thread.ts";
import {
  bodyLengthProblem,
  rangeAnswerProblem,
  type RangeAsked,
  rangeHeader,
} from "./range_response.ts";
import type { RangeReader, RangeSource } from "./range_reader.ts";

/** The channel's Int32 words. */
const Word = {
  /** {@linkcode State}: who owns the channel now. */
  STATE: 0,
  /** Bytes asked for. */
  LENGTH: 1,
  /** Bytes received (>= 0), or -1 with a message. */
  RESULT: 2,
  /** Bytes of the UTF-8 message. */
  MESSAGE_LENGTH: 3,
} as const;

/** Channel states. */
const State = { IDLE: 0, REQUEST: 1, DONE: 2, CLOSE: 3 } as const;

/** Byte offset of the Float64 request offset (8-aligned). */
const OFFSET_AT = 16;
const MESSAGE_AT = 32;
const MESSAGE_BYTES = 992;
const DATA_AT = MESSAGE_AT + MESSAGE_BYTES;

/** Most bytes one request moves: longer reads take several. */
export const FETCH_CHUNK_BYTES = 1 << 20;

/** How long the waiting side gives the helper beyond its own time limit. */
const GRACE_MS = 5000;

/** What the helper thread is given. */
interface FetchThreadInit {
  readonly source: RangeSource;
  readonly channel: SharedArrayBuffer;
}

/** The waiting side: reads through a helper thread of its own. */
export class FetchThreadReader implements RangeReader {
  readonly #source: RangeSource;
  readonly #thread: Thread;
  readonly #words: Int32Array;
  readonly #offset: Float64Array;
  readonly #bytes: Uint8Array;
  #broken: string | undefined;

  private constructor(source: RangeSource, thread: Thread, channel: SharedArrayBuffer) {
    this.#source = source;
    this.#thread = thread;
    this.#words = new Int32Array(channel, 0, 4);
    this.#offset = new Float64Array(channel, OFFSET_AT, 1);
    this.#bytes = new Uint8Array(channel);
  }

  /** Starts a helper thread for `source`; resolves once it listens. */
  static async start(source: RangeSource): Promise<FetchThreadReader> {
    const channel = new SharedArrayBuffer(DATA_AT + FETCH_CHUNK_BYTES);
    const thread = await startThread(siblingModule(import.meta.url, "fetch_thread"), "http-fetch");
    const started = new Promise<void>((resolve, reject) => {
      thread.onMessage(() => resolve());
      thread.onError((error) => reject(error));
    });
    thread.postMessage({ source, channel } satisfies FetchThreadInit);
    try {
      await started;
    } catch (error) {
      await thread.terminate();
      throw new VirtioBlkError("IO_ERROR", `the HTTP helper thread failed: ${error}`, {
        cause: error,
      });
    }
    return new FetchThreadReader(source, thread, channel);
  }

  read(offset: number, length: number, into: Uint8Array, at: number): void {
    for (let done = 0; done < length;) {
      const chunk = Math.min(FETCH_CHUNK_BYTES, length - done);
      this.#readChunk(offset + done, chunk, into, at + done);
      done += chunk;
    }
  }

  close(): void {
    if (Atomics.load(this.#words, Word.STATE) !== State.CLOSE) {
      Atomics.store(this.#words, Word.STATE, State.CLOSE);
      Atomics.notify(this.#words, Word.STATE);
    }
    this.#thread.terminate().catch(() => {});
  }

  #readChunk(offset: number, length: number, into: Uint8Array, at: number): void {
    if (this.#broken !== undefined) throw new VirtioBlkError("IO_ERROR", this.#broken);
    const words = this.#words;
    this.#offset[0] = offset;
    Atomics.store(words, Word.LENGTH, length);
    Atomics.store(words, Word.STATE, State.REQUEST);
    Atomics.notify(words, Word.STATE);
    const deadline = performance.now() + this.#source.timeoutMs + GRACE_MS;
    while (Atomics.load(words, Word.STATE) === State.REQUEST) {
      const left = deadline - performance.now();
      if (left <= 0) {
        this.#broken = `${rangeHeader(offset, length)} of ${this.#source.url}: the HTTP helper ` +
          `thread did not answer within ${this.#source.timeoutMs + GRACE_MS} ms`;
        throw new VirtioBlkError("IO_ERROR", this.#broken);
      }
      Atomics.wait(words, Word.STATE, State.REQUEST, left);
    }
    const result = Atomics.load(words, Word.RESULT);
    try {
      if (result < 0) {
        const size = Atomics.load(words, Word.MESSAGE_LENGTH);
        // TextDecoder does not take views of shared memory: copy the message out.
        const text = new TextDecoder().decode(this.#bytes.slice(MESSAGE_AT, MESSAGE_AT + size));
        throw new VirtioBlkError("IO_ERROR", text);
      }
      into.set(this.#bytes.subarray(DATA_AT, DATA_AT + length), at);
    } finally {
      Atomics.store(words, Word.STATE, State.IDLE);
    }
  }
}

/**
 * The helper thread's side (`fetch_thread.ts`): takes its source and
 * channel, says it listens, then answers each request until the channel
 * closes.
 */
export async function serveFetchThread(): Promise<void> {
  const parent = await parentChannel();
  parent.onMessage((message) => {
    const { source, channel } = message as FetchThreadInit;
    parent.postMessage("listening");
    serve(source, channel).catch((error) => {
      // A bug here: say so rather than leave the asking thread to time out silently.
      console.error(`HTTP helper thread for ${source.url}: ${error}`);
    });
  });
}

async function serve(source: RangeSource, channel: SharedArrayBuffer): Promise<void> {
  const words = new Int32Array(channel, 0, 4);
  const offsetView = new Float64Array(channel, OFFSET_AT, 1);
  const bytes = new Uint8Array(channel);
  for (;;) {
    const state = Atomics.load(words, Word.STATE);
    if (state === State.CLOSE) return;
    if (state !== State.REQUEST) {
      const wait = Atomics.waitAsync(words, Word.STATE, state);
      if (wait.async) await wait.value;
      continue;
    }
    const asked: RangeAsked = {
      url: source.url,
      offset: offsetView[0],
      length: Atomics.load(words, Word.LENGTH),
      imageSize: source.imageSize,
    };
    let problem: string | undefined;
    try {
      problem = await fetchInto(source, asked, bytes);
    } catch (error) {
      const why = (error as { name?: string }).name === "TimeoutError"
        ? `no answer within ${source.timeoutMs} ms`
        : error instanceof Error
        ? (error.cause instanceof Error
          ? `${error.message} (${error.cause.message})`
          : error.message)
        : String(error);
      problem = `${rangeHeader(asked.offset, asked.length)} of ${source.url} failed: ${why}`;
    }
    if (problem === undefined) {
      Atomics.store(words, Word.RESULT, asked.length);
    } else {
      const encoded = new TextEncoder().encode(problem).subarray(0, MESSAGE_BYTES);
      bytes.set(encoded, MESSAGE_AT);
      Atomics.store(words, Word.MESSAGE_LENGTH, encoded.length);
      Atomics.store(words, Word.RESULT, -1);
    }
    // The asking thread may have closed the channel meanwhile: only a pending request is answered.
    if (Atomics.compareExchange(words, Word.STATE, State.REQUEST, State.DONE) === State.REQUEST) {
      Atomics.notify(words, Word.STATE);
    }
  }
}

/** Fetches `asked` into the channel's data area; returns why it could not, or undefined. */
async function fetchInto(
  source: RangeSource,
  asked: RangeAsked,
  bytes: Uint8Array,
): Promise<string | undefined> {
  const response = await fetch(source.url, {
    headers: { Range: rangeHeader(asked.offset, asked.length) },
    signal: AbortSignal.timeout(source.timeoutMs),
  });
  const problem = rangeAnswerProblem(asked, response.status, response.headers.get("Content-Range"));
  if (problem !== undefined) {
    await response.body?.cancel();
    return problem;
  }
  let received = 0;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    // Never past the bytes asked for: a server that sends more is refused.
    if (received + value.byteLength > asked.length) {
      await reader.cancel();
      return bodyLengthProblem(asked, received + value.byteLength);
    }
    bytes.set(value, DATA_AT + received);
    received += value.byteLength;
  }
  return bodyLengthProblem(asked, received);
}
