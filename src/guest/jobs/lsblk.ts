/**
 * The UOS's `lsblk` job: one row per virtio-blk disk (name, PCI slot, size,
 * read-only, cache mode, request queues in use (`/sys/block/vda/mq/` on
 * Linux), logical/physical block size, serial, negotiated
 * features, and what is on it), with partitions as child rows, printed as an
 * aligned table like util-linux lsblk, or as JSON in the layout of
 * `lsblk --json --bytes -O`, so tools that read lsblk's JSON read it.
 *
 * Collecting does I/O through the disk's driver (GET_ID and a few sector
 * reads for the probes), blocking, so it runs in the vCPU Worker or
 * in-process; formatting is pure.
 *
 * @module
 */

import { BlkFeature } from "../../blk/spec.ts";
import { hasFeature, RingFeature } from "../../virtio/spec.ts";
import { sourceFromSectorReader } from "../probe/byte_source.ts";
import type { ExtFilesystem } from "../probe/ext.ts";
import {
  describeFilesystem,
  type DiskProbe,
  probeDisk,
  type ProbedPartition,
  tableTypeName,
} from "../probe/probe.ts";
import { RequestFailed, type VirtioBlkDriver } from "../virtio_blk_driver.ts";
import { humanSize, printable } from "./units.ts";

/** A disk as the UOS found it: its name, where it sits on the PCI bus, its driver. */
export interface LsblkDisk {
  /** Device name (`vda`, `vdb`, … in slot order). */
  readonly name: string;
  /** PCI slot as the user wrote it (`9`, or `9:1` for a function). */
  readonly slot: string | number;
  readonly driver: VirtioBlkDriver;
}

/** Cache mode of a disk. */
export type CacheMode = "write-back" | "write-through";

/** Everything `lsblk` reports about one disk. */
export interface LsblkRow {
  readonly name: string;
  readonly slot: string;
  /** Bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  readonly cache: CacheMode;
  /** Request queues the guest drives (min(num_queues, vCPUs) with VIRTIO_BLK_F_MQ, else 1). */
  readonly queues: number;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  /** GET_ID serial, or null when the device does not answer it. */
  readonly serial: string | null;
  /** Negotiated feature bits by name (`seg_max`, `flush`, `indirect_desc`, …). */
  readonly features: readonly string[];
  /** False for an empty drive (ACRN's `nodisk`): capacity 0, nothing to probe. */
  readonly medium: boolean;
  readonly probe: DiskProbe;
}

/** What an empty drive holds: nothing, and the note that says so. */
const NO_MEDIUM_PROBE: DiskProbe = { table: null, filesystem: null, partitions: [], notes: [] };

const FEATURE_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries({ ...BlkFeature, ...RingFeature })
    .filter(([, bit]) => bit < 32)
    .map(([name, bit]) => [bit, name.toLowerCase()]),
);

/** Names of the set bits of a (low 32 bits) feature word; unnamed bits as `bit<N>`. */
export function featureNames(features: number): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    if (hasFeature(features, bit)) names.push(FEATURE_NAMES.get(bit) ?? `bit${bit}`);
  }
  return names;
}

/**
 * The cache mode the way Linux's virtio_blk decides it: the `writeback`
 * config field when CONFIG_WCE was negotiated, else write-back exactly when
 * FLUSH was (virtio 1.2 §5.2.5.1).
 */
export function cacheMode(driver: VirtioBlkDriver): CacheMode {
  const features = driver.info.features;
  const writeback = hasFeature(features, BlkFeature.CONFIG_WCE)
    ? driver.writeback
    : hasFeature(features, BlkFeature.FLUSH);
  return writeback ? "write-back" : "write-through";
}

/**
 * Asks the device for its row: GET_ID, and probes of the disk's contents.
 * The size is the capacity the driver knows now (a configuration change
 * since it started, such as a resize or a medium inserted, included).
 */
export function collectLsblkRow(disk: LsblkDisk): LsblkRow {
  const { driver } = disk;
  driver.acknowledgeInterrupts();
  const info = driver.info;
  const capacity = driver.capacity;
  let serial: string | null = null;
  try {
    serial = driver.getIdSync();
  } catch (error) {
    if (!(error instanceof RequestFailed)) throw error;
  }
  const readErrors: string[] = [];
  const source = sourceFromSectorReader(
    (sector, count) => {
      try {
        return driver.readSync(sector, count * 512);
      } catch (error) {
        readErrors.push(`read of sector ${sector} failed: ${(error as Error).message}`);
        throw error;
      }
    },
    capacity * 512,
    info.logicalBlockSize,
  );
  // An empty drive (capacity 0, as Linux shows one): no sector to read.
  const probe = capacity === 0 ? NO_MEDIUM_PROBE : probeDisk(source);
  return {
    name: disk.name,
    slot: String(disk.slot),
    size: capacity * 512,
    readOnly: info.readOnly,
    cache: cacheMode(driver),
    queues: info.queues,
    logicalBlockSize: info.logicalBlockSize,
    physicalBlockSize: info.physicalBlockSize,
    serial,
    features: featureNames(info.features),
    medium: capacity > 0,
    probe: readErrors.length === 0
      ? probe
      : { ...probe, notes: [...probe.notes, ...readErrors.slice(0, 4)] },
  };
}

