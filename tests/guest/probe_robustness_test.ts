/**
 * The probes read whatever a disk holds, so no content may make them throw,
 * loop or read without bound: random bytes, mutated and truncated real
 * images, hostile tables with valid checksums, and failing devices all end
 * in an answer.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ByteSource,
  sourceFromBytes,
  sourceFromSectorReader,
  subSource,
} from "../../src/guest/probe/byte_source.ts";
import { crc32 } from "../../src/guest/probe/crc32.ts";
import { probeExt } from "../../src/guest/probe/ext.ts";
import { GptEntry, GptHeader, probeGpt } from "../../src/guest/probe/gpt.ts";
import { MAX_LOGICAL_PARTITIONS, MbrLayout, probeMbr } from "../../src/guest/probe/mbr.ts";
import { describeProbe, type DiskProbe, probeDisk } from "../../src/guest/probe/probe.ts";
import { makeImage, run, sfdisk, TempDir } from "./tools.ts";
import { needsTools } from "../helpers/skip.ts";

const TOOLS = needsTools("sfdisk", "mkfs.ext4");

const MiB = 1 << 20;

/** Probes and checks the answer is well formed (JSON-able, a string description). */
function probeOk(source: ByteSource): DiskProbe {
  const probe = probeDisk(source);
  assert.equal(typeof describeProbe(probe), "string");
  JSON.stringify(probe);
  return probe;
}

/** Counts reads, so a hostile table cannot make the probe read without bound. */
function counting(source: ByteSource): ByteSource & { reads: number } {
  const counted = {
    size: source.size,
    blockSize: source.blockSize,
    reads: 0,
    read(offset: number, length: number) {
      counted.reads++;
      return source.read(offset, length);
    },
  };
  return counted;
}

Deno.test("robustness: random bytes of any length never make a probe throw", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70_000 }), fc.boolean(), (bytes, big) => {
      probeOk(sourceFromBytes(bytes, big ? 4096 : 512));
    }),
    { numRuns: 200 },
  );
});

Deno.test("robustness: random bytes behind valid signatures never make a probe throw", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4096, maxLength: 4096 }), (bytes) => {
      const disk = new Uint8Array(64 * 1024);
      disk.set(bytes);
      disk[510] = 0x55;
      disk[511] = 0xaa;
      disk.set(new TextEncoder().encode("EFI PART"), 512);
      disk[1024 + 0x38] = 0x53; // ext magic
      disk[1024 + 0x39] = 0xef;
      probeOk(sourceFromBytes(disk));
    }),
    { numRuns: 300 },
  );
});

Deno.test("robustness: mutated and truncated real images never make a probe throw", {
  ignore: TOOLS.ignore,
}, async () => {
  using dir = new TempDir();
  const images: Uint8Array[] = [];
  for (
    const script of ["label: gpt\nsize=1M\nsize=1M\n", "label: dos\nsize=1M\ntype=5\nsize=512K\n"]
  ) {
    const image = makeImage(dir.file("t.img"), 4 * MiB);
    await sfdisk(image, script);
    images.push(Deno.readFileSync(image));
  }
  const fs = makeImage(dir.file("fs.img"), 2 * MiB);
  await run("mkfs.ext4", ["-q", "-F", "-L", "fuzz", fs]);
  images.push(Deno.readFileSync(fs));

  fc.assert(
    fc.property(
      fc.constantFrom(...images.keys()),
      fc.array(fc.tuple(fc.nat(40_000), fc.integer({ min: 0, max: 255 })), { maxLength: 16 }),
      fc.option(fc.nat(images[0].length), { nil: undefined }),
      (which, edits, cut) => {
        const bytes = images[which].slice(0, cut);
        for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
        probeOk(sourceFromBytes(bytes));
      },
    ),
    { numRuns: 400 },
  );
});

