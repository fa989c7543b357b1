/**
 * `--json` of the lsblk job loads into what reads util-linux lsblk's JSON:
 * the same images on loop devices, described by the real `lsblk --json
 * --bytes -O` and `blkid -p`, give the same field names, the same JSON types
 * and, where neither depends on the machine, the same values. Fields of our
 * own have names lsblk does not use.
 */

import assert from "node:assert/strict";
import { collectLsblk, lsblkJson, type LsblkJsonDevice } from "../../src/guest/jobs/lsblk.ts";
import {
  LoopDevice,
  loopDevicesUnavailable,
  partitionsUnavailable,
} from "../backend/file_fixtures.ts";
import { harness, MiB } from "../helpers/harness.ts";
import { jsonType } from "../helpers/json_type.ts";
import { needsTools, skipWhen } from "../helpers/skip.ts";
import { blkid, makeImage, mkfsInside, run, sfdisk, TempDir } from "./tools.ts";

const TOOLS = needsTools("lsblk", "blkid", "sfdisk", "mkfs.ext4", "losetup", "partx");
const NO_LOOP = TOOLS.ignore
  ? TOOLS
  : skipWhen("the lsblk JSON comparison", loopDevicesUnavailable());
const NO_PARTITIONS = NO_LOOP.ignore
  ? NO_LOOP
  : skipWhen("the lsblk JSON comparison of partitions", partitionsUnavailable());

/** The fields we add, none of them an lsblk column. */
const OURS = [
  "slot",
  "cache",
  "queues",
  "features",
  "notes",
  "fsblock-size",
  "fsblocks",
  "fsfeatures",
  "children",
];

/** `lsblk --json --bytes -O` of `device`. */
async function realLsblk(device: string): Promise<LsblkJsonDevice> {
  return JSON.parse(await run("lsblk", ["--json", "--bytes", "-O", device])).blockdevices[0];
}

/** Our device object for `image`, read through the driver and the device from a RAM disk. */
async function ourLsblk(image: Uint8Array): Promise<LsblkJsonDevice> {
  const h = harness({ diskBytes: image.length });
  h.medium.set(image);
  const [row] = collectLsblk([{ name: "vda", slot: 9, driver: h.driver }]);
  await h.close();
  return lsblkJson([row]).blockdevices[0];
}

/** Every field we share with lsblk has its name and type; ours are not lsblk's. */
function assertLsblkShape(ours: LsblkJsonDevice, theirs: LsblkJsonDevice, what: string): void {
  for (const [key, value] of Object.entries(ours)) {
    if (OURS.includes(key)) {
      if (key !== "children") assert.ok(!(key in theirs), `${what}: ${key} is an lsblk column`);
      continue;
    }
    assert.ok(key in theirs, `${what}: lsblk has no field ${key}`);
    const expected = jsonType(theirs[key]);
    // lsblk reads some fields from udev, which this machine may lack: then null.
    if (expected !== "null" && value !== null) {
      assert.equal(jsonType(value), expected, `${what}: type of ${key}`);
    }
  }
}

/** A blkid tag as lsblk shows it: its value, or null when blkid sets none. */
function tag(tags: Record<string, string>, name: string): string | null {
  return tags[name] ?? null;
}

async function compare(image: string): Promise<void> {
  const ours = await ourLsblk(Deno.readFileSync(image));
  using loop = new LoopDevice(image);
  const disk = await blkid(loop.path);
  assert.deepEqual(
    [ours.pttype, ours.ptuuid, ours.fstype, ours.fsver, ours.label, ours.uuid],
    ["PTTYPE", "PTUUID", "TYPE", "VERSION", "LABEL", "UUID"].map((name) => tag(disk, name)),
    `${image}: the disk as blkid sees it`,
  );
  const children = ours.children ?? [];
  if (children.length > 0) loop.addPartitions(1);
  const theirs = await realLsblk(loop.path);
  assertLsblkShape(ours, theirs, "disk");
  assert.deepEqual(
    [ours.size, ours.rm, ours.ro, ours["log-sec"], ours["phy-sec"], ours.mountpoints],
    [theirs.size, theirs.rm, theirs.ro, theirs["log-sec"], theirs["phy-sec"], theirs.mountpoints],
  );
  assert.equal("children" in ours, "children" in theirs, "children only when there are some");
  const real = theirs.children ?? [];
  assert.equal(children.length, real.length, "one child for each partition the kernel made");
  for (const [i, child] of children.entries()) {
    const number = Number(/(\d+)$/.exec(child.name)![1]);
    const them = real.find((r) => r.name === `${theirs.name}p${number}`)!;
    assertLsblkShape(child, them, child.name);
    assert.deepEqual(
      [child.type, child.size, child.start, child.rm, child.ro, child.pkname],
      [them.type, them.size, them.start, them.rm, them.ro, "vda"],
      `${child.name}: as the kernel has it`,
    );
    const part = await blkid(loop.partition(number));
    assert.deepEqual(
      [
        child.pttype,
        child.ptuuid,
        child.parttype,
        child.partuuid,
        child.partlabel,
        child.partflags,
        child.start,
        child.fstype,
        child.fsver,
        child.label,
        child.uuid,
      ],
      [
        ours.pttype,
        ours.ptuuid,
        tag(part, "PART_ENTRY_TYPE"),
        tag(part, "PART_ENTRY_UUID"),
        tag(part, "PART_ENTRY_NAME"),
        tag(part, "PART_ENTRY_FLAGS"),
        Number(part.PART_ENTRY_OFFSET),
        tag(part, "TYPE"),
        tag(part, "VERSION"),
        tag(part, "LABEL"),
        tag(part, "UUID"),
      ],
      `${child.name} (${i}): as blkid sees it`,
    );
  }
}

Deno.test({
  name: "lsblk --json: a GPT disk with named, flagged and formatted partitions",
  ignore: NO_PARTITIONS.ignore,
  fn: async () => {
    using dir = new TempDir();
    const path = makeImage(dir.file("gpt.img"), 32 * MiB);
    const table = await sfdisk(
      path,
      "label: gpt\n" +
        'size=8M, type=linux, name="data"\n' +
        'size=4M, type=swap, attrs="RequiredPartition"\n' +
        "size=4M, type=linux, attrs=LegacyBIOSBootable\n",
    );
    await mkfsInside("mkfs.ext4", path, table.partitions[0], "inner");
    await compare(path);
  },
});

Deno.test({
  name: "lsblk --json: an MBR disk with a bootable, an extended and logical partitions",
  ignore: NO_PARTITIONS.ignore,
  fn: async () => {
    using dir = new TempDir();
    const path = makeImage(dir.file("dos.img"), 32 * MiB);
    const table = await sfdisk(
      path,
      "label: dos\nlabel-id: 0x1234abcd\n" +
        `${path}1 : size=8M, type=83, bootable\n` +
        `${path}2 : size=16M, type=5\n` +
        `${path}5 : size=4M, type=83\n` +
        `${path}6 : size=4M, type=82\n`,
    );
    await mkfsInside("mkfs.ext4", path, table.partitions[0], "boot");
    await compare(path);
  },
});

Deno.test({
  name: "lsblk --json: a whole-disk filesystem, no partition table",
  ignore: NO_LOOP.ignore,
  fn: async () => {
    using dir = new TempDir();
    const path = makeImage(dir.file("whole.img"), 16 * MiB);
    await run("mkfs.ext4", ["-q", "-F", "-L", "whole", path]);
    await compare(path);
  },
});