/** {@linkcode collectLsblkRow} for each disk, in the order given. */
export function collectLsblk(disks: readonly LsblkDisk[]): LsblkRow[] {
  return disks.map(collectLsblkRow);
}

function diskContent(row: LsblkRow): string {
  if (!row.medium) return "no medium";
  const probe = row.probe;
  const parts: string[] = [];
  if (probe.table !== null) {
    const id = probe.table.kind === "gpt" ? probe.table.diskGuid : probe.table.diskId;
    parts.push(`${tableTypeName(probe.table)} ${id}`);
  }
  if (probe.filesystem !== null) parts.push(describeFilesystem(probe.filesystem));
  return parts.length === 0 ? "no signature" : parts.join("; ");
}

function partitionContent(p: ProbedPartition): string {
  const parts = [p.typeName ?? p.type];
  if (p.name !== undefined && p.name !== "") parts.push(JSON.stringify(p.name));
  if (p.bootable) parts.push("boot");
  if (p.filesystem !== null) parts.push(describeFilesystem(p.filesystem));
  return parts.join(" ");
}

/**
 * The SERIAL cell: one word whatever the serial holds (`serial=` allows
 * spaces), spaces and backslashes escaped as udev escapes them in
 * `/dev/disk/by-id` names (`\x20`, `\x5c`); `-` when there is none.
 */
