/**
 * ext2, ext3 and ext4 filesystems, recognised from the superblock at byte
 * 1024 of the device the way libblkid does it:
 * - the magic 0xEF53 at superblock offset 0x38;
 * - a journal device (incompat JOURNAL_DEV) is `jbd`;
 * - ext2: no journal and only features ext2 knows (incompat FILETYPE,
 *   META_BG; ro_compat SPARSE_SUPER, LARGE_FILE, BTREE_DIR);
 * - ext3: a journal (compat HAS_JOURNAL) and only features ext3 knows (ext2's
 *   plus incompat RECOVER);
 * - ext4: at least one feature ext3 does not know (extents, 64bit, flex_bg,
 *   huge_file, metadata_csum, …); `ext4dev` when the TEST_FILESYS flag is set.
 * With metadata_csum the superblock's own CRC-32C is checked; a mismatch is
 * reported (`checksum: "bad"` and a note), not hidden: blkid 2.38 still
 * reports such a filesystem, while the kernel refuses to mount it.
 *
 * Layout and feature bits: the kernel's Documentation/filesystems/ext4
 * ("The Super Block"); feature names as e2fsprogs' dumpe2fs prints them.
 *
 * @module
 */

import type { ByteSource } from "./byte_source.ts";
import { crc32c } from "./crc32.ts";
import { formatUuid, isZeroGuid } from "./guid.ts";
import { type Unrecognised, unrecognised } from "./unrecognised.ts";

/** Byte offset of the primary superblock on the device. */
export const SUPERBLOCK_OFFSET = 1024;

/** Size of the superblock. */
export const SUPERBLOCK_SIZE = 1024;

/** ext2/3/4 magic number. */
export const EXT_MAGIC = 0xef53;

/** Byte offsets inside the superblock. */
export const Superblock = {
  INODES_COUNT: 0x00,
  BLOCKS_COUNT_LO: 0x04,
  LOG_BLOCK_SIZE: 0x18,
  MAGIC: 0x38,
  STATE: 0x3a,
  MINOR_REV_LEVEL: 0x3e,
  REV_LEVEL: 0x4c,
  FEATURE_COMPAT: 0x5c,
  FEATURE_INCOMPAT: 0x60,
  FEATURE_RO_COMPAT: 0x64,
  UUID: 0x68,
  VOLUME_NAME: 0x78,
  VOLUME_NAME_BYTES: 16,
  JOURNAL_UUID: 0xd0,
  BLOCKS_COUNT_HI: 0x150,
  FLAGS: 0x160,
  CHECKSUM_TYPE: 0x175,
  CHECKSUM: 0x3fc,
} as const;

/** Feature bits used to tell the types apart. */
export const ExtFeature = {
  COMPAT_HAS_JOURNAL: 0x0004,
  INCOMPAT_FILETYPE: 0x0002,
  INCOMPAT_RECOVER: 0x0004,
  INCOMPAT_JOURNAL_DEV: 0x0008,
  INCOMPAT_META_BG: 0x0010,
  INCOMPAT_64BIT: 0x0080,
  RO_COMPAT_SPARSE_SUPER: 0x0001,
  RO_COMPAT_LARGE_FILE: 0x0002,
  RO_COMPAT_BTREE_DIR: 0x0004,
  RO_COMPAT_METADATA_CSUM: 0x0400,
} as const;

/** s_flags: a filesystem for testing in-development kernel code (blkid's ext4dev). */
const FLAGS_TEST_FILESYS = 0x0004;

/** s_checksum_type of CRC-32C, the only one defined. */
const CHECKSUM_CRC32C = 1;

/** Largest log2(block size / 1024): 64 KiB blocks. */
const MAX_LOG_BLOCK_SIZE = 6;

const EXT2_INCOMPAT = ExtFeature.INCOMPAT_FILETYPE | ExtFeature.INCOMPAT_META_BG;
const EXT3_INCOMPAT = EXT2_INCOMPAT | ExtFeature.INCOMPAT_RECOVER;
const EXT2_RO_COMPAT = ExtFeature.RO_COMPAT_SPARSE_SUPER | ExtFeature.RO_COMPAT_LARGE_FILE |
  ExtFeature.RO_COMPAT_BTREE_DIR;
