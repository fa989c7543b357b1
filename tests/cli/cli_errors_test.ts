/**
 * Every malformed or impossible command line: exit status 2, one line on
 * stderr naming the problem, and no file created, truncated or modified.
 */

import assert from "node:assert/strict";
import { main } from "../../src/cli/main.ts";
import { isDeno } from "../../src/runtime/is_deno.ts";

interface Case {
  name: string;
  args: (dir: string) => string[];
  message: RegExp;
}

const cases: Case[] = [
  {
    name: "a device type ACRN does not know either",
    args: (d) => ["-s", `9,virtio-nett,${d}/a.img`],
    message: /^virtio-blk-dm: -s 9,virtio-nett,\S+a\.img: unknown device type "virtio-nett" /,
  },
  {
    name: "a host bridge anywhere but 0:0",
    args: () => ["-s", "3,hostbridge"],
    message: /^virtio-blk-dm: -s 3,hostbridge: the host bridge is at 0:0 here$/,
  },
  {
    name: "another device type at 0:0",
    args: () => ["-s", "0:0,lpc"],
    message: /^virtio-blk-dm: -s 0:0,lpc: slot 0:0 holds the host bridge$/,
  },
  {
    name: "a virtio-blk in the slot a device of another type holds (and no note for it)",
    args: (d) => ["-s", "9,lpc", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: -s 9,virtio-blk,\S+a\.img: slot 9:0 is already used by -s 9,lpc$/,
  },
  {
    name: "a function of a slot without function 0",
    args: (d) => ["-s", `9:1,virtio-blk,${d}/a.img`],
    message: new RegExp(
      "^virtio-blk-dm: -s 9:1,virtio-blk,\\S+a\\.img: slot 9 has no function 0 here, and a PCI " +
        "scan looks at no other function of such a slot; use 9:0$",
    ),
  },
  {
    name: "a function of a slot whose function 0 is not emulated",
    args: (d) => ["-s", "9:0,virtio-net,tap0", "-s", `9:1,virtio-blk,${d}/a.img`],
    message: /slot 9 has no function 0 here \(-s 9:0,virtio-net,tap0 is not emulated\), and a/,
  },
  {
    name: "unknown option",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,fast`],
    message: /unknown option "fast"/,
  },
  {
    name: "discard= without all three of its numbers",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard=8:1`],
    message:
      /^virtio-blk-dm: -s \S+: discard "8:1" must be max_discard_sectors:max_discard_seg:discard_sector_alignment$/,
  },
  {
    name: "discard= with an empty field",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard=8::0`],
    message:
      /: discard "8::0" must be max_discard_sectors:max_discard_seg:discard_sector_alignment$/,
  },
  {
    name: "discard= of zero sectors",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard=0:1:0`],
    message: /: max_discard_sectors "0" must be a whole number from 1 to 4294967295$/,
  },
  {
    name: "discard= of more segments than a request may have",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard=8:257:0`],
    message: /: max_discard_seg "257" must be a whole number from 1 to 256$/,
  },
  {
    name: "discard= with a negative alignment",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard=8:1:-1`],
    message: /: discard_sector_alignment "-1" must be a whole number from 0 to 4294967295$/,
  },
  {
    name: "discard= of more sectors than the u32 config field holds",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,discard=4294967296:1:0`],
    message: /: max_discard_sectors "4294967296" must be a whole number from 1 to 4294967295$/,
  },
  {
    name: "no_bst_block given a value",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,no_bst_block=1`],
    message: /no_bst_block takes no value/,
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
    name: "a negative slot",
    args: (d) => ["-s", `-1,virtio-blk,${d}/a.img`],
    message:
      /^virtio-blk-dm: -s -1,virtio-blk,\S+a\.img: slot "-1" must be a whole number from 0 to 31$/,
  },
  {
    name: "slot of the host bridge",
    args: (d) => ["-s", `0,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: -s 0,virtio-blk,\S+a\.img: slot 0:0 holds the host bridge$/,
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
    message: /^virtio-blk-dm: -s 9,virtio-blk,\S+none\.img: backing file \S+ does not exist$/,
  },
  {
    name: "directory",
    args: (d) => ["-s", `9,virtio-blk,${d}`],
    message: /^virtio-blk-dm: -s 9,virtio-blk,\S+: backing file \S+ is a directory$/,
  },
  {
    name: "empty file",
    args: (d) => ["-s", `9,virtio-blk,${d}/empty.img`],
    message: /^virtio-blk-dm: -s 9,virtio-blk,\S+empty\.img: backing file \S+ is empty/,
  },
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
    message:
      /^virtio-blk-dm: -s 9,virtio-blk,\S+a\.img,range=2000\/100: range=2000\/100 .* lies outside/,
  },
  {
    name: "range beyond any number",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,range=0/99999999999999999999`],
    message: new RegExp(
      "^virtio-blk-dm: -s 9,virtio-blk,\\S+a\\.img,range=0/99999999999999999999: " +
        'range "0/99999999999999999999": size 99999999999999999999 is too large$',
    ),
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
    message: /already used by -s 9,virtio-blk,\S+a\.img \(opened writable\); /,
  },
  {
    name: "the same file through a symlink",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,ro`, "-s", `10,virtio-blk,${d}/link.img`],
    message: /already used by -s 9,virtio-blk,\S+a\.img,ro; /,
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
    name: "bad guest memory size, named as typed",
    args: (d) => ["-m", "1k", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: -m 1k: expected a size from 16M to 4G$/,
  },
  {
    name: "bad guest memory size, the long way",
    args: (d) => ["--memory=1k", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: --memory 1k: expected a size from 16M to 4G$/,
  },
  {
    name: "negative guest memory size",
    args: (d) => ["-m", "-5", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: -m -5: expected a size from 16M to 4G$/,
  },
  {
    name: "no shared I/O threads",
    args: (d) => ["--iothreads", "0", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: --iothreads 0: must be a whole number from 1 to 64$/,
  },
  {
    name: "shared I/O threads for a vhost-user device",
    args: (
      d,
    ) => ["--vhost-user", `${d}/s.sock`, "--iothreads", "2", "-s", `9,virtio-blk,${d}/a.img`],
    message:
      /^virtio-blk-dm: --iothreads shares threads among the built-in machine's disks; with --vhost-user give the one device iothread=N in its -s$/,
  },
  {
    name: "no vCPUs",
    args: (d) => ["--cpus", "0", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: --cpus 0: must be a whole number from 1 to 16$/,
  },
  {
    name: "vCPUs that are not a number, spelled -c",
    args: (d) => ["-c", "two", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: -c two: must be a whole number from 1 to 16$/,
  },
  {
    name: "more vCPUs than Workers we start",
    args: (d) => ["--cpus", "17", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: --cpus 17: must be a whole number from 1 to 16$/,
  },
  {
    name: "vCPUs for a vhost-user device (QEMU's guest has its own)",
    args: (d) => ["--vhost-user", `${d}/s.sock`, "--cpus", "2", "-s", `9,virtio-blk,${d}/a.img`],
    message:
      /^virtio-blk-dm: --cpus is for the built-in guest; with --vhost-user the guest is QEMU's$/,
  },
  {
    name: "no request queues",
    args: (d) => ["-s", `9,virtio-blk,mq=0,${d}/a.img`],
    message:
      /^virtio-blk-dm: -s 9,virtio-blk,mq=0,\S+a\.img: mq "0" must be a whole number from 1 to 16$/,
  },
  {
    name: "request queues that are not a number",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,mq=many`],
    message:
      /^virtio-blk-dm: -s 9,virtio-blk,\S+a\.img,mq=many: mq "many" must be a whole number from 1 to 16$/,
  },
  {
    name: "more request queues than a device may have, over vhost-user too",
    args: (d) => ["--vhost-user", `${d}/s.sock`, "-s", `9,virtio-blk,${d}/a.img,mq=17`],
    message: /mq "17" must be a whole number from 1 to 16$/,
  },
  {
    name: "an aio= ACRN does not have",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img,aio=posix`],
    message:
      /^virtio-blk-dm: -s 9,virtio-blk,\S+a\.img,aio=posix: aio must be threads or io_uring, not "posix"$/,
  },
  {
    name: "negative iodepth",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img`, "--job", "load", "--iodepth=-1"],
    message: /^virtio-blk-dm: --iodepth=-1: must be a whole number from 1 to 32768$/,
  },
  {
    name: "negative iodepth as a separate argument",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img`, "--job", "load", "--iodepth", "-1"],
    message: /^virtio-blk-dm: --iodepth=-1: must be a whole number from 1 to 32768$/,
  },
  {
    name: "a zero percentage",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img`, "--job", "load", "--size=0%"],
    message: /^virtio-blk-dm: --size=0%: a percentage must be above 0, at most 100$/,
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
    message: /^virtio-blk-dm: unknown option --bogus \(see --help\)$/,
  },
  {
    name: "an option missing its value",
    args: () => ["-m"],
    message: /^virtio-blk-dm: -m needs a value \(see --help\)$/,
  },
  {
    name: "a flag given a value",
    args: () => ["--json=yes"],
    message: /^virtio-blk-dm: --json takes no value \(got --json=yes\) \(see --help\)$/,
  },
  {
    name: "an argument that belongs to no option",
    args: (d) => ["-s", `9,virtio-blk,${d}/a.img`, "stray"],
    message: /^virtio-blk-dm: unexpected argument "stray": every value follows its option/,
  },
  // Disks on an NBD server: the URI, then the export it names (probed once).
  {
    name: "an NBD URI with a port out of range",
    args: () => ["-s", "9,virtio-blk,nbd://127.0.0.1:99999/disk"],
    message: /^virtio-blk-dm: -s 9,virtio-blk,nbd:\/\/127\.0\.0\.1:99999\/disk: .*port/,
  },
  {
    name: "an NBD URI asking for TLS",
    args: () => ["-s", "9,virtio-blk,nbds://127.0.0.1/disk"],
    message: /nbds:\/\/127\.0\.0\.1\/disk: .*TLS/,
  },
  {
    name: "a Unix-socket NBD URI without its socket",
    args: () => ["-s", "9,virtio-blk,nbd+unix:///disk"],
    message: /nbd\+unix:\/\/\/disk: .*socket/,
  },
  {
    name: "an NBD server that is not there",
    args: (d) => ["-s", `9,virtio-blk,nbd+unix:///disk?socket=${d}/none.sock`],
    message: /none\.sock: cannot connect: .*ENOENT/,
  },
  {
    name: "an option that applies to files only, on an NBD disk",
    args: (d) => ["-s", `9,virtio-blk,nbd+unix:///disk?socket=${d}/none.sock,nocache`],
    message: /option nocache applies to files, not to an NBD export/,
  },
  {
    name: "a QMP socket that is not a Unix socket",
    args: (d) => ["--qmp", "tcp:localhost:4444", "-s", `9,virtio-blk,${d}/a.img`],
    message:
      /^virtio-blk-dm: --qmp tcp:localhost:4444: only a Unix socket is served here: PATH or /,
  },
  {
    name: "QEMU's -qmp without server=on (QEMU would connect out)",
    args: (d) => ["-qmp", `unix:${d}/q.sock`, "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: -qmp unix:\S+q\.sock: without server=on QEMU would connect to a /,
  },
  {
    name: "QEMU's -qmp with a setting it does not take here",
    args: (
      d,
    ) => ["-qmp", `unix:${d}/q.sock,server=on,reconnect=1`, "-s", `9,virtio-blk,${d}/a.img`],
    message: /-qmp unix:\S+q\.sock,server=on,reconnect=1: unknown setting "reconnect" \(server=on /,
  },
  {
    name: "QEMU's -qmp with a boolean that is neither on nor off",
    args: (d) => ["-qmp", `unix:${d}/q.sock,server=on,wait=on=x`, "-s", `9,virtio-blk,${d}/a.img`],
    message: /,wait=on=x: wait=on=x: expected wait=on or wait=off$/,
  },
  {
    name: "a QMP socket path that is a file (it is not replaced)",
    args: (d) => ["--qmp", `${d}/b.img`, "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: --qmp \S+b\.img: socket path \S+b\.img exists and is not a socket; /,
  },
  {
    name: "a QMP socket path in no directory",
    args: (d) => ["--qmp", `${d}/none/q.sock`, "-s", `9,virtio-blk,${d}/a.img`],
    message: /--qmp \S+q\.sock: socket path \S+q\.sock: no directory \S+none$/,
  },
  {
    name: "two QMP sockets",
    args: (
      d,
    ) => [
      "--qmp",
      `${d}/p.sock`,
      "-qmp",
      `unix:${d}/q.sock,server=on`,
      "-s",
      `9,virtio-blk,${d}/a.img`,
    ],
    message: /^virtio-blk-dm: -qmp given 2 times: give one$/,
  },
  {
    name: "a good QMP socket with a bad -s: no socket is made",
    args: (d) => ["--qmp", `${d}/q.sock`, "-s", `9,virtio-blk,${d}/none.img`],
    message: /^virtio-blk-dm: -s 9,virtio-blk,\S+none\.img: backing file \S+ does not exist$/,
  },
  {
    name: "nodisk with range= (a window of a file it does not have)",
    args: () => ["-s", "9,virtio-blk,nodisk,range=0/100"],
    message: /^virtio-blk-dm: -s 9,virtio-blk,nodisk,range=0\/100: range= is a window of a file, /,
  },
  {
    name: "nodisk's options are checked before any medium comes",
    args: () => ["-s", "9,virtio-blk,nodisk,sectorsize=100"],
    message: /nodisk,sectorsize=100: sectorsize: logical block size 100 is not a power of two$/,
  },
  {
    name: "load options with the watch job",
    args: (d) => ["--job", "watch", "--rw=read", "-s", `9,virtio-blk,${d}/a.img`],
    message: /^virtio-blk-dm: load options \(--rw, --bs, --disk, …\) need --job load$/,
  },
  // Refused by the file check where Deno.FsFile does not exist.
  ...(isDeno() ? [] : [{
    name: "io=fsfile on Node",
    args: (d: string) => ["-s", `9,virtio-blk,${d}/a.img,io=fsfile`],
    message: /^virtio-blk-dm: -s 9,virtio-blk,\S+a\.img,io=fsfile: io "fsfile" needs Deno/,
  }]),
];

/** Bytes and mtime of every file in `dir`, and the names of its other entries (a socket, …). */
async function snapshot(dir: string): Promise<Map<string, unknown>> {
  const files = new Map();
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    const info = await Deno.lstat(path);
    files.set(
      entry.name,
      info.isFile
        ? { bytes: await Deno.readFile(path), mtime: info.mtime!.getTime() }
        : { isFile: false },
    );
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
      new URL("../../cli.ts", import.meta.url).pathname,
      "-s",
      "9,virtio-blk,/nonexistent/x.img",
    ],
  }).output();
  assert.equal(output.code, 2);
  assert.equal(new TextDecoder().decode(output.stdout), "");
  assert.equal(
    new TextDecoder().decode(output.stderr),
    "virtio-blk-dm: -s 9,virtio-blk,/nonexistent/x.img: backing file /nonexistent/x.img does not exist\n",
  );
});
