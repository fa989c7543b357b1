/**
 * A medium change on the vhost-user export reaches the front end: with the
 * back-end channel (protocol feature BACKEND_REQ, SET_BACKEND_REQ_FD) the
 * back end sends VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, after which QEMU
 * re-reads the config (GET_CONFIG, the new capacity) and interrupts its
 * guest; without the channel the change is still made and GET_CONFIG
 * shows it. A front end that sends a bad SET_BACKEND_REQ_FD is refused
 * and served on. The fake front end of these tests speaks for QEMU.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import {
  BackendRequest,
  decodeConfig,
  encodeConfig,
  HeaderFlag,
  ProtocolFeature,
  receiveMessage,
  Request,
} from "../../src/vhost_user/messages.ts";
import { serveVhostUserBlk, type VhostUserBlkServer } from "../../src/vhost_user/server.ts";
import { unixSocketPair } from "../../src/vhost_user/unix_socket.ts";
import { FakeFrontEnd } from "./front_end.ts";

const MiB = 1 << 20;

async function withExport(
  body: (rig: { server: VhostUserBlkServer; image: string; logs: string[] }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vhost-config-change-" });
  const image = `${dir}/disk.img`;
  await Deno.writeFile(image, new Uint8Array(MiB));
  const logs: string[] = [];
  const server = serveVhostUserBlk({
    socketPath: `${dir}/vblk.sock`,
    device: { backend: describeFile(image) },
    log: (message) => logs.push(message),
  });
  try {
    await body({ server, image, logs });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The capacity in the front end's GET_CONFIG, in 512-byte sectors. */
async function capacity(fe: FakeFrontEnd): Promise<bigint> {
  fe.send(
    Request.GET_CONFIG,
    encodeConfig({ offset: 0, size: 8, flags: 0, data: new Uint8Array(8) }),
  );
  const config = decodeConfig((await fe.reply(Request.GET_CONFIG)).payload)!;
  return new DataView(config.data.buffer, config.data.byteOffset).getBigUint64(0, true);
}

/** Grows the image to `bytes` and gives the export the grown medium. */
async function grow(server: VhostUserBlkServer, image: string, bytes: number): Promise<void> {
  await Deno.truncate(image, bytes);
  await server.changeMedium({ ...describeFile(image), size: bytes });
}

Deno.test("vhost-user: a medium change sends BACKEND_CONFIG_CHANGE_MSG on the back-end channel; GET_CONFIG has the new capacity", async () => {
  await withExport(async ({ server, image, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    const [ours, theirs] = unixSocketPair();
    try {
      const { protocol } = await fe.handshake();
      assert.ok(protocol & (1n << BigInt(ProtocolFeature.BACKEND_REQ)), "BACKEND_REQ is offered");
      assert.ok(protocol & (1n << BigInt(ProtocolFeature.REPLY_ACK)));
      assert.equal(await fe.acked(Request.SET_BACKEND_REQ_FD, undefined, [theirs.fd]), 0n);
      theirs.close(); // the back end has its own copy now
      assert.equal(await capacity(fe), BigInt(MiB / 512));

      await grow(server, image, 3 * MiB);
      assert.equal(await capacity(fe), BigInt(3 * MiB / 512), "QEMU re-reads the config");
      await grow(server, image, 4 * MiB);
      assert.equal(await capacity(fe), BigInt(4 * MiB / 512));
      assert.deepEqual(logs, []);

      // QEMU leaves: the back end closes its end of the channel, so what it
      // sent there is read to the end (and nothing waits for what never came).
      fe.close();
      const sent = [];
      for (let m = await receiveMessage(ours); m !== null; m = await receiveMessage(ours)) {
        sent.push(m);
      }
      assert.deepEqual(
        sent.map((m) => [m.request, m.flags & HeaderFlag.NEED_REPLY, m.payload.length]),
        [[BackendRequest.CONFIG_CHANGE_MSG, 0, 0], [BackendRequest.CONFIG_CHANGE_MSG, 0, 0]],
        "one CONFIG_CHANGE_MSG a change, asking no reply (nobody reads one)",
      );
    } finally {
      ours.close();
      fe.close();
    }
  });
});

Deno.test("vhost-user: without a back-end channel the change is made, GET_CONFIG shows it, and the log says the guest was not told", async () => {
  await withExport(async ({ server, image, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      // A QEMU that takes REPLY_ACK and CONFIG but not BACKEND_REQ, and
      // sends SET_BACKEND_REQ_FD anyway, without its socket.
      await fe.handshake(
        (1n << BigInt(ProtocolFeature.REPLY_ACK)) | (1n << BigInt(ProtocolFeature.CONFIG)),
      );
      fe.send(Request.SET_BACKEND_REQ_FD, undefined, { needReply: true });
      assert.notEqual(
        (await fe.reply(Request.SET_BACKEND_REQ_FD)).payload[0],
        0,
        "a SET_BACKEND_REQ_FD without its socket is refused",
      );
      await grow(server, image, 2 * MiB);
      assert.equal(await capacity(fe), BigInt(2 * MiB / 512));
      assert.ok(
        logs.some((line) => /gave no back-end channel \(BACKEND_REQ\)/.test(line)),
        logs.join("\n"),
      );
    } finally {
      fe.close();
    }
  });
});
