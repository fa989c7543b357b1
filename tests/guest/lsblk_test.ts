/**
 * lsblk through the real driver and device: disks holding images made by
 * mkfs/sfdisk/fdisk are described as blkid describes the same bytes, with
 * the device's serial, cache mode, block sizes and negotiated features.
 */

import assert from "node:assert/strict";
import {
  cacheMode,
  collectLsblk,
  collectLsblkRow,
  featureNames,
  formatLsblkTable,
  lsblkJson,
} from "../../src/guest/jobs/lsblk.ts";
import { crc32 } from "../../src/guest/probe/crc32.ts";
import { GptEntry, GptHeader } from "../../src/guest/probe/gpt.ts";
import { harness, type HarnessOptions, MiB } from "../helpers/harness.ts";
import { blkid, makeImage, mkfsInside, run, sfdisk, TempDir } from "./tools.ts";
import { needsTools } from "../helpers/skip.ts";

const TOOLS = needsTools("sfdisk", "fdisk", "blkid", "mkfs.ext4");

/** A harness whose RAM disk holds `image`. */
function diskWith(image: Uint8Array, options: HarnessOptions = {}) {
  const h = harness({ ...options, diskBytes: image.length });
  h.medium.set(image);
  return h;
}

async function ext4Image(dir: TempDir, label: string, uuid: string): Promise<Uint8Array> {
  const path = makeImage(dir.file(`${label}.img`), 16 * MiB);
  await run("mkfs.ext4", ["-q", "-F", "-L", label, "-U", uuid, path]);
  return Deno.readFileSync(path);
}

Deno.test("lsblk: a disk with an ext4 filesystem, its device facts and what blkid says", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const uuid = "5a5a5a5a-1234-4321-8888-0123456789ab";
  const image = await ext4Image(dir, "walk", uuid);
  const theirs = await blkid(dir.file("walk.img"));
  const h = diskWith(image, {
    device: { serial: "VIRTIO-SERIAL-1", writeback: true, physicalBlockSize: 4096 },
  });
  const row = collectLsblkRow({ name: "vda", slot: 9, driver: h.driver });
  assert.deepEqual(
    [row.name, row.slot, row.size, row.readOnly, row.cache, row.logicalBlockSize],
    ["vda", "9", 16 * MiB, false, "write-back", 512],
  );
  assert.equal(row.physicalBlockSize, 4096);
  assert.equal(row.serial, "VIRTIO-SERIAL-1");
  assert.deepEqual(row.features, featureNames(h.driver.info.features));
  for (const name of ["seg_max", "blk_size", "flush", "topology", "config_wce"]) {
    assert.ok(row.features.includes(name), name);
  }
  assert.equal(row.probe.table, null);
  assert.equal(row.probe.filesystem?.type, theirs.TYPE);
  assert.equal(row.probe.filesystem?.label, theirs.LABEL);
  assert.equal(row.probe.filesystem?.uuid, uuid);

  const table = formatLsblkTable([row]).split("\n");
  assert.match(
    table[0],
    /^NAME +SLOT +SIZE +RO +CACHE +QUEUES +LOG-SEC +PHY-SEC +SERIAL +FEATURES +CONTENT$/,
  );
  assert.match(
    table[1],
    new RegExp(
      `^vda +9 +16M +0 +write-back +1 +512 +4096 +VIRTIO-SERIAL-1 +${row.features.join(",")} +` +
        `ext4 LABEL="walk" UUID=${uuid}$`,
    ),
  );
  const fs = row.probe.filesystem!;
  assert.deepEqual(lsblkJson([row]), {
    blockdevices: [{
      name: "vda",
      "maj:min": "254:0",
      rm: false,
      ro: false,
      mountpoints: [null],
      size: 16 * MiB,
      type: "disk",
      kname: "vda",
      path: "/dev/vda",
      "log-sec": 512,
      "phy-sec": 4096,
      serial: "VIRTIO-SERIAL-1",
      pttype: null,
      ptuuid: null,
      fstype: "ext4",
      fsver: theirs.VERSION,
      label: "walk",
      uuid,
      slot: "9",
      cache: "write-back",
      queues: 1,
      features: row.features,
      "fsblock-size": Number(theirs.BLOCK_SIZE),
      fsblocks: (16 * MiB) / Number(theirs.BLOCK_SIZE),
      fsfeatures: fs.features,
      notes: [],
    }],
  });
  assert.deepEqual(JSON.parse(JSON.stringify(lsblkJson([row]))), lsblkJson([row]));
  await h.close();
});

/** Rewrites GPT entry `index`'s name and fixes the primary header's CRCs. */
function renameGptEntry(image: Uint8Array, index: number, name: string): void {
  const view = new DataView(image.buffer);
  const entries = view.getUint32(512 + GptHeader.ENTRIES_LBA, true) * 512;
  const count = view.getUint32(512 + GptHeader.ENTRY_COUNT, true);
  const at = entries + (index - 1) * GptEntry.MIN_SIZE + GptEntry.NAME;
  image.fill(0, at, at + GptEntry.NAME_BYTES);
  for (let i = 0; i < name.length; i++) view.setUint16(at + 2 * i, name.charCodeAt(i), true);
  view.setUint32(512 + GptHeader.ENTRIES_CRC, crc32(image, entries, entries + count * 128), true);
  view.setUint32(512 + GptHeader.HEADER_CRC, 0, true);
  const size = view.getUint32(512 + GptHeader.HEADER_SIZE, true);
  view.setUint32(512 + GptHeader.HEADER_CRC, crc32(image, 512, 512 + size), true);
}

