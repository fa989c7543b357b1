/**
 * ext2/3/4 detection against the real tools: each image is made by mke2fs
 * with a known label and UUID, and the probe must agree with what
 * `blkid -p` and `dumpe2fs -h` say about the same bytes.
 */

import assert from "node:assert/strict";
import { probeExt, Superblock, SUPERBLOCK_OFFSET } from "../../src/guest/probe/ext.ts";
import { sourceFromBytes } from "../../src/guest/probe/byte_source.ts";
import { blkid, blkidValue, dumpe2fs, imageSource, makeImage, run, TempDir } from "./tools.ts";
import { needsTools } from "../helpers/skip.ts";

const TOOLS = needsTools(
  "mkfs.ext4",
  "mkfs.ext3",
  "mkfs.ext2",
  "blkid",
  "dumpe2fs",
  "debugfs",
  "e2fsck",
);

interface Case {
  name: string;
  mkfs: string;
  args: string[];
  megabytes: number;
  label: string;
  uuid: string;
  type: string;
  blockSize: number;
}

const CASES: Case[] = [
  {
    name: "ext2 with 1 KiB blocks",
    mkfs: "mkfs.ext2",
    args: ["-b", "1024"],
    megabytes: 8,
    label: "boot",
    uuid: "11111111-2222-4333-8444-555555555555",
    type: "ext2",
    blockSize: 1024,
  },
  {
    name: "ext3 with 4 KiB blocks",
    mkfs: "mkfs.ext3",
    args: ["-b", "4096"],
    megabytes: 16,
    label: "journal3",
    uuid: "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0",
    type: "ext3",
    blockSize: 4096,
  },
  {
    name: "ext4 with defaults (metadata_csum, 64bit)",
    mkfs: "mkfs.ext4",
    args: [],
    megabytes: 32,
    label: "data",
    uuid: "a3b2c1d0-e4f5-4a6b-9c8d-7e6f5a4b3c2d",
    type: "ext4",
    blockSize: 1024, // mke2fs.conf's "small" type below 512 MiB
  },
  {
    name: "ext4 without metadata_csum and 64bit, 1 KiB blocks, 16-byte label",
    mkfs: "mkfs.ext4",
    args: ["-b", "1024", "-O", "^metadata_csum,^64bit"],
    megabytes: 8,
    label: "sixteen-chars-ok",
    uuid: "deadbeef-0000-4000-8000-0123456789ab",
    type: "ext4",
    blockSize: 1024,
  },
  {
    name: "ext4 without a label",
    mkfs: "mkfs.ext4",
    args: [],
    megabytes: 8,
    label: "",
    uuid: "01234567-89ab-4cde-8f01-23456789abcd",
    type: "ext4",
    blockSize: 1024,
  },
  {
    name: "ext4 with a UTF-8 label",
    mkfs: "mkfs.ext4",
    args: [],
    megabytes: 8,
    label: "données",
    uuid: "fedcba98-7654-4321-8fed-cba987654321",
    type: "ext4",
    blockSize: 1024,
  },
  {
    name: "ext4 with the test_fs flag (blkid's ext4dev)",
    mkfs: "mkfs.ext4",
    args: ["-E", "test_fs"],
    megabytes: 8,
    label: "devel",
    uuid: "12345678-1234-4234-8234-123456789012",
    type: "ext4dev",
    blockSize: 1024,
  },
  {
    name: "an external journal device (jbd)",
    mkfs: "mke2fs",
    args: ["-O", "journal_dev", "-b", "4096"],
    megabytes: 8,
    label: "journal",
    uuid: "99999999-8888-4777-8666-555555555555",
    type: "jbd",
    blockSize: 4096,
  },
];

/** blkid keys and the probe's matching values (LABEL is compared raw, below). */
const BLKID_FIELDS = ["TYPE", "UUID", "BLOCK_SIZE", "VERSION", "SEC_TYPE"] as const;

