/**
 * Online resize of a real Linux guest's disk over QMP: the command line
 * serves a file over vhost-user-blk with QEMU's `-qmp unix:…` socket, QEMU
 * boots the test guest on it, and while the guest runs `block_resize`
 * shrinks and then grows the disk. The back end tells QEMU with
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, QEMU raises the configuration-change
 * interrupt, and the guest's virtio_blk driver re-reads the capacity: the
 * guest's `/sys/block/vda/size` follows without a reboot, its new last
 * sector is readable and writable and nothing past it is. Legacy and modern
 * virtio-PCI (QEMU signals a legacy guest's configuration change with ISR
 * bit 1). Skipped, with the programs named, where QEMU or the guest's
 * programs are missing.
 */

import assert from "node:assert/strict";
import { bootGuest, GUEST_TOOLS, result } from "../../scripts/guest/run_guest.ts";
import { QmpClient } from "../helpers/qmp_client.ts";
import { needsTools } from "../helpers/skip.ts";

const TOOLS = needsTools(...GUEST_TOOLS);
const MiB = 1 << 20;
const cli = new URL("../../cli.ts", import.meta.url).pathname;

/** The sizes block_resize gives the disk, in order, after it starts at `START`. */
const START = 64 * MiB;
const STEPS = [48 * MiB, 96 * MiB];

for (const legacy of [false, true]) {
  Deno.test({
    name: `guest (${legacy ? "legacy" : "modern"}): block_resize over QMP reaches the running ` +
      "guest: /sys/block/vda/size follows a shrink and a grow without a reboot",
    ignore: TOOLS.ignore,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "guest-resize-" });
      const image = `${dir}/disk.img`;
      const socket = `${dir}/vblk.sock`;
      const qmpPath = `${dir}/qmp.sock`;
      const file = await Deno.open(image, { create: true, write: true });
      await file.truncate(START);
      file.close();
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          cli,
          "--vhost-user",
          socket,
          "-qmp",
          `unix:${qmpPath},server=on,wait=off`,
          "-s",
          `9,virtio-blk,${image}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let said = "";
      let client: QmpClient | undefined;
      try {
        while (!said.includes("Ctrl-C stops")) {
          const { value, done } = await stderr.read();
          if (done) throw new Error(`the server ended: ${said}`);
          said += value;
        }
        const qmp = client = await QmpClient.connect(qmpPath, { negotiate: true });

        // Each size the guest reports starts the next block_resize; the replies
        // and the file's size after each are kept for the assertions below.
        const replies: unknown[] = [];
        const fileSizes: number[] = [];
        let resizing = Promise.resolve();
        const boot = await bootGuest({
          disks: [`vhost:${socket}`],
          run: ["resize_check.sh"],
          legacy,
          env: { RESIZE_STEPS: String(STEPS.length) },
          onLine: (line) => {
            const step = /^@@RESULT resize_step=(\d+) /.exec(line);
            if (step === null || Number(step[1]) >= STEPS.length) return;
            const size = STEPS[Number(step[1])];
            resizing = resizing.then(async () => {
              replies.push(await qmp.command("block_resize", { device: "virtio0", size }));
              fileSizes.push(Deno.statSync(image).size);
            });
          },
        });
        await resizing;
        assert.equal(boot.rc, 0, boot.output);
        assert.deepEqual(replies, STEPS.map(() => ({ return: {} })));
        assert.deepEqual(fileSizes, STEPS, "the file has each new size");
        const seen = boot.results.filter((r) => "resize_step" in r).map((r) => Number(r.sectors));
        assert.deepEqual(seen, [START, ...STEPS].map((bytes) => bytes / 512), boot.output);
        assert.equal(result(boot, "resize_check").resize_check, "PASS");

        // The guest wrote its last sector after the grow: it is the file's last.
        const bytes = await Deno.readFile(image);
        assert.equal(bytes.length, STEPS.at(-1));
        const tail = new TextDecoder().decode(
          bytes.subarray(bytes.length - 512, bytes.length - 503),
        );
        assert.equal(tail, `resized-${STEPS.length}`);

        const [block] = (await qmp.command("query-block")).return;
        assert.equal(block.inserted.image["virtual-size"], STEPS.at(-1));
        assert.deepEqual(await qmp.command("quit"), { return: {} });
        const status = await child.status;
        for (;;) {
          const { value, done } = await stderr.read();
          if (done) break;
          said += value;
        }
        assert.equal(status.code, 0, said);
        assert.doesNotMatch(said, /refus|error/i, said);
      } finally {
        client?.close();
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await child.stdout.cancel();
        await child.status;
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
