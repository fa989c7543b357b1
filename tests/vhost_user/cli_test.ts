/**
 * `--vhost-user SOCKET -s …` on the real command line: the process serves
 * the device to a front-end (the fake QEMU of these tests) until SIGINT,
 * then removes its socket and exits 130, as any run a SIGINT ends.
 */

import assert from "node:assert/strict";
import { BlkConfig, BlkFeature } from "../../src/blk/spec.ts";
import { decodeConfig, encodeConfig, Request } from "../../src/vhost_user/messages.ts";
import { FakeFrontEnd } from "./front_end.ts";

const mod = new URL("../../cli.ts", import.meta.url).pathname;

Deno.test("vhost-user CLI: serves one -s device until SIGINT, then removes its socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vhost-cli-" });
  const image = `${dir}/disk.img`;
  const socket = `${dir}/vblk.sock`;
  await Deno.writeFile(image, new Uint8Array(3 << 20));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      mod,
      "--vhost-user",
      socket,
      "-s",
      `9,virtio-blk,${image},ro,serial=cli-disk`,
    ],
    stderr: "piped",
    stdout: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  try {
    while (!said.includes("Ctrl-C stops")) {
      const { value, done } = await stderr.read();
      if (done) throw new Error(`the server ended: ${said}`);
      said += value;
    }
    assert.match(said, new RegExp(`serving ${image} over vhost-user-blk on ${socket}`));
    const fe = FakeFrontEnd.connect(socket);
    try {
      const { features } = await fe.handshake();
      assert.ok(features & (1n << BigInt(BlkFeature.RO)), "ro is offered");
      fe.send(
        Request.GET_CONFIG,
        encodeConfig({
          offset: 0,
          size: BlkConfig.SIZE,
          flags: 0,
          data: new Uint8Array(BlkConfig.SIZE),
        }),
      );
      const config = decodeConfig((await fe.reply(Request.GET_CONFIG)).payload)!;
      assert.equal(
        new DataView(config.data.buffer, config.data.byteOffset).getBigUint64(0, true),
        BigInt((3 << 20) / 512),
      );
    } finally {
      fe.close();
    }
    child.kill("SIGINT");
    const status = await child.status;
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) break;
      said += value;
    }
    assert.equal(status.code, 130, said);
    assert.match(said, /vhost-user server stopped after 1 connection\(s\)/);
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.stdout.cancel();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vhost-user CLI: exactly one -s, and no built-in-guest options", async () => {
  for (
    const [args, message] of [
      [["--vhost-user", "/tmp/never.sock"], /give exactly one -s \(got 0\)/],
      [
        ["--vhost-user", "/tmp/never.sock", "-s", "9,virtio-blk,a", "-s", "10,virtio-blk,b"],
        /got 2/,
      ],
      [
        ["--vhost-user", "/tmp/never.sock", "-s", "9,virtio-blk,a", "--job", "load"],
        /--job is for the built-in guest/,
      ],
    ] as const
  ) {
    const output = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", mod, ...args] })
      .output();
    assert.equal(output.code, 2);
    assert.match(new TextDecoder().decode(output.stderr), message);
  }
});
