/**
 * MBR and GPT detection against the real tools: tables written by sfdisk
 * must read back exactly as `sfdisk --json` (and blkid's PTTYPE/PTUUID)
 * report them, filesystems inside partitions are found, and a damaged GPT
 * falls back to its backup as firmware and sfdisk do.
 */

import assert from "node:assert/strict";
import { GptHeader, probeGpt } from "../../src/guest/probe/gpt.ts";
import { probeMbr } from "../../src/guest/probe/mbr.ts";
import { describeProbe, probeDisk, tableTypeName } from "../../src/guest/probe/probe.ts";
import { sourceFromBytes } from "../../src/guest/probe/byte_source.ts";
import {
  blkid,
  imageSource,
  makeImage,
  mkfsInside,
  run,
  sfdisk,
  sfdiskJson,
  type SfdiskTable,
  TempDir,
} from "./tools.ts";
import { needsTools } from "../helpers/skip.ts";

const TOOLS = needsTools("sfdisk", "fdisk", "blkid", "mkfs.ext4");

const MiB = 1 << 20;

const MBR_SCRIPT = `label: dos
label-id: 0x12345678
size=4M, type=83, bootable
size=2M, type=82
type=5
size=1M, type=83
size=1M, type=8e
`;

const GPT_DISK_GUID = "6a1e3c5b-2d4f-4e6a-8b9c-0d1e2f3a4b5c";
const GPT_SCRIPT = `label: gpt
label-id: ${GPT_DISK_GUID}
size=4M, type=linux, name="root fs"
size=2M, type=swap
size=1M, type=U, name="données"
`;

function partitionNumber(node: string): number {
  return Number(/(\d+)$/.exec(node)![1]);
}

function assertMbrMatches(table: ReturnType<typeof probeMbr>, theirs: SfdiskTable): void {
  assert.equal(table.kind, "mbr", JSON.stringify(table));
  if (table.kind !== "mbr") return;
  assert.equal(theirs.label, "dos");
  assert.equal(table.diskId, theirs.id);
  assert.deepEqual(
    table.partitions.map((p) => ({
      index: p.index,
      start: p.start,
      size: p.size,
      type: p.type,
      bootable: p.bootable,
    })),
    theirs.partitions.map((p) => ({
      index: partitionNumber(p.node),
      start: p.start,
      size: p.size,
      type: parseInt(p.type, 16),
      bootable: p.bootable ?? false,
    })),
  );
}

function assertGptMatches(table: ReturnType<typeof probeGpt>, theirs: SfdiskTable): void {
  assert.equal(table.kind, "gpt", JSON.stringify(table));
  if (table.kind !== "gpt") return;
  assert.equal(theirs.label, "gpt");
  assert.equal(table.diskGuid, theirs.id.toLowerCase());
  assert.equal(table.firstUsableLba, theirs.firstlba);
  assert.equal(table.lastUsableLba, theirs.lastlba);
  assert.equal(table.blockSize, theirs.sectorsize);
  assert.deepEqual(
    table.partitions.map((p) => ({
      index: p.index,
      start: p.firstLba,
      size: p.lastLba - p.firstLba + 1,
      type: p.typeGuid,
      uuid: p.uniqueGuid,
      name: p.name,
    })),
    theirs.partitions.map((p) => ({
      index: partitionNumber(p.node),
      start: p.start,
      size: p.size,
      type: p.type.toLowerCase(),
      uuid: p.uuid!.toLowerCase(),
      name: p.name ?? "",
    })),
  );
}

