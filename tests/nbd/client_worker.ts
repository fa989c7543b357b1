/**
 * A worker thread that owns an NBD client, the way an I/O thread would:
 * it reads into shared memory (the parent's "guest memory") and, as each
 * completion arrives on its own event loop, publishes the result in a
 * shared word array and notifies the parent, which waits with
 * `Atomics.waitAsync`. The thread must not block in `Atomics.wait` while
 * requests are in flight: its event loop delivers the replies.
 *
 * Message in: { uri, memory, words, requests: [offset, length, at][] }.
 * words[0] counts completions; words[1 + token] is each result.
 * Message out: "closed" once the client has closed.
 */

import { NbdClient } from "../../src/nbd/client.ts";
import { NbdOp } from "../../src/nbd/operation.ts";
import { parentChannel } from "../../src/runtime/thread.ts";

interface Job {
  readonly uri: string;
  readonly memory: SharedArrayBuffer;
  readonly words: SharedArrayBuffer;
  readonly requests: readonly (readonly [number, number, number])[];
}

const parent = await parentChannel();
parent.onMessage(async (message) => {
  const job = message as Job;
  const words = new Int32Array(job.words);
  const bytes = new Uint8Array(job.memory);
  let all!: () => void;
  const allDone = new Promise<void>((resolve) => (all = resolve));
  const client = await NbdClient.connect(job.uri, {
    onComplete: (token, result) => {
      Atomics.store(words, 1 + token, result);
      if (Atomics.add(words, 0, 1) + 1 === job.requests.length) all();
      Atomics.notify(words, 0);
    },
  });
  job.requests.forEach(([offset, length, at], token) => {
    const vector = { count: 1, regions: [{ bytes }], offsets: [at], lengths: [length] };
    client.submit({ op: NbdOp.READ, offset, length, vector }, token);
  });
  client.commit();
  await allDone;
  await client.close();
  parent.postMessage("closed");
});