Deno.test(
  "lsblk: partitions are child rows with their filesystems; disk text cannot drive the terminal",
  { ignore: TOOLS.ignore },
  async () => {
    using dir = new TempDir();
    const path = makeImage(dir.file("gpt.img"), 16 * MiB);
    const table = await sfdisk(path, "label: gpt\nsize=6M, type=linux\nsize=2M, type=swap\n");
    const first = table.partitions[0];
    await mkfsInside("mkfs.ext4", path, first, "inner");
    const image = Deno.readFileSync(path);
    renameGptEntry(image, 2, "swap\x1b[2J\x1b]0;pwned\x07");
    const h = diskWith(image, { readOnly: true });
    const rows = collectLsblk([{ name: "vdb", slot: "10:0", driver: h.driver }]);
    assert.equal(rows[0].readOnly, true);
    assert.ok(rows[0].features.includes("ro"));
    assert.deepEqual(rows[0].probe.notes, []);
    const inner = rows[0].probe.partitions[0].filesystem!;
    assert.equal(inner.label, "inner");
    assert.equal(inner.uuid, (await blkid(path, first.start * 512)).UUID);

    const text = formatLsblkTable(rows);
    const controls = [...text].filter((c) => c !== "\n" && (c < " " || c === "\x7f"));
    assert.deepEqual(controls, [], "no control characters reach the terminal");
    const lines = text.split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[1], /^vdb +10:0 +16M +1 .* gpt [0-9a-f-]{36}$/);
    assert.match(
      lines[2],
      new RegExp(`^├─vdb1 +6M +Linux filesystem ext4 LABEL="inner" UUID=${inner.uuid}$`),
    );
    assert.match(lines[3], /^└─vdb2 +2M +Linux swap "swap\\u001b\[2J\\u001b\]0;pwned\\u0007"$/);
    // The CONTENT column starts at the same place on every line.
    const column = lines[0].indexOf("CONTENT");
    assert.ok(lines.slice(1).every((line) => line[column - 1] === " " && line[column] !== " "));

    const [json] = lsblkJson(rows).blockdevices;
    assert.deepEqual(
      json.children!.map((c) => [c.name, c["maj:min"], c.start, c.size, c.fstype, c.partlabel]),
      [
        ["vdb1", "254:17", first.start, 6 * MiB, "ext4", null],
        ["vdb2", "254:18", table.partitions[1].start, 2 * MiB, null, "swap\x1b[2J\x1b]0;pwned\x07"],
      ],
    );
    await h.close();
  },
);

Deno.test("lsblk: a 4 KiB-sector disk with a GPT made by fdisk -b 4096, read in whole blocks", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const path = makeImage(dir.file("gpt4k.img"), 16 * MiB);
  await run("fdisk", ["-b", "4096", path], "g\nn\n1\n\n+4M\nn\n2\n\n+2M\nw\n");
  const h = diskWith(Deno.readFileSync(path), { device: { logicalBlockSize: 4096 } });
  const [row] = collectLsblk([{ name: "vda", slot: 9, driver: h.driver }]);
  assert.equal(row.logicalBlockSize, 4096);
  assert.equal(row.probe.table?.kind, "gpt");
  assert.deepEqual(row.probe.partitions.map((p) => [p.offset, p.size]), [[MiB, 4 * MiB], [
    5 * MiB,
    2 * MiB,
  ]]);
  await h.close();
});

Deno.test("lsblk: several disks keep their order; blank disks say no signature", async () => {
  const a = harness({ diskBytes: 3 * MiB });
  const b = harness({ diskBytes: 512 * 1024 });
  const rows = collectLsblk([
    { name: "vda", slot: 4, driver: a.driver },
    { name: "vdb", slot: 12, driver: b.driver },
  ]);
  const lines = formatLsblkTable(rows).split("\n");
  assert.match(lines[1], /^vda +4 +3M .* no signature$/);
  assert.match(lines[2], /^vdb +12 +512K .* no signature$/);
  await a.close();
  await b.close();
});

Deno.test("lsblk: the cache mode follows the live writeback field", async () => {
  const h = harness();
  assert.equal(cacheMode(h.driver), "write-through");
  h.driver.writeback = true;
  assert.equal(cacheMode(h.driver), "write-back");
  await h.close();
});

Deno.test("lsblk: feature bits by name, unnamed ones by number", () => {
  assert.deepEqual(featureNames((1 << 9) | (1 << 28) | (1 << 3) | (1 << 29)), [
    "bit3",
    "flush",
    "indirect_desc",
    "event_idx",
  ]);
});

Deno.test("lsblk: a serial with spaces stays one column, escaped as udev names it in by-id", async () => {
  const spaced = harness({ device: { serial: "my disk \\ 1" } });
  const plain = harness({ device: { serial: "plain" } });
  const rows = collectLsblk([
    { name: "vda", slot: 9, driver: spaced.driver },
    { name: "vdb", slot: 10, driver: plain.driver },
  ]);
  assert.equal(rows[0].serial, "my disk \\ 1");
  const lines = formatLsblkTable(rows).split("\n");
  // Split on blanks, every line has the header's columns (CONTENT "no signature" is two words).
  const columns = lines[0].split(/ +/).length;
  assert.deepEqual(lines.slice(1).map((line) => line.split(/ +/).length), [
    columns + 1,
    columns + 1,
  ]);
  const serialColumn = lines[0].split(/ +/).indexOf("SERIAL");
  assert.deepEqual(
    lines.slice(1).map((line) => line.split(/ +/)[serialColumn]),
    ["my\\x20disk\\x20\\x5c\\x201", "plain"],
  );
  // The JSON keeps the serial as it is.
  assert.equal(lsblkJson(rows).blockdevices[0].serial, "my disk \\ 1");
  await spaced.close();
  await plain.close();
});
