/**
 * How a thread reads bytes of a lazy HTTP image synchronously: a
 * {@linkcode RangeReader}. In a browser's worker that is a synchronous
 * `XMLHttpRequest` with a `Range` header ({@linkcode XhrRangeReader}; sync
 * XHR is allowed in workers); on Deno and Node, which have no XHR, a helper
 * thread does the fetch while this one waits (`fetch_channel.ts`).
 * Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import {
  bodyLengthProblem,
  rangeAnswerProblem,
  type RangeAsked,
  rangeHeader,
} from "./range_response.ts";

/** Reads byte ranges of one image, blocking the thread until they are there. */
export interface RangeReader {
  /**
   * Reads exactly `length` bytes at image offset `offset` into
   * `into[at, at + length)`.
   *
   * @throws {VirtioBlkError} `IO_ERROR` when the server fails, times out or
   *   answers anything but those bytes
   */
  read(offset: number, length: number, into: Uint8Array, at: number): void;
  /** Releases what the reader holds (a helper thread). */
  close(): void;
}

/** Where a reader's requests go. */
export interface RangeSource {
  readonly url: string;
  /** The image's size as described. */
  readonly imageSize: number;
  /** Longest a request may take, in milliseconds. */
  readonly timeoutMs: number;
}

/** Whether this thread can read with sync XHR: a browser's worker. */
export function hasSyncXhr(): boolean {
  const scope = globalThis as { XMLHttpRequest?: unknown; WorkerGlobalScope?: unknown };
  return typeof scope.XMLHttpRequest === "function" && scope.WorkerGlobalScope !== undefined;
}

/** The subset of XMLHttpRequest this uses (Deno's types have none). */
interface Xhr {
  open(method: string, url: string, async: boolean): void;
  setRequestHeader(name: string, value: string): void;
  send(): void;
  getResponseHeader(name: string): string | null;
  responseType: string;
  timeout: number;
  readonly status: number;
  readonly response: ArrayBuffer | null;
}

/** Range reads through synchronous XMLHttpRequests (browser workers). */
export class XhrRangeReader implements RangeReader {
  readonly #source: RangeSource;

  constructor(source: RangeSource) {
    this.#source = source;
  }

  read(offset: number, length: number, into: Uint8Array, at: number): void {
    const asked: RangeAsked = {
      url: this.#source.url,
      offset,
      length,
      imageSize: this.#source.imageSize,
    };
    const XhrClass = (globalThis as unknown as { XMLHttpRequest: new () => Xhr }).XMLHttpRequest;
    const xhr = new XhrClass();
    try {
      xhr.open("GET", this.#source.url, false);
      xhr.responseType = "arraybuffer";
      xhr.timeout = this.#source.timeoutMs;
      xhr.setRequestHeader("Range", rangeHeader(offset, length));
      xhr.send();
    } catch (error) {
      throw new VirtioBlkError(
        "IO_ERROR",
        `${rangeHeader(offset, length)} of ${this.#source.url} failed: ${
          error instanceof Error ? error.message : error
        }`,
        { cause: error },
      );
    }
    const problem = rangeAnswerProblem(asked, xhr.status, xhr.getResponseHeader("Content-Range")) ??
      bodyLengthProblem(asked, xhr.response?.byteLength ?? 0);
    if (problem !== undefined) throw new VirtioBlkError("IO_ERROR", problem);
    into.set(new Uint8Array(xhr.response!), at);
  }

  close(): void {}
}
