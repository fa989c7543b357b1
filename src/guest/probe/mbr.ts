/**
 * The MBR ("dos") partition table: four primary entries in sector 0 and,
 * inside an extended partition, a chain of extended boot records (EBRs) that
 * each hold one logical partition, numbered from 5 as Linux does.
 *
 * Layout (sector 0, and every EBR): entries at byte 446, 16 bytes each
 * {u8 boot indicator (0x00 or 0x80), u8[3] CHS start, u8 system ID,
 * u8[3] CHS end, u32 first LBA, u32 sector count}; the 0x55 0xAA signature at
 * byte 510; the disk identifier at byte 440. LBAs count logical blocks.
 * In an EBR, entry 0 is the logical partition (relative to that EBR) and
 * entry 1 links to the next EBR (relative to the extended partition's start).
 *
 * @module
 */

import type { ByteSource } from "./byte_source.ts";
import { MBR_EXTENDED_TYPES, MBR_GPT_PROTECTIVE, mbrTypeName } from "./partition_types.ts";
import { type Unrecognised, unrecognised } from "./unrecognised.ts";

/** Byte offsets in an MBR or EBR sector. */
export const MbrLayout = {
  DISK_ID: 440,
  ENTRIES: 446,
  ENTRY_SIZE: 16,
  SIGNATURE: 510,
  /** Within an entry. */
  BOOT: 0,
  TYPE: 4,
  FIRST_LBA: 8,
  SECTORS: 12,
} as const;

/** Boot indicator of an active partition. */
export const MBR_BOOTABLE = 0x80;

/**
 * How many logical partitions the EBR chain may hold; the walk also stops
 * after twice as many EBRs, so a hostile chain costs a bounded number of reads.
 */
export const MAX_LOGICAL_PARTITIONS = 128;

/** One MBR partition. Start and size count logical blocks of the disk. */
export interface MbrPartition {
  /** Partition number: 1–4 for primary entries (by slot), 5… for logical ones. */
  readonly index: number;
  /** System ID (0x83 Linux, 0x05 extended, …). */
  readonly type: number;
  /** fdisk's name for the type, if known. */
  readonly typeName?: string;
  readonly start: number;
  readonly size: number;
  readonly bootable: boolean;
  /** An extended partition (a container of logical partitions). */
  readonly extended: boolean;
  /** A logical partition inside the extended one. */
  readonly logical: boolean;
}

/** A recognised MBR. */
export interface MbrTable {
  readonly kind: "mbr";
  /** Disk identifier as fdisk prints it: `0x` and eight hex digits. */
  readonly diskId: string;
  /** Unit of `start` and `size`, in bytes. */
  readonly blockSize: number;
  /** A protective MBR (a type 0xEE entry): the disk carries a GPT. */
  readonly protective: boolean;
  readonly partitions: readonly MbrPartition[];
  /** Oddities found while reading (a broken EBR chain, a partition past the end). */
  readonly notes: readonly string[];
}

interface RawEntry {
  boot: number;
  type: number;
  first: number;
  sectors: number;
}

function entries(sector: Uint8Array): RawEntry[] {
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const list: RawEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const at = MbrLayout.ENTRIES + MbrLayout.ENTRY_SIZE * i;
    list.push({
      boot: sector[at + MbrLayout.BOOT],
      type: sector[at + MbrLayout.TYPE],
      first: view.getUint32(at + MbrLayout.FIRST_LBA, true),
      sectors: view.getUint32(at + MbrLayout.SECTORS, true),
    });
  }
  return list;
}

function hasSignature(sector: Uint8Array): boolean {
  return sector[MbrLayout.SIGNATURE] === 0x55 && sector[MbrLayout.SIGNATURE + 1] === 0xaa;
}

function isUsed(entry: RawEntry): boolean {
  return entry.type !== 0 && entry.sectors !== 0;
}

function partition(index: number, entry: RawEntry, start: number, logical: boolean): MbrPartition {
  const typeName = mbrTypeName(entry.type);
  return {
    index,
    type: entry.type,
    ...(typeName === undefined ? {} : { typeName }),
    start,
    size: entry.sectors,
    bootable: entry.boot === MBR_BOOTABLE,
    extended: MBR_EXTENDED_TYPES.has(entry.type),
    logical,
  };
}

/**
 * Reads the MBR of `source`. Returns {@linkcode Unrecognised} when sector 0
 * has no 0x55AA signature or a boot indicator other than 0x00/0x80 (then it
 * is not a partition table, e.g. a filesystem boot sector).
 */
export function probeMbr(source: ByteSource): MbrTable | Unrecognised {
  const block = source.blockSize;
  const sector = source.read(0, 512);
  if (sector === undefined) return unrecognised("sector 0 cannot be read");
  if (!hasSignature(sector)) return unrecognised("no 0x55AA boot signature");
  const primary = entries(sector);
  if (primary.some((e) => e.boot !== 0 && e.boot !== MBR_BOOTABLE)) {
    return unrecognised("boot indicator other than 0x00/0x80");
  }
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const diskId = "0x" + view.getUint32(MbrLayout.DISK_ID, true).toString(16).padStart(8, "0");
  const notes: string[] = [];
  const partitions: MbrPartition[] = [];
  const protective = primary.some((e) => e.type === MBR_GPT_PROTECTIVE);
  const diskBlocks = Math.floor(source.size / block);
  primary.forEach((entry, slot) => {
    if (isUsed(entry)) partitions.push(partition(slot + 1, entry, entry.first, false));
  });
  const extended = partitions.find((p) => p.extended);
  if (extended !== undefined && !protective) {
    partitions.push(...logicalPartitions(source, extended, notes));
  }
  for (const p of partitions) {
    if (p.start + p.size > diskBlocks) {
      notes.push(`partition ${p.index} ends past the end of the disk`);
    }
  }
  return { kind: "mbr", diskId, blockSize: block, protective, partitions, notes };
}

/** Follows the EBR chain of `extended`, stopping at a loop, a bad EBR or the limit. */
function logicalPartitions(
  source: ByteSource,
  extended: MbrPartition,
  notes: string[],
): MbrPartition[] {
  const block = source.blockSize;
  const found: MbrPartition[] = [];
  const visited = new Set<number>();
  let ebr = extended.start;
  for (;;) {
    if (found.length === MAX_LOGICAL_PARTITIONS || visited.size === 2 * MAX_LOGICAL_PARTITIONS) {
      notes.push(`stopped after ${visited.size} EBRs (${found.length} logical partitions)`);
      break;
    }
    if (visited.has(ebr)) {
      notes.push(`EBR chain loops back to block ${ebr}`);
      break;
    }
    visited.add(ebr);
    const sector = source.read(ebr * block, 512);
    if (sector === undefined || !hasSignature(sector)) {
      notes.push(`no valid EBR at block ${ebr}`);
      break;
    }
    const [logical, link] = entries(sector);
    if (isUsed(logical) && !MBR_EXTENDED_TYPES.has(logical.type)) {
      found.push(partition(5 + found.length, logical, ebr + logical.first, true));
    }
    if (!isUsed(link) || !MBR_EXTENDED_TYPES.has(link.type)) break;
    ebr = extended.start + link.first;
  }
  return found;
}