const EXT3_RO_COMPAT = EXT2_RO_COMPAT;

/** What blkid calls the filesystem. */
export type ExtType = "ext2" | "ext3" | "ext4" | "ext4dev" | "jbd";

/** A recognised ext2/3/4 superblock. */
export interface ExtFilesystem {
  readonly kind: "ext";
  readonly type: ExtType;
  /** blkid's SEC_TYPE: an ext3 filesystem can also be mounted as ext2. */
  readonly secondaryType?: "ext2";
  /** Volume label (up to 16 bytes), empty when none. */
  readonly label: string;
  /** Filesystem UUID, lower case `8-4-4-4-12`. */
  readonly uuid: string;
  /** UUID of the external journal, when there is one. */
  readonly journalUuid?: string;
  /** blkid's VERSION: `rev_level.minor_rev_level`. */
  readonly version: string;
  readonly blockSize: number;
  readonly blocksCount: number;
  /** blocksCount × blockSize. */
  readonly size: number;
  /**
   * The superblock's own CRC-32C (metadata_csum): "ok", "bad" (damaged; the
   * kernel would not mount it, e2fsprogs complains, blkid 2.38 still reports
   * it), or "none" without metadata_csum.
   */
  readonly checksum: "ok" | "bad" | "none";
  /** Feature names in dumpe2fs order (compat, incompat, ro_compat; by bit). */
  readonly features: readonly string[];
  /** Oddities (a bad checksum, the filesystem larger than its device). */
  readonly notes: readonly string[];
}

const COMPAT_NAMES: Record<number, string> = {
  0: "dir_prealloc",
  1: "imagic_inodes",
  2: "has_journal",
  3: "ext_attr",
  4: "resize_inode",
  5: "dir_index",
  6: "lazy_bg",
  8: "snapshot_bitmap",
  9: "sparse_super2",
  10: "fast_commit",
  11: "stable_inodes",
  12: "orphan_file",
};

const INCOMPAT_NAMES: Record<number, string> = {
  0: "compression",
  1: "filetype",
  2: "needs_recovery",
  3: "journal_dev",
  4: "meta_bg",
  6: "extent",
  7: "64bit",
  8: "mmp",
  9: "flex_bg",
  10: "ea_inode",
  12: "dirdata",
  13: "metadata_csum_seed",
  14: "large_dir",
  15: "inline_data",
  16: "encrypt",
  17: "casefold",
};

const RO_COMPAT_NAMES: Record<number, string> = {
  0: "sparse_super",
  1: "large_file",
  3: "huge_file",
  4: "uninit_bg",
  5: "dir_nlink",
  6: "extra_isize",
  7: "snapshot",
  8: "quota",
  9: "bigalloc",
  10: "metadata_csum",
  11: "replica",
  12: "read-only",
  13: "project",
  14: "shared_blocks",
  15: "verity",
  16: "orphan_present",
};

/** Feature names of the three feature words, as dumpe2fs lists them ("FEATURE_C7" when unnamed). */
export function extFeatureNames(compat: number, incompat: number, roCompat: number): string[] {
  const names: string[] = [];
  const words: [number, Record<number, string>, string][] = [
    [compat, COMPAT_NAMES, "C"],
    [incompat, INCOMPAT_NAMES, "I"],
    [roCompat, RO_COMPAT_NAMES, "R"],
  ];
  for (const [word, table, letter] of words) {
    for (let bit = 0; bit < 32; bit++) {
      if ((word >>> bit) & 1) names.push(table[bit] ?? `FEATURE_${letter}${bit}`);
    }
  }
  return names;
}

