/**
 * A web server on a thread of its own, for tests whose code blocks the
 * calling thread while the server answers (a lazy HTTP image opened on the
 * test's own thread waits in `Atomics.wait` for each range). The parent
 * starts it with {@linkcode startServerThread}; this module is also the
 * thread's entry (`server_thread_main.ts`).
 *
 * Two kinds: the project's static server on a directory
 * (scripts/serve/static_server.ts), or a rogue one whose every range answer
 * is one of {@linkcode ROGUE_ANSWERS} (each a way a server can answer
 * wrongly).
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { siblingModule, startThread } from "../../src/runtime/thread.ts";
import type { ServedRequest } from "../../scripts/serve/static_server.ts";

/** Ways a server answers a range request wrongly, by name; `size` is the image's. */
export const ROGUE_ANSWERS: Readonly<
  Record<string, (range: string, response: ServerResponse, size: number) => void>
> = {
  "the whole image (Range ignored)": (_, r, size) => {
    r.writeHead(200, { "Content-Length": String(size) });
    r.end(new Uint8Array(size));
  },
  "other bytes": (_, r, size) => {
    r.writeHead(206, { "Content-Range": `bytes 0-511/${size}`, "Content-Length": "512" });
    r.end(new Uint8Array(512));
  },
  "a resized image": (range, r, size) => {
    const [a, b] = range.slice(6).split("-").map(Number);
    r.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${2 * size}` });
    r.end(new Uint8Array(b - a + 1));
  },
  "too many bytes": (range, r, size) => {
    const [a, b] = range.slice(6).split("-").map(Number);
    r.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${size}` });
    r.end(new Uint8Array(b - a + 100));
  },
  "too few bytes": (range, r, size) => {
    const [a, b] = range.slice(6).split("-").map(Number);
    r.writeHead(206, { "Content-Range": `bytes ${a}-${b}/${size}` });
    r.end(new Uint8Array(10));
  },
  "a server error": (_, r) => {
    r.writeHead(503);
    r.end();
  },
};

/** What the thread serves. */
export type ServerThreadKind =
  | { readonly kind: "static"; readonly directory: string; readonly prefix: string }
  | { readonly kind: "rogue"; readonly answer: string; readonly size: number };

/** Messages from the parent. */
export type ServerThreadCommand = { readonly command: "requests" } | {
  readonly command: "close";
};

/** A server on its own thread. */
export interface ServerThread extends AsyncDisposable {
  /** Its base URL. */
  readonly url: string;
  /** Every request it answered so far. */
  requests(): Promise<ServedRequest[]>;
}

/** Starts a server thread serving `kind`; resolves once it listens. */
export async function startServerThread(kind: ServerThreadKind): Promise<ServerThread> {
  const thread = await startThread(siblingModule(import.meta.url, "server_thread_main"), "server");
  let answered: (message: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => thread.onError(reject));
  failed.catch(() => {});
  thread.onMessage((message) => answered(message));
  const ask = (message: unknown) =>
    Promise.race([
      new Promise<unknown>((resolve) => {
        answered = resolve;
        thread.postMessage(message);
      }),
      failed,
    ]);
  const { url } = await ask(kind) as { url: string };
  return {
    url,
    requests: async () =>
      (await ask({ command: "requests" }) as { requests: ServedRequest[] }).requests,
    async [Symbol.asyncDispose]() {
      await ask({ command: "close" });
      await thread.terminate();
    },
  };
}