/** A small valid GPT image built by hand, with the header CRC recomputed after `edit`. */
function gptImage(edit: (header: DataView) => void): Uint8Array {
  const blocks = 256;
  const disk = new Uint8Array(blocks * 512);
  const view = new DataView(disk.buffer);
  // Protective MBR.
  disk[MbrLayout.ENTRIES + MbrLayout.TYPE] = 0xee;
  view.setUint32(MbrLayout.ENTRIES + MbrLayout.FIRST_LBA, 1, true);
  view.setUint32(MbrLayout.ENTRIES + MbrLayout.SECTORS, blocks - 1, true);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  // One entry: a Linux filesystem at LBAs 40–49.
  const entries = 2 * 512;
  disk.set([
    0xaf,
    0x3d,
    0xc6,
    0x0f,
    0x83,
    0x84,
    0x72,
    0x47,
    0x8e,
    0x79,
    0x3d,
    0x69,
    0xd8,
    0x47,
    0x7d,
    0xe4,
  ], entries + GptEntry.TYPE_GUID);
  view.setUint32(entries + GptEntry.FIRST_LBA, 40, true);
  view.setUint32(entries + GptEntry.LAST_LBA, 49, true);
  const header = new DataView(disk.buffer, 512, 512);
  disk.set(new TextEncoder().encode("EFI PART"), 512);
  header.setUint32(GptHeader.REVISION, 0x10000, true);
  header.setUint32(GptHeader.HEADER_SIZE, GptHeader.MIN_SIZE, true);
  header.setUint32(GptHeader.MY_LBA, 1, true);
  header.setUint32(GptHeader.ALTERNATE_LBA, blocks - 1, true);
  header.setUint32(GptHeader.FIRST_USABLE_LBA, 34, true);
  header.setUint32(GptHeader.LAST_USABLE_LBA, blocks - 34, true);
  header.setUint32(GptHeader.ENTRIES_LBA, 2, true);
  header.setUint32(GptHeader.ENTRY_COUNT, 128, true);
  header.setUint32(GptHeader.ENTRY_SIZE, 128, true);
  header.setUint32(GptHeader.ENTRIES_CRC, crc32(disk, entries, entries + 128 * 128), true);
  edit(header);
  const size = header.getUint32(GptHeader.HEADER_SIZE, true);
  if (size <= 512) {
    header.setUint32(GptHeader.HEADER_CRC, 0, true);
    header.setUint32(GptHeader.HEADER_CRC, crc32(disk, 512, 512 + size), true);
  }
  return disk;
}

Deno.test("robustness: the hand-made GPT is valid, so the hostile variants below test one thing each", () => {
  const table = probeGpt(sourceFromBytes(gptImage(() => {})));
  assert.equal(table.kind, "gpt", JSON.stringify(table));
  assert.deepEqual(
    table.kind === "gpt" && table.partitions.map((p) => [p.typeName, p.firstLba, p.lastLba]),
    [["Linux filesystem", 40, 49]],
  );
});

const HOSTILE_GPT_HEADERS: [string, (h: DataView) => void, RegExp][] = [
  ["a header size below 92", (h) => h.setUint32(GptHeader.HEADER_SIZE, 91, true), /header size 91/],
  [
    "a header size above the block",
    (h) => h.setUint32(GptHeader.HEADER_SIZE, 4096, true),
    /header size/,
  ],
  ["a wrong MyLBA", (h) => h.setUint32(GptHeader.MY_LBA, 7, true), /says it lives at LBA 7/],
  ["a MyLBA beyond 2^53", (h) => h.setUint32(GptHeader.MY_LBA + 4, 0xffffffff, true), /NaN/],
  [
    "a usable range past the disk",
    (h) => h.setUint32(GptHeader.LAST_USABLE_LBA, 1000, true),
    /usable range/,
  ],
  ["an entry size of 0", (h) => h.setUint32(GptHeader.ENTRY_SIZE, 0, true), /entry size 0/],
  ["an entry size of 200", (h) => h.setUint32(GptHeader.ENTRY_SIZE, 200, true), /entry size 200/],
  [
    "four billion entries",
    (h) => h.setUint32(GptHeader.ENTRY_COUNT, 0xffffffff, true),
    /implausibly many/,
  ],
  [
    "entries past the end of the disk",
    (h) => h.setUint32(GptHeader.ENTRIES_LBA, 250, true),
    /cannot be read/,
  ],
  [
    "entries at an LBA beyond 2^53",
    (h) => h.setUint32(GptHeader.ENTRIES_LBA + 4, 0x10000000, true),
    /cannot be read/,
  ],
  ["a wrong entry-array CRC", (h) => h.setUint32(GptHeader.ENTRIES_CRC, 1, true), /array CRC/],
];

