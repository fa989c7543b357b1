/**
 * Stopping the device model's end of the I/O-request mailbox never leaves
 * a vCPU waiting: an access posted before stop() returns is handled (the
 * server polls once more after it closed the mailbox), and one posted after
 * fails on the vCPU with a `CLOSED` error. The vCPU is a real thread (it
 * blocks in `Atomics.wait` while its access is served); the moment it posts
 * is chosen by the test, which blocks the device model's thread until then.
 */

import assert from "node:assert/strict";
import {
  createMailbox,
  MailboxServer,
  MailboxWord,
  SlotState,
  SlotWord,
} from "../../src/dm/io_mailbox.ts";
import { siblingModule, startThread, type Thread } from "../../src/runtime/thread.ts";

const PORT = 0x70;
const VALUE = 0x5a;

/** A mailbox with one slot, a server answering VALUE, and a vCPU thread. */
async function rig() {
  const mailbox = createMailbox(1);
  const words = new Int32Array(mailbox);
  const handled: number[] = [];
  const server = new MailboxServer(mailbox, 1, (_direction, port) => {
    handled.push(port);
    return VALUE;
  });
  const vcpu = await startThread(siblingModule(import.meta.url, "mailbox_vcpu_worker"), "vcpu");
  const replies: unknown[] = [];
  let waiting: ((reply: unknown) => void) | undefined;
  vcpu.onMessage((reply) => {
    if (waiting) {
      waiting(reply);
      waiting = undefined;
    } else replies.push(reply);
  });
  const reply = () =>
    replies.length > 0
      ? Promise.resolve(replies.shift())
      : new Promise<unknown>((resolve) => (waiting = resolve));
  vcpu.postMessage({ mailbox });
  assert.deepEqual(await reply(), { started: true });
  return { words, handled, server, vcpu, reply };
}

/** The vCPU's answer, or a failure if none comes (it would wait for ever). */
async function answer(reply: () => Promise<unknown>): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      reply(),
      new Promise((_, reject) =>
        timer = setTimeout(
          () => reject(new Error("the vCPU is still waiting for an answer")),
          10_000,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function closing(vcpu: Thread, server: MailboxServer): Promise<void> {
  await server.stop();
  await vcpu.terminate();
}

for (const when of ["just before stop()", "while stop() is under way"] as const) {
  Deno.test(`an access posted ${when} is answered before stop() resolves`, async () => {
    const { words, handled, server, vcpu, reply } = await rig();
    try {
      server.start(); // the serving loop polls, then waits for a post
      let stopping = when === "while stop() is under way" ? server.stop() : undefined;
      const posted = Atomics.load(words, MailboxWord.POSTED);
      vcpu.postMessage({ port: PORT });
      // Block this thread (the device model's) until the vCPU has posted:
      // the serving loop has not looked at the slot yet. (Looks again every
      // millisecond: the post's notify may go to the loop's waitAsync instead.)
      while (Atomics.load(words, MailboxWord.POSTED) === posted) {
        Atomics.wait(words, MailboxWord.POSTED, posted, 1);
      }
      stopping ??= server.stop();
      await stopping;
      assert.notEqual(
        Atomics.load(words, MailboxWord.COUNT + SlotWord.STATE),
        SlotState.PENDING,
        "the access was handled",
      );
      assert.deepEqual(await answer(reply), { value: VALUE });
      assert.deepEqual(handled, [PORT]);
    } finally {
      await closing(vcpu, server);
    }
  });
}

Deno.test("an access posted after stop() fails with CLOSED, and is served again after start()", async () => {
  const { handled, server, vcpu, reply } = await rig();
  try {
    server.start();
    await server.stop();
    vcpu.postMessage({ port: PORT });
    assert.deepEqual(await answer(reply), { error: "CLOSED" });
    assert.deepEqual(handled, [], "the device model never handled it");
    server.start();
    vcpu.postMessage({ port: PORT + 1 });
    assert.deepEqual(await answer(reply), { value: VALUE });
    assert.deepEqual(handled, [PORT + 1]);
  } finally {
    await closing(vcpu, server);
  }
});
