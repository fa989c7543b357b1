/**
 * Disk images that are not raw are refused with the command that converts
 * them: each format by its signature (hand-made headers, byte by byte), the
 * real thing as `qemu-img create` makes it, and the raw images it converts
 * them to, which are served. Refusing reads and changes nothing.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import { imageFormat, notRawMessage } from "../../src/backend/image_format.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { needsTools } from "../helpers/skip.ts";
import { assertUnchanged, blkError, KiB, MiB, snapshot, TempDir } from "./file_fixtures.ts";

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** A `length`-byte buffer holding `parts` (byte offset → bytes), zeros elsewhere. */
function bytes(length: number, parts: Record<number, Uint8Array>): Uint8Array {
  const buffer = new Uint8Array(length);
  for (const [at, part] of Object.entries(parts)) buffer.set(part, Number(at));
  return buffer;
}

/** The start of each format's image, with only its signature: what we call it, qemu-img's name. */
const HEADS: { what: string; qemu: string; head: Uint8Array }[] = [
  {
    what: "a qcow2 image",
    qemu: "qcow2",
    head: bytes(512, { 0: ascii("QFI\xfb"), 4: Uint8Array.of(0, 0, 0, 3) }),
  },
  {
    what: "a qcow image",
    qemu: "qcow",
    head: bytes(512, { 0: ascii("QFI\xfb"), 4: Uint8Array.of(0, 0, 0, 1) }),
  },
  { what: "a QED image", qemu: "qed", head: bytes(512, { 0: ascii("QED\0") }) },
  {
    what: "a VMDK image",
    qemu: "vmdk",
    head: bytes(512, { 0: ascii("KDMV"), 4: Uint8Array.of(1, 0, 0, 0) }),
  },
  { what: "a VMDK image", qemu: "vmdk", head: bytes(512, { 0: ascii("COWD") }) },
  {
    what: "a VMDK image's descriptor file",
    qemu: "vmdk",
    head: ascii('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'),
  },
  { what: "a VHDX image", qemu: "vhdx", head: bytes(512, { 0: ascii("vhdxfile") }) },
  {
    what: "a VDI image",
    qemu: "vdi",
    head: bytes(512, {
      0: ascii("<<< Oracle VM VirtualBox Disk Image >>>\n"),
      0x40: Uint8Array.of(0x7f, 0x10, 0xda, 0xbe),
    }),
  },
  { what: "a VHD image", qemu: "vpc", head: bytes(512, { 0: ascii("conectix") }) },
];

Deno.test("image format: each format is known by its signature at the start", () => {
  for (const { what, qemu, head } of HEADS) {
    assert.deepEqual([imageFormat(head)?.what, imageFormat(head)?.qemu], [what, qemu]);
  }
});

Deno.test("image format: a fixed-size VHD is known by the footer in its last sector", () => {
  const footer = bytes(512, { 0: ascii("conectix") });
  assert.equal(imageFormat(new Uint8Array(512), footer)?.what, "a fixed-size VHD image");
  assert.equal(imageFormat(new Uint8Array(512), new Uint8Array(512)), undefined);
});

Deno.test("image format: raw data and near misses are raw", () => {
  const raw = [
    new Uint8Array(0),
    new Uint8Array(512),
    ascii("QFI"), // cut short
    bytes(512, { 1: ascii("QFI\xfb") }), // not at the start
    bytes(512, { 0: ascii("<<< not a VDI >>>") }), // the text without the signature at 0x40
    bytes(512, { 0x40: Uint8Array.of(0x7f, 0x10, 0xda, 0xbe) }), // the signature without the text
    ascii("# Disk Descriptor"), // cut short
    bytes(512, { 0: ascii("vhdxfil") }),
    bytes(512, { 0: Uint8Array.of(0xeb, 0x3c, 0x90), 510: Uint8Array.of(0x55, 0xaa) }), // a boot sector
  ];
  for (const head of raw) assert.equal(imageFormat(head, new Uint8Array(512)), undefined);
});

Deno.test("image format: the refusal names the file as given and the qemu-img command", () => {
  const qcow2 = imageFormat(HEADS[0].head)!;
  assert.equal(
    notRawMessage("disk.qcow2", qcow2),
    "backing file disk.qcow2 is a qcow2 image; only raw images are served: convert with " +
      "`qemu-img convert -f qcow2 -O raw disk.qcow2 disk.img`",
  );
  assert.match(
    notRawMessage("vm/disk.img", qcow2),
    /`qemu-img convert -f qcow2 -O raw vm\/disk\.img vm\/disk\.raw`$/,
  );
  assert.match(notRawMessage("../v1.0/disk", qcow2), / \.\.\/v1\.0\/disk \.\.\/v1\.0\/disk\.img`$/);
  assert.match(
    notRawMessage("my disk's.vmdk", qcow2),
    / 'my disk'\\''s\.vmdk' 'my disk'\\''s\.img'`$/,
  );
});

