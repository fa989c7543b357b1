/**
 * The vCPU of `mailbox_stop_test.ts`: for each message `{ port }` the test
 * sends, makes one 1-byte `in` from that port through the mailbox and
 * posts back `{ value }`, or `{ error }` (the error's code) when it failed.
 */

import { PortIo } from "../../src/dm/io_mailbox.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { parentChannel } from "../../src/runtime/thread.ts";

const parent = await parentChannel();
let io: PortIo | undefined;
parent.onMessage((message) => {
  const { mailbox, port } = message as { mailbox?: SharedArrayBuffer; port?: number };
  if (mailbox) {
    io = new PortIo(mailbox, 0);
    parent.postMessage({ started: true });
    return;
  }
  try {
    parent.postMessage({ value: io!.read(port!, 1) });
  } catch (error) {
    parent.postMessage({ error: error instanceof VirtioBlkError ? error.code : String(error) });
  }
});