Deno.test(
  "probe: an MBR with primary, extended and logical partitions reads as sfdisk --json says",
  { ignore: TOOLS.ignore },
  async () => {
    using dir = new TempDir();
    const image = makeImage(dir.file("mbr.img"), 16 * MiB);
    const theirs = await sfdisk(image, MBR_SCRIPT);
    assert.equal(theirs.partitions.length, 5); // 1, 2, 3 (extended), 5, 6
    const table = probeMbr(imageSource(image));
    assertMbrMatches(table, theirs);
    assert.equal(table.kind === "mbr" && table.protective, false);

    const probe = probeDisk(imageSource(image));
    assert.equal(probe.table?.kind, "mbr");
    assert.equal(tableTypeName(probe.table!), (await blkid(image)).PTTYPE);
    assert.equal(
      probe.table!.kind === "mbr" && probe.table!.diskId,
      `0x${(await blkid(image)).PTUUID}`,
    );
    assert.deepEqual(probe.partitions.map((p) => [p.index, p.type, p.typeName]), [
      [1, "83", "Linux"],
      [2, "82", "Linux swap / Solaris"],
      [3, "05", "Extended"],
      [5, "83", "Linux"],
      [6, "8e", "Linux LVM"],
    ]);
    assert.equal(describeProbe(probe), "dos, 5 partitions");
  },
);

Deno.test("probe: a GPT reads as sfdisk --json says: GUIDs, LBAs, UTF-16 names", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const image = makeImage(dir.file("gpt.img"), 16 * MiB);
  const theirs = await sfdisk(image, GPT_SCRIPT);
  const table = probeGpt(imageSource(image));
  assertGptMatches(table, theirs);
  assert.equal(table.kind === "gpt" && table.header, "primary");

  const probe = probeDisk(imageSource(image));
  assert.equal(probe.table?.kind, "gpt");
  const theirIds = await blkid(image);
  assert.equal(tableTypeName(probe.table!), theirIds.PTTYPE);
  assert.equal(probe.table!.kind === "gpt" && probe.table!.diskGuid, theirIds.PTUUID);
  assert.deepEqual(probe.partitions.map((p) => [p.index, p.typeName, p.name]), [
    [1, "Linux filesystem", "root fs"],
    [2, "Linux swap", ""],
    [3, "EFI System", "données"],
  ]);
  assert.deepEqual(probe.notes, []);
});

Deno.test(
  "probe: a GPT on a disk with 4 KiB logical blocks counts LBAs of 4 KiB, as fdisk -b 4096",
  { ignore: TOOLS.ignore },
  async () => {
    using dir = new TempDir();
    const image = makeImage(dir.file("gpt4k.img"), 32 * MiB);
    // sfdisk 2.38 has no --sector-size; fdisk -b does.
    await run("fdisk", ["-b", "4096", image], "g\nn\n1\n\n+4M\nn\n2\n\n+2M\nw\n");
    const listing = await run("fdisk", [
      "-b",
      "4096",
      "-l",
      "-o",
      "Device,Start,Sectors,Type-UUID,UUID",
      image,
    ]);
    const diskGuid = /^Disk identifier: (\S+)$/m.exec(listing)![1].toLowerCase();
    const theirs = listing.split("\n").filter((line) => line.startsWith(image)).map((line) => {
      const [device, start, sectors, type, uuid] = line.split(/\s+/);
      return {
        index: partitionNumber(device),
        start: Number(start),
        size: Number(sectors),
        type: type.toLowerCase(),
        uuid: uuid.toLowerCase(),
      };
    });
    assert.equal(theirs.length, 2);

    const table = probeGpt(imageSource(image, 4096));
    assert.equal(table.kind, "gpt", JSON.stringify(table));
    if (table.kind !== "gpt") return;
    assert.equal(table.diskGuid, diskGuid);
    assert.deepEqual(
      table.partitions.map((p) => ({
        index: p.index,
        start: p.firstLba,
        size: p.lastLba - p.firstLba + 1,
        type: p.typeGuid,
        uuid: p.uniqueGuid,
      })),
      theirs,
    );
    const probe = probeDisk(imageSource(image, 4096));
    assert.deepEqual(probe.partitions.map((p) => [p.offset, p.size]), [[MiB, 4 * MiB], [
      5 * MiB,
      2 * MiB,
    ]]);
    // Read with 512-byte LBAs the header is not where it should be.
    assert.equal(probeGpt(imageSource(image, 512)).kind, "unrecognised");
  },
);