for (const [what, edit, reason] of HOSTILE_GPT_HEADERS) {
  Deno.test(`robustness: a GPT header with ${what} (and a valid CRC) is refused`, () => {
    const source = counting(sourceFromBytes(gptImage(edit)));
    const table = probeGpt(source);
    assert.equal(table.kind, "unrecognised");
    assert.match(table.kind === "unrecognised" ? table.reason : "", reason);
    assert.ok(source.reads <= 4, `${source.reads} reads`);
    const probe = probeOk(source);
    assert.equal(probe.table?.kind, "mbr"); // the protective MBR alone
  });
}

Deno.test("robustness: GPT entries with first LBA after last LBA are skipped with a note", () => {
  const disk = gptImage(() => {});
  const view = new DataView(disk.buffer);
  view.setUint32(1024 + GptEntry.FIRST_LBA, 60, true);
  view.setUint32(1024 + GptEntry.LAST_LBA, 50, true);
  // Fix the entry-array and header CRCs so only the entry is wrong.
  const header = new DataView(disk.buffer, 512, 512);
  header.setUint32(GptHeader.ENTRIES_CRC, crc32(disk, 1024, 1024 + 128 * 128), true);
  header.setUint32(GptHeader.HEADER_CRC, 0, true);
  header.setUint32(GptHeader.HEADER_CRC, crc32(disk, 512, 512 + GptHeader.MIN_SIZE), true);
  const table = probeGpt(sourceFromBytes(disk));
  assert.equal(table.kind, "gpt");
  assert.deepEqual(table.kind === "gpt" && table.partitions, []);
  assert.deepEqual(table.kind === "gpt" && table.notes, [
    "entry 1 ignored: first LBA 60 after last LBA 50",
  ]);
});

/** An MBR whose extended partition starts at block 8, with EBRs written by `ebrs`. */
function extendedImage(ebrs: (disk: Uint8Array, view: DataView) => void): Uint8Array {
  const disk = new Uint8Array(2 * MiB);
  const view = new DataView(disk.buffer);
  disk[MbrLayout.ENTRIES + MbrLayout.TYPE] = 0x05;
  view.setUint32(MbrLayout.ENTRIES + MbrLayout.FIRST_LBA, 8, true);
  view.setUint32(MbrLayout.ENTRIES + MbrLayout.SECTORS, 4000, true);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  ebrs(disk, view);
  return disk;
}

function writeEbr(
  disk: Uint8Array,
  view: DataView,
  lba: number,
  logical: [number, number] | null,
  next: number | null,
): void {
  const at = lba * 512;
  if (logical !== null) {
    disk[at + MbrLayout.ENTRIES + MbrLayout.TYPE] = 0x83;
    view.setUint32(at + MbrLayout.ENTRIES + MbrLayout.FIRST_LBA, logical[0], true);
    view.setUint32(at + MbrLayout.ENTRIES + MbrLayout.SECTORS, logical[1], true);
  }
  if (next !== null) {
    const link = at + MbrLayout.ENTRIES + MbrLayout.ENTRY_SIZE;
    disk[link + MbrLayout.TYPE] = 0x05;
    view.setUint32(link + MbrLayout.FIRST_LBA, next, true);
    view.setUint32(link + MbrLayout.SECTORS, 1, true);
  }
  disk[at + 510] = 0x55;
  disk[at + 511] = 0xaa;
}