for (const c of CASES) {
  Deno.test(`probe: ${c.name} is ${c.type} with its label and UUID, as blkid and dumpe2fs say`, {
    ignore: TOOLS.ignore,
  }, async () => {
    using dir = new TempDir();
    const image = makeImage(dir.file("fs.img"), c.megabytes << 20);
    await run(c.mkfs, ["-q", "-F", ...c.args, "-L", c.label, "-U", c.uuid, image]);

    const fs = probeExt(imageSource(image));
    assert.equal(fs.kind, "ext", JSON.stringify(fs));
    if (fs.kind !== "ext") return;
    assert.equal(fs.type, c.type);
    assert.equal(fs.label, c.label);
    assert.equal(fs.uuid, c.uuid);
    assert.equal(fs.blockSize, c.blockSize);

    const ours: Record<(typeof BLKID_FIELDS)[number], string | undefined> = {
      TYPE: fs.type,
      UUID: fs.uuid,
      BLOCK_SIZE: String(fs.blockSize),
      VERSION: fs.version,
      SEC_TYPE: fs.secondaryType,
    };
    const theirs = await blkid(image);
    assert.equal(theirs.TYPE, c.type);
    for (const key of BLKID_FIELDS) {
      if (theirs[key] !== undefined || key === "SEC_TYPE") {
        assert.equal(ours[key], theirs[key], `blkid ${key}`);
      }
    }

    assert.equal(fs.label === "" ? undefined : fs.label, await blkidValue(image, "LABEL"));
    assert.equal(fs.checksum, fs.features.includes("metadata_csum") ? "ok" : "none");

    const header = await dumpe2fs(image);
    assert.equal(header["Filesystem UUID"], fs.uuid);
    assert.equal(header["Filesystem volume name"], fs.label === "" ? "<none>" : fs.label);
    assert.equal(Number(header["Block size"]), fs.blockSize);
    assert.equal(Number(header["Block count"]), fs.blocksCount);
    assert.equal(fs.size, fs.blocksCount * fs.blockSize);
    assert.deepEqual(fs.features, header["Filesystem features"].split(/\s+/));
  });
}

Deno.test(
  "probe: a metadata_csum superblock whose checksum no longer matches is flagged as damaged",
  { ignore: TOOLS.ignore },
  async () => {
    using dir = new TempDir();
    const image = makeImage(dir.file("fs.img"), 8 << 20);
    await run("mkfs.ext4", ["-q", "-F", "-L", "intact", image]);
    const bytes = Deno.readFileSync(image);
    bytes[SUPERBLOCK_OFFSET + Superblock.VOLUME_NAME] ^= 0x20; // "intact" -> "Intact"
    Deno.writeFileSync(image, bytes);

    const fs = probeExt(sourceFromBytes(bytes));
    assert.equal(fs.kind, "ext");
    if (fs.kind !== "ext") return;
    assert.equal(fs.checksum, "bad");
    assert.deepEqual(fs.notes, ["superblock checksum mismatch: the superblock is damaged"]);
    // e2fsprogs sees the damage too; blkid 2.38 reports the filesystem regardless.
    const check = await new Deno.Command("dumpe2fs", { args: ["-h", image], stderr: "piped" })
      .output();
    assert.match(new TextDecoder().decode(check.stderr), /Superblock checksum does not match/);
    assert.equal((await blkid(image)).TYPE, "ext4");
  },
);

Deno.test("probe: without metadata_csum the same edit is just a new label", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const image = makeImage(dir.file("fs.img"), 8 << 20);
  await run("mkfs.ext4", ["-q", "-F", "-O", "^metadata_csum", "-L", "intact", image]);
  const bytes = Deno.readFileSync(image);
  bytes[SUPERBLOCK_OFFSET + Superblock.VOLUME_NAME] ^= 0x20;
  Deno.writeFileSync(image, bytes);

  const fs = probeExt(sourceFromBytes(bytes));
  assert.equal(fs.kind === "ext" && fs.label, "Intact");
  assert.equal((await blkid(image)).LABEL, "Intact");
});

Deno.test(
  "probe: a zeroed magic number means no ext filesystem",
  { ignore: TOOLS.ignore },
  async () => {
    using dir = new TempDir();
    const image = makeImage(dir.file("fs.img"), 8 << 20);
    await run("mkfs.ext2", ["-q", "-F", image]);
    const bytes = Deno.readFileSync(image);
    bytes.fill(0, SUPERBLOCK_OFFSET + Superblock.MAGIC, SUPERBLOCK_OFFSET + Superblock.MAGIC + 2);
    assert.deepEqual(probeExt(sourceFromBytes(bytes)), {
      kind: "unrecognised",
      reason: "no ext magic",
    });
  },
);

Deno.test("probe: a filesystem bigger than its device is reported with a note", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const image = makeImage(dir.file("fs.img"), 8 << 20);
  await run("mkfs.ext4", ["-q", "-F", "-L", "cut", image]);
  const truncated = Deno.readFileSync(image).subarray(0, 4 << 20);
  const fs = probeExt(sourceFromBytes(truncated));
  assert.equal(fs.kind, "ext");
  if (fs.kind !== "ext") return;
  assert.equal(fs.label, "cut");
  assert.deepEqual(fs.notes, [`filesystem (${8 << 20} bytes) is larger than its device`]);
});
