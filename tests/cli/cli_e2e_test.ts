/**
 * The command line end to end, as a user runs it: real images made by real
 * tools, the real `deno run mod.ts` process, the built-in guest in its vCPU
 * Worker.
 */

import assert from "node:assert/strict";
import { ioUringUnavailable } from "../../src/io/io_uring/sys.ts";
import { needsTools } from "../helpers/skip.ts";

const TOOLS = needsTools("mkfs.ext4", "blkid");

const mod = new URL("../../cli.ts", import.meta.url).pathname;

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", mod, ...args] })
    .output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function tool(command: string, ...args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args }).output();
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
  return new TextDecoder().decode(output.stdout);
}

Deno.test("an image made by mkfs.ext4 -L is reported as ext4 with that label and blkid's UUID", {
  ignore: TOOLS.ignore,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = `${dir}/test.img`;
    await tool("dd", "if=/dev/zero", `of=${image}`, "bs=1M", "count=32", "status=none");
    await tool("mkfs.ext4", "-q", "-L", "walkthrough", image);
    const blkid = Object.fromEntries(
      (await tool("blkid", "-p", "-o", "export", image)).trim().split("\n").map((line) =>
        line.split("=", 2)
      ),
    );
    const { code, stdout, stderr } = await run("-s", `9,virtio-blk,${image}`, "--json");
    assert.equal(code, 0, stderr);
    const [disk] = JSON.parse(stdout).blockdevices;
    assert.equal(disk.name, "vda");
    assert.equal(disk.fstype, blkid.TYPE);
    assert.equal(disk.label, "walkthrough");
    assert.equal(disk.uuid, blkid.UUID);
    const table = await run("-s", `9,virtio-blk,${image}`);
    assert.match(table.stdout, new RegExp(`vda .* ext4 LABEL="walkthrough" UUID=${blkid.UUID}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two slots come out as vda, vdb in slot order whatever the order on the command line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/small.img`, new Uint8Array(1 << 20));
    await Deno.writeFile(`${dir}/large.img`, new Uint8Array(3 << 20));
    const { code, stdout, stderr } = await run(
      "-s",
      `12,virtio-blk,${dir}/small.img,ro`,
      "-s",
      `7,virtio-blk,${dir}/large.img,writeback`,
      "--json",
    );
    assert.equal(code, 0, stderr);
    const disks = JSON.parse(stdout).blockdevices.map((
      d: Record<string, unknown>,
    ) => [d.name, d.slot, d.size, d.ro, d.cache]);
    assert.deepEqual(disks, [
      ["vda", "7", 3 << 20, false, "write-back"],
      ["vdb", "12", 1 << 20, true, "write-through"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fio's --output-format=json and =normal are --json and the table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.img`, new Uint8Array(1 << 20));
    const slot = ["-s", `9,virtio-blk,${dir}/a.img,serial=two words`];
    const json = await run(...slot, "--json");
    const fioJson = await run(...slot, "--output-format=json");
    const table = await run(...slot);
    const fioNormal = await run(...slot, "--output-format", "normal");
    assert.deepEqual([json.code, fioJson.code, table.code, fioNormal.code], [0, 0, 0, 0]);
    assert.equal(fioJson.stdout, json.stdout);
    assert.equal(fioNormal.stdout, table.stdout);
    assert.equal(JSON.parse(json.stdout).blockdevices[0].serial, "two words");
    assert.match(table.stdout, /^vda +9 +1M .* two\\x20words /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with no -s the guest runs on a temporary image, says so, and removes it", async () => {
  const { code, stdout, stderr } = await run();
  assert.equal(code, 0, stderr);
  const image = /using a temporary 64 MiB image (\S+) \(removed on exit\)/.exec(stderr)?.[1];
  assert.ok(image, stderr);
  assert.match(stdout, /^vda +9 +64M /m);
  await assert.rejects(Deno.stat(image!), Deno.errors.NotFound);
});

Deno.test("a verified load leaves the image with exactly the bytes it wrote (checked from the host)", async () => {
  const { expectedBlock } = await import("../../src/guest/jobs/verify.ts");
  const dir = await Deno.makeTempDir();
  try {
    const image = `${dir}/load.img`;
    await Deno.writeFile(image, new Uint8Array(8 << 20));
    const { code, stdout, stderr } = await run(
      "-s",
      `9,virtio-blk,${image},writeback`,
      "--job",
      "load",
      "--rw=randwrite",
      "--bs=64k",
      "--iodepth=16",
      "--verify=crc32c",
      "--seed=3",
      "--json",
    );
    assert.equal(code, 0, stderr);
    const [job] = JSON.parse(stdout).jobs;
    assert.equal(job.verify.mismatches, 0);
    assert.equal(job.write.total_ios, 128);
    const bytes = await Deno.readFile(image);
    for (let address = 0; address < bytes.length; address += 65536) {
      assert.deepEqual(
        bytes.subarray(address, address + 65536),
        expectedBlock(address, 3, 1, 65536),
        `block at ${address}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines from an ACRN launch script: the host bridge is ours, other types get one note each", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.img`, new Uint8Array(2 << 20));
    await Deno.writeFile(`${dir}/b.img`, new Uint8Array(1 << 20));
    const { code, stdout, stderr } = await run(
      "-s",
      "0:0,hostbridge",
      "-s",
      "1:0,lpc",
      "-s",
      "5,virtio-console,@stdio:stdio_port",
      "-s",
      `3,virtio-blk,b,${dir}/a.img`,
      "-s",
      `3:1,virtio-blk,${dir}/b.img,ro`,
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(stderr.trimEnd().split("\n"), [
      "virtio-blk-dm: -s 1:0,lpc: lpc is not emulated here (only virtio-blk is): slot 1:0 stays empty",
      "virtio-blk-dm: -s 5,virtio-console,@stdio:stdio_port: virtio-console is not emulated here " +
      "(only virtio-blk is): slot 5:0 stays empty",
    ]);
    // Function 1 of slot 3 is found: function 0 is there and multi-function.
    assert.match(stdout, /^vda +3 +2M /m);
    assert.match(stdout, /^vdb +3:1 +1M +1 /m);

    // With no virtio-blk at all, the temporary image goes to a slot left free.
    const only = await run("-s", "9,lpc");
    assert.equal(only.code, 0, only.stderr);
    assert.match(only.stderr, /no virtio-blk -s given: using a temporary 64 MiB image/);
    assert.match(only.stdout, /^vda +1 +64M /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-m 4G, the largest guest memory, boots and runs a verified load", async () => {
  const { code, stdout, stderr } = await run(
    "-m",
    "4G",
    "--job",
    "load",
    "--rw=randwrite",
    "--size=1M",
    "--iodepth=8",
    "--verify=crc32c",
    "--json",
  );
  assert.equal(code, 0, stderr);
  const [job] = JSON.parse(stdout).jobs;
  assert.equal(job.write.total_ios, 256);
  assert.equal(job.verify.mismatches, 0);
});

Deno.test("ro and range= hold through the whole stack under a load", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const original = new Uint8Array(4 << 20).map((_, i) => (i * 31) & 0xff);
    await Deno.writeFile(`${dir}/ro.img`, original);
    await Deno.writeFile(`${dir}/window.img`, original);
    const ro = await run(
      "-s",
      `9,virtio-blk,${dir}/ro.img,ro`,
      "--job",
      "load",
      "--rw=write",
      "--bs=64k",
      "--continue_on_error",
      "--json",
    );
    assert.equal(ro.code, 1, "failed writes make the load fail");
    assert.equal(JSON.parse(ro.stdout).jobs[0].write.errors, 64);
    assert.deepEqual(await Deno.readFile(`${dir}/ro.img`), original);

    // The window is sectors [2048, 4096): bytes [1 MiB, 2 MiB).
    const windowed = await run(
      "-s",
      `9,virtio-blk,${dir}/window.img,range=2048/2048`,
      "--job",
      "load",
      "--rw=write",
      "--bs=64k",
      "--output-format=json", // fio's spelling of --json
    );
    assert.equal(windowed.code, 0, windowed.stderr);
    assert.equal(JSON.parse(windowed.stdout).jobs[0].write.total_ios, 16);
    const after = await Deno.readFile(`${dir}/window.img`);
    assert.deepEqual(after.subarray(0, 1 << 20), original.subarray(0, 1 << 20));
    assert.deepEqual(after.subarray(2 << 20), original.subarray(2 << 20));
    assert.notDeepEqual(after.subarray(1 << 20, 2 << 20), original.subarray(1 << 20, 2 << 20));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--iothreads 2: two disks share two I/O threads (io_uring where there is one), and verified loads pass on both", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["a", "b"]) {
      const file = await Deno.open(`${dir}/${name}.img`, { create: true, write: true });
      await file.truncate(32 << 20);
      file.close();
    }
    const aio = ioUringUnavailable() === undefined ? ",aio=io_uring" : "";
    for (const disk of ["vda", "vdb"]) {
      const { code, stdout, stderr } = await run(
        "--iothreads",
        "2",
        "-s",
        `9,virtio-blk,${dir}/a.img${aio},writeback`,
        "-s",
        `10,virtio-blk,${dir}/b.img,writeback`,
        "--job",
        "load",
        "--disk",
        disk,
        "--rw=randwrite",
        "--bs=4k",
        "--iodepth=16",
        "--size=4M",
        "--verify=crc32c",
        "--json",
      );
      assert.equal(code, 0, stderr);
      const [job] = JSON.parse(stdout).jobs;
      assert.equal(job.write.total_ios, 1024);
      assert.equal(job.verify.mismatches, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mq=2 --cpus 2: lsblk shows two queues, and a verified load runs on both vCPUs, each its own queue", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await Deno.open(`${dir}/a.img`, { create: true, write: true });
    await file.truncate(8 << 20);
    file.close();
    const slot = `9,virtio-blk,mq=2,${dir}/a.img`;
    const table = await run("--cpus", "2", "-s", slot);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME +SLOT +SIZE +RO +CACHE +QUEUES /);
    assert.match(table.stdout, /^vda +9 +8M +0 +write-through +2 /m);
    const { code, stdout, stderr } = await run(
      "-c",
      "2",
      "-s",
      slot,
      "--job",
      "load",
      "--rw=randwrite",
      "--bs=4k",
      "--iodepth=8",
      "--size=4M",
      "--verify=crc32c",
    );
    assert.equal(code, 0, stderr);
    assert.match(
      stdout,
      /spread over 2 vCPUs, each on its own queue: iodepth 4\+4, requests 512\+512/,
    );
    assert.match(stdout, /verify: 1024 blocks checked, 0 mismatches/);
    // ACRN caps mq at the vCPU count, and says so here.
    const capped = await run("-s", `9,virtio-blk,${dir}/a.img,mq=4`, "--cpus", "2");
    assert.equal(capped.code, 0, capped.stderr);
    assert.match(capped.stderr, /mq=4 capped at 2, the vCPU count \(--cpus\), as ACRN does/);
    assert.match(capped.stdout, /^vda +9 +8M +0 +write-through +2 /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
