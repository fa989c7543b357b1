/**
 * The thread that holds and releases a paused medium
 * (`nbd_medium.ts`, pausable) around a guest's reset. On `{ control, gate, pool }`
 * it pauses the medium and posts `{ paused: true }`; then, blocking only
 * itself, it waits for the guest to start its reset, then until the device
 * model is waiting for the held requests in that reset (the pool's
 * QUIESCING word is set) — or until the guest says its reset returned
 * without that — resumes the medium, and posts `{ resumedWhileResetWaited }`.
 */

import { connect, type Socket } from "node:net";
import { PoolWord } from "../../src/blockif/pool_layout.ts";
import { parentChannel } from "../../src/runtime/thread.ts";
import { ResetGate } from "./reset_gate.ts";

/** Sends one command byte and resolves with the filter's one-byte answer. */
function command(socket: Socket, byte: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once("data", (data) => resolve(String(data)));
    socket.once("error", reject);
    socket.write(byte);
  });
}

const parent = await parentChannel();
parent.onMessage(async (message) => {
  const { control, gate, pool } = message as {
    control: string;
    gate: SharedArrayBuffer;
    pool: SharedArrayBuffer;
  };
  const socket = connect(control);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  if ((await command(socket, "p")) !== "P") throw new Error("the medium did not pause");
  parent.postMessage({ paused: true });
  const gateWords = new Int32Array(gate);
  const poolWords = new Int32Array(pool);
  while (Atomics.load(gateWords, ResetGate.RESETTING) === 0) {
    Atomics.wait(gateWords, ResetGate.RESETTING, 0);
  }
  let quiescing = 0;
  for (;;) {
    quiescing = Atomics.load(poolWords, PoolWord.QUIESCING);
    if (quiescing > 0 || Atomics.load(gateWords, ResetGate.RESET_RETURNED) !== 0) break;
    Atomics.wait(gateWords, ResetGate.RESET_RETURNED, 0, 1); // look again every millisecond
  }
  if ((await command(socket, "r")) !== "R") throw new Error("the medium did not resume");
  socket.end();
  parent.postMessage({ resumedWhileResetWaited: quiescing > 0 });
});