for (
  const [what, damage] of [
    ["header", (bytes: Uint8Array) => (bytes[512 + GptHeader.DISK_GUID] ^= 1)],
    ["entry array", (bytes: Uint8Array) => (bytes[1024 + 56] ^= 1)],
  ] as const
) {
  Deno.test(
    `probe: a GPT whose primary ${what} fails its CRC is read from the backup, as sfdisk does`,
    { ignore: TOOLS.ignore },
    async () => {
      using dir = new TempDir();
      const image = makeImage(dir.file("gpt.img"), 16 * MiB);
      const before = await sfdisk(image, GPT_SCRIPT);
      const bytes = Deno.readFileSync(image);
      damage(bytes);
      Deno.writeFileSync(image, bytes);

      const table = probeGpt(sourceFromBytes(bytes));
      assertGptMatches(table, before);
      assert.equal(table.kind === "gpt" && table.header, "backup");
      assert.match(
        table.kind === "gpt" ? table.notes[0] : "",
        new RegExp(`^primary GPT header unusable \\(.*CRC mismatch.*\\); using the backup$`),
      );
      assertGptMatches(table, await sfdiskJson(image));
    },
  );
}

Deno.test("probe: a protective MBR without any valid GPT is a PMBR, as blkid says", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const image = makeImage(dir.file("gpt.img"), 16 * MiB);
  await sfdisk(image, GPT_SCRIPT);
  const bytes = Deno.readFileSync(image);
  bytes[512] ^= 0xff; // primary signature
  bytes[bytes.length - 512] ^= 0xff; // backup signature
  Deno.writeFileSync(image, bytes);

  const probe = probeDisk(sourceFromBytes(bytes));
  assert.equal(probe.table?.kind, "mbr");
  assert.equal(tableTypeName(probe.table!), "PMBR");
  assert.equal((await blkid(image)).PTTYPE, "PMBR");
  assert.deepEqual(probe.partitions.map((p) => p.type), ["ee"]);
  assert.match(probe.notes[0], /^protective MBR but no valid GPT/);
});

Deno.test("probe: filesystems inside partitions are found, as blkid finds them at those offsets", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const gpt = makeImage(dir.file("gpt.img"), 16 * MiB);
  const gptTable = await sfdisk(gpt, GPT_SCRIPT);
  const root = gptTable.partitions[0];
  await mkfsInside("mkfs.ext4", gpt, root, "rootfs");
  const mbr = makeImage(dir.file("mbr.img"), 16 * MiB);
  const mbrTable = await sfdisk(mbr, MBR_SCRIPT);
  const logical = mbrTable.partitions.find((p) => p.node.endsWith("5"))!;
  await mkfsInside("mkfs.ext2", mbr, logical, "logical5");

  for (
    const [image, start, index, label, type] of [
      [gpt, root.start, 1, "rootfs", "ext4"],
      [mbr, logical.start, 5, "logical5", "ext2"],
    ] as const
  ) {
    const probe = probeDisk(imageSource(image));
    const partition = probe.partitions.find((p) => p.index === index)!;
    assert.equal(partition.offset, start * 512);
    const theirs = await blkid(image, start * 512);
    assert.equal(partition.filesystem?.type, type);
    assert.equal(partition.filesystem?.type, theirs.TYPE);
    assert.equal(partition.filesystem?.label, label);
    assert.equal(partition.filesystem?.uuid, theirs.UUID);
    assert.equal(probe.filesystem, null);
    assert.deepEqual(
      probe.partitions.filter((p) => p.index !== index).map((p) => p.filesystem),
      probe.partitions.filter((p) => p.index !== index).map(() => null),
    );
  }
});

Deno.test("probe: a blank disk has no signature", () => {
  const probe = probeDisk(sourceFromBytes(new Uint8Array(4 * MiB)));
  assert.deepEqual(probe, { table: null, filesystem: null, partitions: [], notes: [] });
  assert.equal(describeProbe(probe), "no signature");
});
