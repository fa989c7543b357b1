/**
 * The client on a worker thread (Deno Worker, Node worker_threads): its
 * completions arrive on that thread's event loop, land in shared memory,
 * and reach a waiting parent through Atomics, with the data read straight
 * into the shared buffer.
 */

import assert from "node:assert/strict";
import { NbdClient } from "../../src/nbd/client.ts";
import { siblingModule, startThread } from "../../src/runtime/thread.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer } from "./nbd_server.ts";
import { pattern } from "./pattern.ts";

const skip = needsTools("nbdkit");

Deno.test({
  name:
    "an NBD client on a worker thread reads into shared memory; the parent learns of each completion via Atomics",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit(
      () => ["--filter=delay", "memory", "4M", "delay-read=10ms"],
    );
    // Fill the export from this thread, with a client of its own.
    const filler = await NbdClient.connect(server.uri);
    await filler.write(0, pattern(0, 4 << 20, 1));
    await filler.close();

    const count = 32;
    const requests = Array.from(
      { length: count },
      (_, i) => [((i * 37) % 1000) * 4096, 4096 * (1 + (i % 4)), i * 16384] as const,
    );
    const memory = new SharedArrayBuffer(count * 16384);
    const words = new Int32Array(new SharedArrayBuffer(4 * (1 + count)));
    const thread = await startThread(siblingModule(import.meta.url, "client_worker"), "nbd-client");
    try {
      const closed = new Promise<void>((resolve, reject) => {
        thread.onMessage((message) => message === "closed" && resolve());
        thread.onError(reject);
      });
      thread.postMessage({ uri: server.uri, memory, words: words.buffer, requests });
      // Wait as an event loop that may not block would: waitAsync on the count.
      for (let seen = Atomics.load(words, 0); seen < count; seen = Atomics.load(words, 0)) {
        const wait = Atomics.waitAsync(words, 0, seen);
        if (wait.async) await wait.value;
      }
      const bytes = new Uint8Array(memory);
      requests.forEach(([offset, length, at], token) => {
        assert.equal(words[1 + token], 0, `request ${token}`);
        assert.deepEqual(
          bytes.subarray(at, at + length),
          pattern(offset, length, 1),
          `request ${token}`,
        );
      });
      await closed;
    } finally {
      await thread.terminate();
    }
  },
});