Deno.test("robustness: an EBR chain that loops back ends with a note", () => {
  const disk = extendedImage((d, v) => {
    writeEbr(d, v, 8, [1, 10], 20); // next EBR at 8 + 20
    writeEbr(d, v, 28, [1, 10], 0); // links back to the first EBR
  });
  const table = probeMbr(sourceFromBytes(disk));
  assert.equal(table.kind, "mbr");
  if (table.kind !== "mbr") return;
  assert.deepEqual(table.partitions.map((p) => [p.index, p.start, p.logical]), [
    [1, 8, false],
    [5, 9, true],
    [6, 29, true],
  ]);
  assert.deepEqual(table.notes, ["EBR chain loops back to block 8"]);
});

Deno.test("robustness: a long chain of empty EBRs is walked a bounded number of steps", () => {
  const disk = extendedImage((d, v) => {
    for (let i = 0; i < 3000; i++) writeEbr(d, v, 8 + i, null, i + 1);
  });
  const source = counting(sourceFromBytes(disk));
  const table = probeMbr(source);
  assert.equal(table.kind, "mbr");
  assert.ok(source.reads <= 2 * MAX_LOGICAL_PARTITIONS + 1, `${source.reads} reads`);
  assert.match(table.kind === "mbr" ? table.notes.join() : "", /stopped after 256 EBRs/);
});

Deno.test("robustness: an MBR with an invalid boot indicator is not a partition table", () => {
  const disk = extendedImage(() => {});
  disk[MbrLayout.ENTRIES + MbrLayout.BOOT] = 0x81;
  assert.deepEqual(probeMbr(sourceFromBytes(disk)), {
    kind: "unrecognised",
    reason: "boot indicator other than 0x00/0x80",
  });
});

Deno.test("robustness: a device that fails, answers short or answers garbage gives no signature", () => {
  const readers: [string, (sector: number, count: number) => Uint8Array][] = [
    ["throws", () => {
      throw new Error("IOERR");
    }],
    ["answers short", (_, count) => new Uint8Array(count * 512 - 1)],
    ["answers empty", () => new Uint8Array(0)],
    ["answers a non-array", () => "sector" as unknown as Uint8Array],
  ];
  for (const [what, reader] of readers) {
    const probe = probeOk(sourceFromSectorReader(reader, 8 * MiB));
    assert.equal(describeProbe(probe), "no signature", what);
  }
});

Deno.test("robustness: reads through a 4 KiB-block device are widened to whole aligned blocks", () => {
  const calls: [number, number][] = [];
  const source = sourceFromSectorReader(
    (sector, count) => {
      calls.push([sector, count]);
      return new Uint8Array(count * 512);
    },
    8 * MiB,
    4096,
  );
  probeOk(source);
  assert.ok(calls.length > 0);
  for (const [sector, count] of calls) {
    assert.equal(sector % 8, 0, `sector ${sector}`);
    assert.equal(count % 8, 0, `count ${count}`);
  }
  assert.equal(source.read(8 * MiB - 512, 1024), undefined); // past the end
  assert.equal(source.read(-512, 512), undefined);
  assert.equal(source.read(0, 0), undefined);
});

Deno.test("robustness: a partition window never reads outside itself or the disk", () => {
  const disk = sourceFromBytes(new Uint8Array(1 * MiB).map((_, i) => i & 0xff));
  const part = subSource(disk, 1024, 4096);
  assert.equal(part.size, 4096);
  assert.deepEqual(part.read(0, 2), new Uint8Array([0, 1]));
  assert.equal(part.read(4095, 2), undefined);
  const past = subSource(disk, MiB - 512, 4096); // claims to run past the disk
  assert.equal(past.size, 512);
  assert.equal(subSource(disk, NaN, 10).size, 0);
  assert.equal(probeExt(subSource(disk, 2 * MiB, MiB)).kind, "unrecognised");
});
