/**
 * What is on a disk: a partition table (MBR, or GPT behind a protective MBR)
 * with what is inside each partition, and/or a filesystem on the whole disk;
 * or no signature at all. Each format lives in its own module; this one
 * decides the order (protective MBR → GPT, as UEFI 2.10 §5.2.3 requires) and
 * puts the answers in one uniform shape for `lsblk`.
 *
 * @module
 */

import { type ByteSource, subSource } from "./byte_source.ts";
import { type ExtFilesystem, probeExt } from "./ext.ts";
import { type GptTable, probeGpt } from "./gpt.ts";
import { type MbrTable, probeMbr } from "./mbr.ts";

/** How many partitions get their contents probed (one superblock read each). */
export const MAX_PROBED_PARTITIONS = 128;

/** A partition, whatever table it came from. */
export interface ProbedPartition {
  /** Partition number (the `1` of vda1). */
  readonly index: number;
  /** Byte offset on the disk. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** MBR system ID as two hex digits (`83`), or the GPT type GUID. */
  readonly type: string;
  /** fdisk's name for the type, if known. */
  readonly typeName?: string;
  /** GPT partition name. */
  readonly name?: string;
  /** GPT unique partition GUID. */
  readonly uuid?: string;
  /** MBR boot flag. */
  readonly bootable?: boolean;
  /**
   * blkid's PART_ENTRY_FLAGS: `0x80` for an MBR partition marked bootable,
   * a GPT entry's attribute bits (`0x8000000000000000`); absent when none.
   */
  readonly flags?: string;
  /** An MBR extended partition (its contents are the logical partitions). */
  readonly extended?: boolean;
  /** A filesystem found inside, or null. */
  readonly filesystem: ExtFilesystem | null;
}

/** Everything found on one disk. */
export interface DiskProbe {
  /** The partition table, or null. */
  readonly table: MbrTable | GptTable | null;
  /** A filesystem on the whole disk, or null. */
  readonly filesystem: ExtFilesystem | null;
  readonly partitions: readonly ProbedPartition[];
  /** Why candidates were rejected or what looked odd (a damaged GPT, a broken EBR chain). */
  readonly notes: readonly string[];
}

function partitionsOf(table: MbrTable | GptTable, source: ByteSource): ProbedPartition[] {
  const block = table.blockSize;
  const list: Omit<ProbedPartition, "filesystem">[] = table.kind === "gpt"
    ? table.partitions.map((p) => ({
      index: p.index,
      offset: p.firstLba * block,
      size: (p.lastLba - p.firstLba + 1) * block,
      type: p.typeGuid,
      ...(p.typeName === undefined ? {} : { typeName: p.typeName }),
      name: p.name,
      uuid: p.uniqueGuid,
      ...(BigInt(p.attributes) === 0n ? {} : { flags: `0x${BigInt(p.attributes).toString(16)}` }),
    }))
    : table.partitions.map((p) => ({
      index: p.index,
      offset: p.start * block,
      size: p.size * block,
      type: p.type.toString(16).padStart(2, "0"),
      ...(p.typeName === undefined ? {} : { typeName: p.typeName }),
      bootable: p.bootable,
      ...(p.bootable ? { flags: "0x80" } : {}),
      ...(p.extended ? { extended: true } : {}),
    }));
  return list.map((p, i) => {
    const inside = i < MAX_PROBED_PARTITIONS && !p.extended && p.offset < source.size;
    const found = inside ? probeExt(subSource(source, p.offset, p.size)) : undefined;
    return { ...p, filesystem: found?.kind === "ext" ? found : null };
  });
}

/**
 * Probes `source` for a partition table and a filesystem. Never throws on
 * any content: unreadable or hostile bytes give "no signature" and notes.
 *
 * @example
 * ```ts
 * const probe = probeDisk(sourceFromBytes(await Deno.readFile("disk.img")));
 * describeProbe(probe); // 'ext4 LABEL="data" UUID=…'
 * ```
 */
export function probeDisk(source: ByteSource): DiskProbe {
  const notes: string[] = [];
  let table: MbrTable | GptTable | null = null;
  const mbr = probeMbr(source);
  if (mbr.kind === "mbr" && mbr.protective) {
    const gpt = probeGpt(source);
    if (gpt.kind === "gpt") {
      table = gpt;
      notes.push(...gpt.notes);
    } else {
      notes.push(`protective MBR but no valid GPT (${gpt.reason})`);
      table = mbr;
      notes.push(...mbr.notes);
    }
  } else if (mbr.kind === "mbr") {
    table = mbr;
    notes.push(...mbr.notes);
  }
  const ext = probeExt(source);
  const filesystem = ext.kind === "ext" ? ext : null;
  if (filesystem !== null) notes.push(...filesystem.notes);
  const partitions = table === null ? [] : partitionsOf(table, source);
  return { table, filesystem, partitions, notes };
}

/** blkid's short name of a partition table: `gpt`, `dos`, or `PMBR` for a protective MBR alone. */
export function tableTypeName(table: MbrTable | GptTable): string {
  if (table.kind === "gpt") return "gpt";
  return table.protective ? "PMBR" : "dos";
}

/** One line about a filesystem: `ext4 LABEL="data" UUID=…`. */
export function describeFilesystem(fs: ExtFilesystem): string {
  const label = fs.label === "" ? "" : ` LABEL=${JSON.stringify(fs.label)}`;
  const damaged = fs.checksum === "bad" ? " (superblock checksum mismatch)" : "";
  return `${fs.type}${label} UUID=${fs.uuid}${damaged}`;
}

/** One line about a disk: its table and partition count, its filesystem, or "no signature". */
export function describeProbe(probe: DiskProbe): string {
  const parts: string[] = [];
  if (probe.table !== null) {
    const count = probe.partitions.length;
    parts.push(`${tableTypeName(probe.table)}, ${count} partition${count === 1 ? "" : "s"}`);
  }
  if (probe.filesystem !== null) parts.push(describeFilesystem(probe.filesystem));
  return parts.length === 0 ? "no signature" : parts.join("; ");
}