/** blkid's type decision from the three feature words and s_flags; undefined when none fits. */
export function extType(
  compat: number,
  incompat: number,
  roCompat: number,
  flags: number,
): ExtType | undefined {
  if (incompat & ExtFeature.INCOMPAT_JOURNAL_DEV) return "jbd";
  const beyondExt3 = (incompat & ~EXT3_INCOMPAT) !== 0 || (roCompat & ~EXT3_RO_COMPAT) !== 0;
  if (beyondExt3) return flags & FLAGS_TEST_FILESYS ? "ext4dev" : "ext4";
  if (compat & ExtFeature.COMPAT_HAS_JOURNAL) return "ext3";
  const beyondExt2 = (incompat & ~EXT2_INCOMPAT) !== 0 || (roCompat & ~EXT2_RO_COMPAT) !== 0;
  return beyondExt2 ? undefined : "ext2";
}

const utf8 = new TextDecoder();

/** Reads the ext2/3/4 superblock of `source`. */
export function probeExt(source: ByteSource): ExtFilesystem | Unrecognised {
  const sb = source.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
  if (sb === undefined) return unrecognised("no room for a superblock at byte 1024");
  const view = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
  if (view.getUint16(Superblock.MAGIC, true) !== EXT_MAGIC) return unrecognised("no ext magic");
  const compat = view.getUint32(Superblock.FEATURE_COMPAT, true);
  const incompat = view.getUint32(Superblock.FEATURE_INCOMPAT, true);
  const roCompat = view.getUint32(Superblock.FEATURE_RO_COMPAT, true);
  const type = extType(compat, incompat, roCompat, view.getUint32(Superblock.FLAGS, true));
  if (type === undefined) return unrecognised("ext feature set matches no ext type");
  const logBlockSize = view.getUint32(Superblock.LOG_BLOCK_SIZE, true);
  if (logBlockSize > MAX_LOG_BLOCK_SIZE) return unrecognised(`block size 2^${10 + logBlockSize}`);
  const notes: string[] = [];
  let checksum: ExtFilesystem["checksum"] = "none";
  if (roCompat & ExtFeature.RO_COMPAT_METADATA_CSUM) {
    // The kernel's ext4_superblock_csum is crc32c_le(~0, …) without the final
    // inversion, i.e. the bitwise NOT of the standard CRC-32C.
    const expected = ~crc32c(sb, 0, Superblock.CHECKSUM) >>> 0;
    const type = sb[Superblock.CHECKSUM_TYPE];
    checksum = type === CHECKSUM_CRC32C && view.getUint32(Superblock.CHECKSUM, true) === expected
      ? "ok"
      : "bad";
    if (type !== CHECKSUM_CRC32C) notes.push(`unknown superblock checksum type ${type}`);
    else if (checksum === "bad") {
      notes.push("superblock checksum mismatch: the superblock is damaged");
    }
  }
  const blockSize = 1024 * 2 ** logBlockSize;
  const high = incompat & ExtFeature.INCOMPAT_64BIT
    ? view.getUint32(Superblock.BLOCKS_COUNT_HI, true)
    : 0;
  const blocksCount = high * 2 ** 32 + view.getUint32(Superblock.BLOCKS_COUNT_LO, true);
  if (blocksCount === 0) return unrecognised("superblock counts zero blocks");
  const labelBytes = sb.subarray(
    Superblock.VOLUME_NAME,
    Superblock.VOLUME_NAME + Superblock.VOLUME_NAME_BYTES,
  );
  const labelEnd = labelBytes.indexOf(0);
  const size = blocksCount * blockSize;
  if (size > source.size) notes.push(`filesystem (${size} bytes) is larger than its device`);
  return {
    kind: "ext",
    type,
    ...(type === "ext3" ? { secondaryType: "ext2" as const } : {}),
    label: utf8.decode(labelEnd < 0 ? labelBytes : labelBytes.subarray(0, labelEnd)),
    uuid: formatUuid(sb, Superblock.UUID),
    ...(isZeroGuid(sb, Superblock.JOURNAL_UUID)
      ? {}
      : { journalUuid: formatUuid(sb, Superblock.JOURNAL_UUID) }),
    version: `${view.getUint32(Superblock.REV_LEVEL, true)}.${
      view.getUint16(Superblock.MINOR_REV_LEVEL, true)
    }`,
    blockSize,
    blocksCount,
    size,
    checksum,
    features: extFeatureNames(compat, incompat, roCompat),
    notes,
  };
}
