/**
 * The GUID Partition Table (UEFI 2.10 §5.3): a header at LBA 1 (a backup in
 * the disk's last LBA) pointing at an array of partition entries, both
 * protected by CRC-32. A header is trusted only when every check of
 * §5.3.2 passes (signature, size, header CRC, MyLBA, usable range, entry
 * size, entry-array CRC); when the primary fails, the backup is tried, as
 * firmware and Linux do.
 *
 * @module
 */

import { type ByteSource, MAX_PROBE_READ } from "./byte_source.ts";
import { crc32 } from "./crc32.ts";
import { formatGuid, isZeroGuid } from "./guid.ts";
import { gptTypeName } from "./partition_types.ts";
import { type Unrecognised, unrecognised } from "./unrecognised.ts";

/** Byte offsets in the GPT header (UEFI 2.10 table 5.5). */
export const GptHeader = {
  SIGNATURE: 0,
  REVISION: 8,
  HEADER_SIZE: 12,
  HEADER_CRC: 16,
  MY_LBA: 24,
  ALTERNATE_LBA: 32,
  FIRST_USABLE_LBA: 40,
  LAST_USABLE_LBA: 48,
  DISK_GUID: 56,
  ENTRIES_LBA: 72,
  ENTRY_COUNT: 80,
  ENTRY_SIZE: 84,
  ENTRIES_CRC: 88,
  /** Size of the fields above; HeaderSize may not be smaller. */
  MIN_SIZE: 92,
} as const;

/** Byte offsets in a partition entry (UEFI 2.10 table 5.6). */
export const GptEntry = {
  TYPE_GUID: 0,
  UNIQUE_GUID: 16,
  FIRST_LBA: 32,
  LAST_LBA: 40,
  ATTRIBUTES: 48,
  NAME: 56,
  /** Bytes of the UTF-16LE name (36 code units). */
  NAME_BYTES: 72,
  /** The smallest entry size; others are 128 × 2^n. */
  MIN_SIZE: 128,
} as const;

/** "EFI PART". */
const SIGNATURE = [0x45, 0x46, 0x49, 0x20, 0x50, 0x41, 0x52, 0x54];

/** One GPT partition. LBAs count logical blocks of the disk. */
export interface GptPartition {
  /** Entry number, from 1 (Linux names the partition after it). */
  readonly index: number;
  readonly typeGuid: string;
  /** fdisk's name for the type, if known. */
  readonly typeName?: string;
  readonly uniqueGuid: string;
  /** The partition name (UTF-16LE in the entry). */
  readonly name: string;
  readonly firstLba: number;
  readonly lastLba: number;
  /** The 64 attribute bits as `0x` and 16 hex digits. */
  readonly attributes: string;
}

/** A recognised GPT. */
export interface GptTable {
  readonly kind: "gpt";
  readonly diskGuid: string;
  /** Which header was valid: the primary at LBA 1, or the backup at the last LBA. */
  readonly header: "primary" | "backup";
  /** Unit of every LBA, in bytes. */
  readonly blockSize: number;
  readonly firstUsableLba: number;
  readonly lastUsableLba: number;
  readonly entryCount: number;
  readonly entrySize: number;
  readonly partitions: readonly GptPartition[];
  readonly notes: readonly string[];
}

/** A u64 as a number, or NaN when it exceeds 2^53 (no disk is that big). */
function u64(view: DataView, at: number): number {
  const high = view.getUint32(at + 4, true);
  return high >= 0x200000 ? NaN : high * 2 ** 32 + view.getUint32(at, true);
}

const utf16 = new TextDecoder("utf-16le");

function entryName(entry: Uint8Array): string {
  let end = GptEntry.NAME;
  const limit = GptEntry.NAME + GptEntry.NAME_BYTES;
  while (end < limit && (entry[end] !== 0 || entry[end + 1] !== 0)) end += 2;
  return utf16.decode(entry.subarray(GptEntry.NAME, end));
}

function attributes(view: DataView, at: number): string {
  const high = view.getUint32(at + 4, true).toString(16).padStart(8, "0");
  return "0x" + high + view.getUint32(at, true).toString(16).padStart(8, "0");
}

/**
 * Reads the GPT of `source` (whose `blockSize` is the LBA size). Does not
 * look at the protective MBR: {@linkcode probeDisk} decides when to call this.
 */
export function probeGpt(source: ByteSource): GptTable | Unrecognised {
  const blocks = Math.floor(source.size / source.blockSize);
  if (blocks < 3) return unrecognised("disk too small for a GPT");
  const primary = readTable(source, 1, blocks);
  if (primary.kind === "gpt") return primary;
  const backup = readTable(source, blocks - 1, blocks);
  if (backup.kind === "gpt") {
    return {
      ...backup,
      header: "backup",
      notes: [`primary GPT header unusable (${primary.reason}); using the backup`, ...backup.notes],
    };
  }
  return unrecognised(primary.reason);
}

