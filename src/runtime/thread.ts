/**
 * The runtime seam for threads. Deno and browsers have Web Workers; Node 20
 * has `worker_threads` instead (`node_thread.ts`, loaded only there). Both carry structured-cloneable messages and
 * SharedArrayBuffers, which is all the engine uses them for (set-up and
 * shutdown; nothing per request).
 *
 * @module
 */

/** The parent's handle on a started thread. */
export interface Thread {
  postMessage(message: unknown): void;
  /** Called for every message the thread posts. */
  onMessage(listener: (message: unknown) => void): void;
  /** Called if the thread dies of an uncaught error. */
  onError(listener: (error: unknown) => void): void;
  terminate(): Promise<void>;
}

/** A thread's own end of the channel to its parent. */
export interface ParentChannel {
  postMessage(message: unknown): void;
  onMessage(listener: (message: unknown) => void): void;
}

/**
 * The URL of module `name` (a path relative to `importMetaUrl`, without
 * extension) with the same extension as the calling module: `.ts` when
 * running the sources, `.js` in the compiled npm package.
 */
export function siblingModule(importMetaUrl: string, name: string): URL {
  const extension = new URL(importMetaUrl).pathname.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./${name}${extension}`, importMetaUrl);
}

/** The Node half of this seam (`worker_threads`), loaded only where there is no global Worker. */
interface NodeThreads {
  startNodeThread(url: URL, name: string): Thread;
  nodeParentChannel(): ParentChannel;
}

/**
 * Imports the Node half by a computed URL, so that neither a bundler nor
 * the browser-safe core's module graph ever reaches `node:worker_threads`.
 */
function nodeThreads(): Promise<NodeThreads> {
  return import(siblingModule(import.meta.url, "node_thread").href);
}

/** Starts the ES module at `url` in a new thread. */
export async function startThread(url: URL, name: string): Promise<Thread> {
  if (typeof globalThis.Worker === "function") {
    const worker = new Worker(url, { type: "module", name });
    return {
      postMessage: (message) => worker.postMessage(message),
      onMessage: (listener) => worker.addEventListener("message", (e) => listener(e.data)),
      onError: (listener) =>
        worker.addEventListener("error", (e) => {
          e.preventDefault();
          listener(e.error ?? new Error(e.message));
        }),
      terminate: () => Promise.resolve(worker.terminate()),
    };
  }
  return (await nodeThreads()).startNodeThread(url, name);
}

/** Inside a thread: the channel to the parent (Web Worker scope or `worker_threads`). */
export async function parentChannel(): Promise<ParentChannel> {
  const scope = globalThis as unknown as {
    postMessage?: (message: unknown) => void;
    addEventListener?: (type: string, listener: (e: MessageEvent) => void) => void;
    WorkerGlobalScope?: unknown;
  };
  if (scope.WorkerGlobalScope !== undefined && scope.postMessage && scope.addEventListener) {
    return {
      postMessage: (message) => scope.postMessage!(message),
      onMessage: (listener) => scope.addEventListener!("message", (e) => listener(e.data)),
    };
  }
  return (await nodeThreads()).nodeParentChannel();
}
