/**
 * The thread seam on Node 20, which has no global Worker: `worker_threads`.
 * `thread.ts` loads this module only where it is needed.
 *
 * @module
 */

import { parentPort, Worker as NodeWorker } from "node:worker_threads";
import type { ParentChannel, Thread } from "./thread.ts";

/** Starts the ES module at `url` in a `worker_threads` Worker. */
export function startNodeThread(url: URL, name: string): Thread {
  const worker = new NodeWorker(url, { name });
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (listener) => worker.on("message", listener),
    onError: (listener) => worker.on("error", listener),
    terminate: async () => {
      await worker.terminate();
    },
  };
}

/** Inside a `worker_threads` Worker: the channel to its parent. */
export function nodeParentChannel(): ParentChannel {
  if (parentPort === null) throw new Error("parentChannel() called outside a worker thread");
  const port = parentPort;
  return {
    postMessage: (message) => port.postMessage(message),
    onMessage: (listener) => port.on("message", listener),
  };
}
