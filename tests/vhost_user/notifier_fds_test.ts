/**
 * The notifier fds a front-end hands over (SET_VRING_CALL / SET_VRING_ERR)
 * are the front-end's files: whatever their flags, signalling them must
 * never stall the back end. The back end runs as a child process (the CLI),
 * so that a back end that does stall fails the test instead of hanging it.
 */

import assert from "node:assert/strict";
import { RequestType } from "../../src/blk/spec.ts";
import { createEventFd, signalEventFd } from "../../src/vhost_user/eventfd.ts";
import { closeFd, libc, Sys } from "../../src/vhost_user/libc.ts";
import { encodeU64, encodeVringState, Request } from "../../src/vhost_user/messages.ts";
import { RingFeature } from "../../src/virtio/spec.ts";
import { DATA_BUFFER, FakeFrontEnd, QemuFeatures } from "./front_end.ts";

const mod = new URL("../../mod.ts", import.meta.url).pathname;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `body` with a front-end connected and handshaken to the CLI back end
 * in a child process (a stalled back end fails the test instead of hanging it).
 */
async function withBackEnd(body: (fe: FakeFrontEnd) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vhost-fds-" });
  const image = `${dir}/disk.img`;
  const socket = `${dir}/vblk.sock`;
  await Deno.writeFile(image, new Uint8Array(1 << 20));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", mod, "--vhost-user", socket, "-s", `9,virtio-blk,${image}`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let fe: FakeFrontEnd | undefined;
  try {
    for (let i = 0; i < 300 && !(await Deno.lstat(socket).then(() => true, () => false)); i++) {
      await sleep(20);
    }
    fe = FakeFrontEnd.connect(socket);
    await fe.handshake();
    await body(fe);
  } finally {
    fe?.close();
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("vhost-user: a call fd whose write would block (a saturated blocking eventfd) does not stall the back end", async () => {
  // A blocking eventfd at its largest count: one more write blocks (eventfd(2)).
  const saturated = createEventFd();
  const largest = new Uint8Array(8);
  new DataView(largest.buffer).setBigUint64(0, 0xffff_ffff_ffff_fffen, true);
  assert.ok(signalEventFd(saturated, largest));
  try {
    await withBackEnd(async (fe) => {
      // Without EVENT_IDX every completion interrupts.
      const features = QemuFeatures.LINUX_MODERN & ~(1n << BigInt(RingFeature.EVENT_IDX));
      await fe.startRing({ features, memory: "add" });
      fe.send(Request.SET_VRING_CALL, encodeU64(0n), { fds: [saturated] });
      fe.post(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      fe.kickRing();
      let used = 0;
      for (let i = 0; i < 250 && used === 0; i++) {
        await sleep(20);
        used += fe.takeUsed().length;
      }
      assert.equal(used, 1, "the request completed");
      // QEMU's ring stop: it must be answered, so no thread may be stuck in that write.
      fe.send(Request.SET_VRING_ENABLE, encodeVringState(0, 0));
      fe.send(Request.GET_VRING_BASE, encodeVringState(0, 0));
      const answered = fe.reply(Request.GET_VRING_BASE).then(() => true, () => false);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<false>((
        resolve,
      ) => (timer = setTimeout(() => resolve(false), 8000)));
      assert.ok(await Promise.race([answered, late]), "GET_VRING_BASE is answered");
      clearTimeout(timer);
    });
  } finally {
    closeFd(saturated);
  }
});

Deno.test("vhost-user: a blocking kick fd is made nonblocking, so a counter emptied by someone else cannot stall the device model", async () => {
  await withBackEnd(async (fe) => {
    await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add", blockingKick: true });
    // The kick fd is one open file shared with the back end: its O_NONBLOCK is shared too.
    fe.post(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
    fe.kickRing();
    for (let i = 0; i < 250 && fe.takeUsed().length === 0; i++) await sleep(20);
    const flags = libc().fcntl(fe.kick, Sys.F_GETFL, 0);
    assert.ok(flags >= 0 && (flags & Sys.O_NONBLOCK) !== 0, `kick fd flags ${flags.toString(8)}`);
  });
});
