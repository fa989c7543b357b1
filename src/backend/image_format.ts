/**
 * Recognising disk images that are not raw. The device serves a file's
 * bytes as the disk, so a qcow2, VMDK, VHDX, VDI, VHD or QED image would
 * reach the guest as its container's bytes: garbage to read, and a guest
 * write would corrupt the image. Such a file is refused with the command
 * that converts it.
 *
 * Every format is known by a signature in the first 512 bytes of the file,
 * except a fixed-size VHD, whose only signature is its footer in the last
 * 512 bytes (a dynamic VHD has a copy of the footer at the start too). The
 * signatures are those `qemu-img` writes and probes for:
 *
 * | format          | signature                                                   |
 * | --------------- | ----------------------------------------------------------- |
 * | qcow, qcow2     | `QFI\xfb` at 0; version (big-endian u32 at 4) 1 is qcow     |
 * | QED             | `QED\0` at 0                                                |
 * | VMDK            | `KDMV` (hosted sparse extent) or `COWD` (ESX sparse) at 0   |
 * | VMDK descriptor | the text `# Disk DescriptorFile` at 0                       |
 * | VHDX            | `vhdxfile` at 0                                             |
 * | VDI             | `<<< ` at 0 and the signature 0xbeda107f (little-endian) at 0x40 |
 * | VHD             | `conectix` at 0 (dynamic) or at the last 512 bytes (footer) |
 *
 * A raw disk whose guest wrote one of these at its start (an image stored
 * on a whole disk) is refused too, as `qemu-img` would probe it: nothing
 * tells the two apart.
 *
 * @module
 */

import * as fs from "node:fs";

/** Bytes read from each end of the file: every signature lies within them. */
export const SIGNATURE_BYTES = 512;

/** A non-raw image format. */
export interface ImageFormat {
  /** Its usual name (`qcow2`, `VMDK`, …). */
  readonly name: string;
  /** What the file is, as the refusal says it: "a qcow2 image". */
  readonly what: string;
  /**
   * `qemu-img`'s name of the format (`-f`). The command must name it: qemu
   * probes a fixed-size VHD as raw, and would copy it footer and all.
   */
  readonly qemu: string;
}

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

function startsWith(bytes: Uint8Array, at: number, signature: Uint8Array): boolean {
  if (bytes.length < at + signature.length) return false;
  return signature.every((b, i) => bytes[at + i] === b);
}

const QCOW_MAGIC = ascii("QFI\xfb");
const QED_MAGIC = ascii("QED\0");
const VMDK_SPARSE_MAGIC = ascii("KDMV");
const VMDK_ESX_MAGIC = ascii("COWD");
const VMDK_DESCRIPTOR = ascii("# Disk DescriptorFile");
const VHDX_MAGIC = ascii("vhdxfile");
const VDI_TEXT = ascii("<<< ");
/** VDI's image signature at byte 0x40, little-endian (VirtualBox's VDI_IMAGE_SIGNATURE). */
const VDI_SIGNATURE = Uint8Array.of(0x7f, 0x10, 0xda, 0xbe);
const VDI_SIGNATURE_AT = 0x40;
const VHD_COOKIE = ascii("conectix");

/** The format whose signature `head` (the file's first bytes) starts with, if any. */
function headFormat(head: Uint8Array): ImageFormat | undefined {
  if (startsWith(head, 0, QCOW_MAGIC)) {
    const version = head.length >= 8 ? new DataView(head.buffer, head.byteOffset).getUint32(4) : 0;
    return version === 1
      ? { name: "qcow", what: "a qcow image", qemu: "qcow" }
      : { name: "qcow2", what: "a qcow2 image", qemu: "qcow2" };
  }
  if (startsWith(head, 0, QED_MAGIC)) return { name: "QED", what: "a QED image", qemu: "qed" };
  if (startsWith(head, 0, VMDK_SPARSE_MAGIC) || startsWith(head, 0, VMDK_ESX_MAGIC)) {
    return { name: "VMDK", what: "a VMDK image", qemu: "vmdk" };
  }
  if (startsWith(head, 0, VMDK_DESCRIPTOR)) {
    return { name: "VMDK", what: "a VMDK image's descriptor file", qemu: "vmdk" };
  }
  if (startsWith(head, 0, VHDX_MAGIC)) return { name: "VHDX", what: "a VHDX image", qemu: "vhdx" };
  if (startsWith(head, 0, VDI_TEXT) && startsWith(head, VDI_SIGNATURE_AT, VDI_SIGNATURE)) {
    return { name: "VDI", what: "a VDI image", qemu: "vdi" };
  }
  if (startsWith(head, 0, VHD_COOKIE)) return { name: "VHD", what: "a VHD image", qemu: "vpc" };
  return undefined;
}

/**
 * The non-raw format of a file whose first bytes are `head` and whose last
 * {@linkcode SIGNATURE_BYTES} are `tail` (when it has that many), or
 * undefined for a file that looks raw.
 */
export function imageFormat(head: Uint8Array, tail?: Uint8Array): ImageFormat | undefined {
  const format = headFormat(head);
  if (format !== undefined) return format;
  // A fixed-size VHD: raw data, then a 512-byte footer that starts with the cookie.
  if (tail !== undefined && startsWith(tail, 0, VHD_COOKIE)) {
    return { name: "VHD", what: "a fixed-size VHD image", qemu: "vpc" };
  }
  return undefined;
}

/**
 * Reads the ends of the open regular file `fd` of `size` bytes (at most two
 * reads of {@linkcode SIGNATURE_BYTES}; the end only when the start matched
 * nothing) and returns its non-raw format, if it has one.
 */
export function readImageFormat(fd: number, size: number): ImageFormat | undefined {
  const head = readAt(fd, 0, Math.min(size, SIGNATURE_BYTES));
  const format = imageFormat(head);
  if (format !== undefined || size < SIGNATURE_BYTES) return format;
  return imageFormat(head, readAt(fd, size - SIGNATURE_BYTES, SIGNATURE_BYTES));
}

function readAt(fd: number, position: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  return bytes.subarray(0, fs.readSync(fd, bytes, 0, length, position));
}

/**
 * The one line refusing backing file `path` (as the user gave it), an image
 * in `format`, with the `qemu-img` command that makes a raw copy next to it.
 */
export function notRawMessage(path: string, format: ImageFormat): string {
  const stem = path.replace(/\.[^./]*$/, "");
  const raw = `${stem}.img` === path ? `${stem}.raw` : `${stem}.img`;
  return `backing file ${path} is ${format.what}; only raw images are served: convert with ` +
    `\`qemu-img convert -f ${format.qemu} -O raw ${shellWord(path)} ${shellWord(raw)}\``;
}

/** `text` as one shell word: as is when it is plain, else in single quotes. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}