function readTable(source: ByteSource, lba: number, blocks: number): GptTable | Unrecognised {
  const blockSize = source.blockSize;
  const sector = source.read(lba * blockSize, blockSize);
  if (sector === undefined) return unrecognised(`LBA ${lba} cannot be read`);
  if (SIGNATURE.some((byte, i) => sector[GptHeader.SIGNATURE + i] !== byte)) {
    return unrecognised(`no "EFI PART" signature at LBA ${lba}`);
  }
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const headerSize = view.getUint32(GptHeader.HEADER_SIZE, true);
  if (headerSize < GptHeader.MIN_SIZE || headerSize > blockSize) {
    return unrecognised(`header size ${headerSize} outside [${GptHeader.MIN_SIZE}, ${blockSize}]`);
  }
  // §5.3.2: the CRC covers HeaderSize bytes with the CRC field itself zeroed.
  const header = sector.slice(0, headerSize);
  header.fill(0, GptHeader.HEADER_CRC, GptHeader.HEADER_CRC + 4);
  if (crc32(header) !== view.getUint32(GptHeader.HEADER_CRC, true)) {
    return unrecognised(`header CRC mismatch at LBA ${lba}`);
  }
  if (u64(view, GptHeader.MY_LBA) !== lba) {
    return unrecognised(`header at LBA ${lba} says it lives at LBA ${u64(view, GptHeader.MY_LBA)}`);
  }
  const firstUsable = u64(view, GptHeader.FIRST_USABLE_LBA);
  const lastUsable = u64(view, GptHeader.LAST_USABLE_LBA);
  if (!(firstUsable <= lastUsable + 1 && lastUsable < blocks)) {
    return unrecognised(`usable range ${firstUsable}–${lastUsable} does not fit ${blocks} blocks`);
  }
  const count = view.getUint32(GptHeader.ENTRY_COUNT, true);
  const entrySize = view.getUint32(GptHeader.ENTRY_SIZE, true);
  const sizeIsPowerOfTwoMultiple = entrySize >= GptEntry.MIN_SIZE &&
    entrySize % GptEntry.MIN_SIZE === 0 &&
    ((entrySize / GptEntry.MIN_SIZE) & (entrySize / GptEntry.MIN_SIZE - 1)) === 0;
  if (!sizeIsPowerOfTwoMultiple) return unrecognised(`partition entry size ${entrySize}`);
  const arrayBytes = count * entrySize;
  if (arrayBytes > MAX_PROBE_READ) {
    return unrecognised(`${count} partition entries of ${entrySize} bytes is implausibly many`);
  }
  const entriesLba = u64(view, GptHeader.ENTRIES_LBA);
  const array = arrayBytes === 0
    ? new Uint8Array(0)
    : source.read(entriesLba * blockSize, arrayBytes);
  if (array === undefined) {
    return unrecognised(`partition entries at LBA ${entriesLba} cannot be read`);
  }
  if (crc32(array) !== view.getUint32(GptHeader.ENTRIES_CRC, true)) {
    return unrecognised(`partition entry array CRC mismatch (header at LBA ${lba})`);
  }
  const notes: string[] = [];
  const partitions = readEntries(array, count, entrySize, firstUsable, lastUsable, notes);
  return {
    kind: "gpt",
    diskGuid: formatGuid(sector, GptHeader.DISK_GUID),
    header: "primary",
    blockSize,
    firstUsableLba: firstUsable,
    lastUsableLba: lastUsable,
    entryCount: count,
    entrySize,
    partitions,
    notes,
  };
}

function readEntries(
  array: Uint8Array,
  count: number,
  entrySize: number,
  firstUsable: number,
  lastUsable: number,
  notes: string[],
): GptPartition[] {
  const view = new DataView(array.buffer, array.byteOffset, array.byteLength);
  const partitions: GptPartition[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * entrySize;
    if (isZeroGuid(array, at + GptEntry.TYPE_GUID)) continue;
    const firstLba = u64(view, at + GptEntry.FIRST_LBA);
    const lastLba = u64(view, at + GptEntry.LAST_LBA);
    if (!(firstLba <= lastLba)) {
      notes.push(`entry ${i + 1} ignored: first LBA ${firstLba} after last LBA ${lastLba}`);
      continue;
    }
    if (firstLba < firstUsable || lastLba > lastUsable) {
      notes.push(`entry ${i + 1} lies outside the usable LBAs ${firstUsable}–${lastUsable}`);
    }
    const typeGuid = formatGuid(array, at + GptEntry.TYPE_GUID);
    const typeName = gptTypeName(typeGuid);
    partitions.push({
      index: i + 1,
      typeGuid,
      ...(typeName === undefined ? {} : { typeName }),
      uniqueGuid: formatGuid(array, at + GptEntry.UNIQUE_GUID),
      name: entryName(array.subarray(at, at + entrySize)),
      firstLba,
      lastLba,
      attributes: attributes(view, at + GptEntry.ATTRIBUTES),
    });
  }
  return partitions;
}
