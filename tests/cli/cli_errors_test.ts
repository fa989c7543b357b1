/**
 * Every malformed or impossible command line: exit status 2, one line on
 * stderr naming the problem, and no file created, truncated or modified.
 */

import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";

interface Case {
  name: string;
  args: (dir: string) => string[];
  message: RegExp;
}

const cases: Case[] = [
  {
    name: "unknown emulation",
    args: (d) => ["-s", `9,virtio-net,${d}/a.img`],
    message: /unknown emulation "virtio-net"/,
  },
  {
    name: "unknown option",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,fast`],
    message: /unknown option "fast"/,
  },
  {
    name: "ACRN option this device does not implement",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard`],
    message: /option discard is not supported/,
  },
  {
    name: "option missing its value",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,range=`],
    message: /range needs a value/,
  },
  {
    name: "flag given a value",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,ro=1`],
    message: /ro takes no value/,
  },
  {
    name: "slot is not a number",
    args: (d) => ["-s", `x,virtio-blk,${d}/a.img`],
    message: /bad slot "x"/,
  },
  {
    name: "slot out of range",
    args: (d) => ["-s", `32,virtio-blk,${d}/a.img`],
    message: /slot "32" must be a whole number from 0 to 31/,
  },
  {
    name: "function out of range",
    args: (d) => ["-s", `9:8,virtio-blk,${d}/a.img`],
    message: /function "8"/,
  },
  {
    name: "slot of the host bridge",
    args: (d) => ["-s", `0,virtio-blk,${d}/a.img`],
    message: /slot 0 holds the host bridge/,
  },
  {
    name: "duplicate slot",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img`, "-s", `9,virtio-blk,${d}/b.img`],
    message: /slot 9:0 is already used/,
  },
  {
    name: "missing path",
    args: () => ["-s", "9,virtio-blk"],
    message: /missing backing file path/,
  },
  {
    name: "missing file",
    args: (d) => ["-s", `9,virtio-blk,${d}/none.img`],
    message: /does not exist/,
  },
  { name: "directory", args: (d) => ["-s", `9,virtio-blk,${d}`], message: /is a directory/ },
  { name: "empty file", args: (d) => ["-s", `9,virtio-blk,${d}/empty.img`], message: /is empty/ },
  {
    name: "size not a multiple of 512",
    args: (d) => ["-s", `9,virtio-blk,${d}/odd.img`],
    message: /not a multiple of 512/,
  },
  {
    name: "a qcow2 image (its size no multiple of 512)",
    args: (d) => ["-s", `9,virtio-blk,${d}/disk.qcow2`],
    message:
      /is a qcow2 image; only raw images are served: convert with `qemu-img convert -f qcow2 -O raw \S+\/disk\.qcow2 \S+\/disk\.img`$/,
  },
  {
    name: "a sparse VMDK image (its size whole sectors)",
    args: (d) => ["-s", `9,virtio-blk,${d}/disk.vmdk,ro`],
    message: /is a VMDK image; only raw images are served: convert with `qemu-img convert -f vmdk/,
  },
  {
    name: "range outside the file",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,range=2000/100`],
    message: /range=2000\/100 .* lies outside/,
  },
  {
    name: "range of size 0",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,range=0/0`],
    message: /has size 0/,
  },
  {
    name: "sectorsize below 512",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,sectorsize=256`],
    message: /smaller than 512/,
  },
  {
    name: "sectorsize not a power of two",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,sectorsize=1000`],
    message: /not a power of two/,
  },
  {
    name: "logical sector larger than physical",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,sectorsize=4096/512`],
    message: /larger than the physical/,
  },
  {
    name: "a file opened writable by another slot",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img`, "-s", `10,virtio-blk,${d}/a.img,ro`],
    message: /already used by -s 9:0.*opened writable/,
  },
  {
    name: "the same file through a symlink",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,ro`, "-s", `10,virtio-blk,${d}/link.img`],
    message: /already used by -s 9:0/,
  },
  {
    name: "serial too long",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,serial=${"x".repeat(21)}`],
    message: /at most 20 fit/,
  },
  {
    name: "queue size not a power of two",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,queue_size=48`],
    message: /not a power of two/,
  },
  {
    name: "bad guest memory size",
    args: (d) => ["-m", "1k", "-s", `9,virtio-blk,${d}/a.img`],
    message: /--memory 1k/,
  },
  {
    name: "unknown job",
    args: (d) => ["--job", "dance", "-s", `9,virtio-blk,${d}/a.img`],
    message: /unknown job "dance"/,
  },
  {
    name: "an output format fio has and we do not",
    args: (d) => ["--output-format=terse", "-s", `9,virtio-blk,${d}/a.img`],
    message: /--output-format=terse: expected json or normal$/,
  },
  {
    name: "--json and fio's --output-format=normal together",
    args: (d) => ["--json", "--output-format=normal", "-s", `9,virtio-blk,${d}/a.img`],
    message: /--json contradicts --output-format=normal$/,
  },
  {
    name: "unknown command-line option",
    args: () => ["--bogus"],
    message: /Unknown option '--bogus'/,
  },
];

/** Bytes and mtime of every file in `dir`. */
async function snapshot(dir: string): Promise<Map<string, { bytes: Uint8Array; mtime: number }>> {
  const files = new Map();
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    const info = await Deno.lstat(path);
    if (!info.isFile) continue;
    files.set(entry.name, { bytes: await Deno.readFile(path), mtime: info.mtime!.getTime() });
  }
  return files;
}

Deno.test("bad command lines exit 2 with one line naming the problem, and touch no file", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.img`, new Uint8Array(1 << 20).fill(0x5a));
    await Deno.writeFile(`${dir}/b.img`, new Uint8Array(1 << 20).fill(0xa5));
    await Deno.writeFile(`${dir}/empty.img`, new Uint8Array(0));
    await Deno.writeFile(`${dir}/odd.img`, new Uint8Array(1000));
    // The headers qemu-img writes: "QFI\xfb" version 3; "KDMV" version 1.
    const qcow2 = new Uint8Array(196616);
    qcow2.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]);
    await Deno.writeFile(`${dir}/disk.qcow2`, qcow2);
    const vmdk = new Uint8Array(65536);
    vmdk.set([0x4b, 0x44, 0x4d, 0x56, 1, 0, 0, 0]);
    await Deno.writeFile(`${dir}/disk.vmdk`, vmdk);
    await Deno.symlink(`${dir}/a.img`, `${dir}/link.img`);
    const before = await snapshot(dir);
    for (const c of cases) {
      await t.step(c.name, async () => {
        let stdout = "", stderr = "";
        const status = await main(c.args(dir), {
          stdout: (text) => (stdout += text),
          stderr: (text) => (stderr += text),
        });
        assert.equal(status, 2, `exit status; stderr: ${stderr}`);
        assert.equal(stdout, "");
        const lines = stderr.trimEnd().split("\n");
        assert.equal(lines.length, 1, `one line, got: ${stderr}`);
        assert.match(lines[0], /^virtio-blk-dm: /);
        assert.match(lines[0], c.message);
        assert.deepEqual(await snapshot(dir), before, "a file was created or changed");
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the real process: bad input is one line and exit status 2, without a stack trace", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../mod.ts", import.meta.url).pathname,
      "-s",
      "9,virtio-blk,/nonexistent/x.img",
    ],
  }).output();
  assert.equal(output.code, 2);
  assert.equal(new TextDecoder().decode(output.stdout), "");
  assert.equal(
    new TextDecoder().decode(output.stderr),
    "virtio-blk-dm: backing file /nonexistent/x.img does not exist\n",
  );
});