function serialCell(serial: string | null): string {
  if (serial === null || serial === "") return "-";
  return serial.replace(/[\\ ]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
}

const HEADERS = [
  "NAME",
  "SLOT",
  "SIZE",
  "RO",
  "CACHE",
  "QUEUES",
  "LOG-SEC",
  "PHY-SEC",
  "SERIAL",
  "FEATURES",
  "CONTENT",
] as const;

/** Columns printed flush right, as lsblk does for numbers. */
const RIGHT_ALIGNED = new Set(["SIZE", "QUEUES", "LOG-SEC", "PHY-SEC"]);

/**
 * The human table: one line per disk and per partition (drawn as a tree
 * under its disk), columns aligned, sizes like lsblk (`1G`, `512M`).
 * Text that came from the disk is escaped so it cannot drive the terminal.
 *
 * @example
 * ```ts
 * console.log(formatLsblkTable(collectLsblk(disks)));
 * // NAME SLOT SIZE RO CACHE         QUEUES LOG-SEC PHY-SEC SERIAL … CONTENT
 * // vda  9    64M  0  write-through      1     512     512 …        ext4 LABEL="data" UUID=…
 * ```
 */
export function formatLsblkTable(rows: readonly LsblkRow[]): string {
  const lines: string[][] = [[...HEADERS]];
  for (const row of rows) {
    lines.push([
      row.name,
      row.slot,
      humanSize(row.size),
      row.readOnly ? "1" : "0",
      row.cache,
      String(row.queues),
      String(row.logicalBlockSize),
      String(row.physicalBlockSize),
      serialCell(row.serial),
      row.features.join(","),
      diskContent(row),
    ]);
    row.probe.partitions.forEach((p, i) => {
      const branch = i === row.probe.partitions.length - 1 ? "└─" : "├─";
      lines.push([
        `${branch}${row.name}${p.index}`,
        "",
        humanSize(p.size),
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        partitionContent(p),
      ]);
    });
  }
  const cells = lines.map((line) => line.map(printable));
  const widths = HEADERS.map((_, column) => Math.max(...cells.map((line) => line[column].length)));
  return cells.map((line) =>
    line.map((cell, column) =>
      RIGHT_ALIGNED.has(HEADERS[column])
        ? cell.padStart(widths[column])
        : column === line.length - 1
        ? cell
        : cell.padEnd(widths[column])
    ).join(" ").trimEnd()
  ).join("\n");
}

/**
 * Device numbers as a Linux guest's virtio_blk driver gives them: its
 * (dynamic) block major, 254 on a Debian guest; 16 minors a disk, in the
 * order of the disk names (vda 254:0, vda1 254:1, vdb 254:16); partitions
 * beyond the 15th on the extended major 259, numbered in the order they
 * appear. Our guest has no device nodes: this is for tools that key on
 * `maj:min`.
 */
const VIRTBLK_MAJOR = 254;
const VIRTBLK_MINORS = 16;
const BLOCK_EXT_MAJOR = 259;

/**
 * What Linux makes of an MBR extended partition: a device of two sectors
 * (one logical block if larger), so that nothing formats the container of
 * the logical partitions (block/partitions/msdos.c).
 */
function extendedSize(size: number, logicalBlockSize: number): number {
  return Math.min(size, Math.max(logicalBlockSize, 1024));
}

/** The index of disk `name` in Linux's virtio_blk naming: vda 0, vdz 25, vdaa 26, … */
function virtblkIndex(name: string): number | null {
  const letters = /^vd([a-z]+)$/.exec(name)?.[1];
  if (letters === undefined) return null;
  let index = 0;
  for (const c of letters) index = index * 26 + (c.charCodeAt(0) - 96);
  return index - 1;
}

function filesystemJson(fs: ExtFilesystem | null): Record<string, unknown> {
  return {
    fstype: fs?.type ?? null,
    fsver: fs?.version ?? null,
    // blkid sets no LABEL for an empty one.
    label: fs === null || fs.label === "" ? null : fs.label,
    uuid: fs?.uuid ?? null,
  };
}

/** Ours: what the probe read from the superblock (lsblk's `fssize` is a mounted size). */
function filesystemDetailsJson(fs: ExtFilesystem | null): Record<string, unknown> {
  return fs === null ? {} : {
    "fsblock-size": fs.blockSize,
    fsblocks: fs.blocksCount,
    fsfeatures: fs.features,
  };
}

/** lsblk's `pttype` and `ptuuid`, as blkid spells them (`dos` ids without `0x`). */
function tableJson(probe: DiskProbe): { pttype: string | null; ptuuid: string | null } {
  const table = probe.table;
  if (table === null) return { pttype: null, ptuuid: null };
  return {
    pttype: tableTypeName(table),
    ptuuid: table.kind === "gpt" ? table.diskGuid : table.diskId.replace(/^0x/, ""),
  };
}

/** A disk object of {@linkcode lsblkJson}. */
export type LsblkJsonDevice = Record<string, unknown> & {
  readonly name: string;
  readonly children?: readonly LsblkJsonDevice[];
};

/**
 * The JSON form, in the layout of util-linux 2.38's `lsblk --json --bytes
 * -O` (`blockdevices`, partitions as `children`), with lsblk's field names
 * and types: `size` in bytes and `start` in 512-byte sectors as numbers,
 * `rm`/`ro` as booleans, `maj:min` as text (see {@linkcode VIRTBLK_MAJOR}),
 * table and partition fields spelt as blkid spells them, null where
 * nothing is known. Fields lsblk has no column for carry names of their
 * own: `slot`, `cache`, `queues`, `features`, `notes`, and the probed `fsblock-size`,
 * `fsblocks` and `fsfeatures`.
 */
export function lsblkJson(rows: readonly LsblkRow[]): { blockdevices: LsblkJsonDevice[] } {
  let extMinor = 0;
  return {
    blockdevices: rows.map((row) => {
      const index = virtblkIndex(row.name);
      const devt = (partition: number) =>
        index === null
          ? null
          : partition < VIRTBLK_MINORS
          ? `${VIRTBLK_MAJOR}:${index * VIRTBLK_MINORS + partition}`
          : `${BLOCK_EXT_MAJOR}:${extMinor++}`;
      const table = tableJson(row.probe);
      const common = {
        rm: false,
        ro: row.readOnly,
        mountpoints: [null],
      };
      const sectors = {
        "log-sec": row.logicalBlockSize,
        "phy-sec": row.physicalBlockSize,
      };
      return {
        name: row.name,
        "maj:min": devt(0),
        ...common,
        size: row.size,
        type: "disk",
        kname: row.name,
        path: `/dev/${row.name}`,
        ...sectors,
        serial: row.serial,
        ...table,
        ...filesystemJson(row.probe.filesystem),
        slot: row.slot,
        cache: row.cache,
        queues: row.queues,
        features: row.features,
        ...filesystemDetailsJson(row.probe.filesystem),
        notes: row.medium ? row.probe.notes : ["no medium"],
        // lsblk leaves `children` out of a device that has none.
        ...(row.probe.partitions.length === 0 ? {} : {
          children: row.probe.partitions.map((p) => {
            const name = `${row.name}${p.index}`;
            return {
              name,
              "maj:min": devt(p.index),
              ...common,
              size: p.extended ? extendedSize(p.size, row.logicalBlockSize) : p.size,
              type: "part",
              kname: name,
              path: `/dev/${name}`,
              pkname: row.name,
              start: p.offset / 512,
              ...sectors,
              ...table,
              // blkid writes an MBR type as C's "0x%x": 0x83, 0x5.
              parttype: row.probe.table?.kind === "mbr"
                ? `0x${parseInt(p.type, 16).toString(16)}`
                : p.type,
              parttypename: p.typeName ?? null,
              // blkid sets no PART_ENTRY_NAME for an empty name.
              partlabel: p.name === undefined || p.name === "" ? null : p.name,
              partuuid: p.uuid ??
                (row.probe.table?.kind === "mbr"
                  ? `${table.ptuuid}-${p.index.toString(16).padStart(2, "0")}`
                  : null),
              partflags: p.flags ?? null,
              ...filesystemJson(p.filesystem),
              ...filesystemDetailsJson(p.filesystem),
            };
          }),
        }),
      };
    }),
  };
}