Deno.test("describeFile: a file with an image's header is refused and left unchanged", () => {
  using dir = new TempDir();
  for (const { what, qemu, head } of HEADS) {
    // Sizes as the images have them: many are not whole sectors, some are.
    const path = dir.file(
      "disk.image",
      bytes(head.length < 512 ? head.length : 64 * KiB, { 0: head }),
    );
    const before = snapshot(path);
    for (const readOnly of [false, true]) {
      assert.throws(
        () => describeFile(path, { readOnly }),
        (error: unknown) => {
          assert.ok(error instanceof VirtioBlkError);
          assert.equal(error.code, "BAD_BACKING_FILE");
          assert.equal(
            error.message,
            `backing file ${path} is ${what}; only raw images are served: convert with ` +
              `\`qemu-img convert -f ${qemu} -O raw ${path} ${dir.path}/disk.img\``,
          );
          return true;
        },
      );
    }
    assertUnchanged(path, before);
  }
  const fixed = dir.file("fixed.vhd", bytes(MiB + 512, { [MiB]: ascii("conectix") }));
  assert.throws(
    () => describeFile(fixed),
    blkError("BAD_BACKING_FILE", /is a fixed-size VHD image/),
  );
  // A raw image is served, also one with a partition table and a boot sector.
  const raw = dir.file("raw.img", bytes(MiB, { 510: Uint8Array.of(0x55, 0xaa) }));
  assert.equal(describeFile(raw).size, MiB);
});

const QEMU_IMG = needsTools("qemu-img");

/** qemu-img's formats and subformats, and what we call each. */
const REAL_IMAGES: { args: string[]; what: string }[] = [
  { args: ["-f", "qcow2"], what: "a qcow2 image" },
  { args: ["-f", "qcow"], what: "a qcow image" },
  { args: ["-f", "qed"], what: "a QED image" },
  { args: ["-f", "vmdk"], what: "a VMDK image" },
  { args: ["-f", "vmdk", "-o", "subformat=streamOptimized"], what: "a VMDK image" },
  {
    args: ["-f", "vmdk", "-o", "subformat=monolithicFlat"],
    what: "a VMDK image's descriptor file",
  },
  { args: ["-f", "vhdx"], what: "a VHDX image" },
  { args: ["-f", "vdi"], what: "a VDI image" },
  { args: ["-f", "vdi", "-o", "static=on"], what: "a VDI image" },
  { args: ["-f", "vpc"], what: "a VHD image" },
  { args: ["-f", "vpc", "-o", "subformat=fixed"], what: "a fixed-size VHD image" },
];

/** The message describeFile refuses `path` with. */
function refusal(path: string): string {
  try {
    describeFile(path, { readOnly: true });
  } catch (error) {
    assert.ok(error instanceof VirtioBlkError);
    assert.equal(error.code, "BAD_BACKING_FILE");
    return error.message;
  }
  assert.fail(`${path} was not refused`);
}

function qemuImg(...args: string[]): void {
  const output = new Deno.Command("qemu-img", { args, stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!output.success) {
    throw new Error(`qemu-img ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

Deno.test({
  name:
    "describeFile: images made by qemu-img are refused; the raw images it converts them to are served",
  ignore: QEMU_IMG.ignore,
  fn: () => {
    using dir = new TempDir();
    for (const [i, { args, what }] of REAL_IMAGES.entries()) {
      const image = `${dir.path}/image${i}`;
      qemuImg("create", "-q", ...args, image, "1M");
      const before = snapshot(image);
      assert.match(refusal(image), new RegExp(`^backing file ${image} is ${what};`));
      assertUnchanged(image, before);
      // The command the refusal gives makes an image that is served (VHD rounds 1M up to
      // whole cylinders).
      const command = /`qemu-img (convert -f \w+ -O raw \S+ \S+)`$/.exec(refusal(image))![1];
      assert.equal(command, `convert -f ${args[1]} -O raw ${image} ${image}.img`);
      qemuImg(...command.split(" "));
      const size = describeFile(`${image}.img`).size;
      assert.ok(size >= MiB && size < MiB + 64 * KiB, `${args.join(" ")}: ${size} bytes`);
    }
    // The flat extent of a monolithicFlat VMDK is raw data, and served as such.
    const flat = REAL_IMAGES.findIndex((image) => image.args.includes("subformat=monolithicFlat"));
    assert.equal(describeFile(`${dir.path}/image${flat}-flat`).size, MiB);
  },
});
