/**
 * Entry point of a blockif worker thread: receives its set-up message,
 * opens its own handle on the medium, reports ready, then serves requests
 * until the engine closes the pool.
 *
 * @module
 */

import { parentChannel } from "../runtime/thread.ts";
import { BlockifServer } from "./server.ts";
import { openServerParts, type WorkerInit, type WorkerMessage } from "./worker_init.ts";

const parent = await parentChannel();
parent.onMessage((message) => {
  const init = message as WorkerInit;
  const post = (reply: WorkerMessage) => parent.postMessage(reply);
  let parts;
  try {
    parts = openServerParts(init);
  } catch (error) {
    post({
      type: "error",
      index: init.index,
      message: error instanceof Error ? error.message : String(error),
    });
    return;
  }
  post({ type: "ready", index: init.index });
  try {
    new BlockifServer(parts).loop();
  } finally {
    parts.backend?.close();
    post({ type: "closed", index: init.index });
  }
});
