/**
 * Text forms of the 16-byte identifiers found on disks.
 *
 * GPT stores GUIDs in Microsoft's mixed-endian layout (UEFI 2.10 Appendix A:
 * the first three fields little-endian, the last two as bytes); ext2/3/4
 * stores its UUID as 16 plain bytes (RFC 4122 network order). Both print as
 * lower-case `8-4-4-4-12` hexadecimal, the way blkid prints them.
 *
 * @module
 */

function hex(bytes: Uint8Array, at: number, order: readonly number[]): string {
  let text = "";
  for (const i of order) text += bytes[at + i].toString(16).padStart(2, "0");
  return text;
}

const PLAIN = [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9], [10, 11, 12, 13, 14, 15]] as const;
const MIXED = [[3, 2, 1, 0], [5, 4], [7, 6], [8, 9], [10, 11, 12, 13, 14, 15]] as const;

/** The UUID in `bytes[at, at + 16)` stored in byte order (ext2/3/4 `s_uuid`). */
export function formatUuid(bytes: Uint8Array, at = 0): string {
  return PLAIN.map((group) => hex(bytes, at, group)).join("-");
}

/** The GUID in `bytes[at, at + 16)` stored mixed-endian (GPT). */
export function formatGuid(bytes: Uint8Array, at = 0): string {
  return MIXED.map((group) => hex(bytes, at, group)).join("-");
}

/** Whether `bytes[at, at + 16)` are all zero (an unused GPT entry has a zero type GUID). */
export function isZeroGuid(bytes: Uint8Array, at = 0): boolean {
  for (let i = 0; i < 16; i++) if (bytes[at + i] !== 0) return false;
  return true;
}
