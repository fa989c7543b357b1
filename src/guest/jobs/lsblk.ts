/**
 * The UOS's `lsblk` job: one row per virtio-blk disk (name, PCI slot, size,
 * read-only, cache mode, logical/physical block size, serial, negotiated
 * features, and what is on it), with partitions as child rows, printed as an
 * aligned table like util-linux lsblk, or as JSON like `lsblk --json`.
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
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  /** GET_ID serial, or null when the device does not answer it. */
  readonly serial: string | null;
  /** Negotiated feature bits by name (`seg_max`, `flush`, `indirect_desc`, …). */
  readonly features: readonly string[];
  readonly probe: DiskProbe;
}

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

/** Asks the device for its row: GET_ID, and probes of the disk's contents. */
export function collectLsblkRow(disk: LsblkDisk): LsblkRow {
  const { driver } = disk;
  const info = driver.info;
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
    info.capacity * 512,
    info.logicalBlockSize,
  );
  const probe = probeDisk(source);
  return {
    name: disk.name,
    slot: String(disk.slot),
    size: info.capacity * 512,
    readOnly: info.readOnly,
    cache: cacheMode(driver),
    logicalBlockSize: info.logicalBlockSize,
    physicalBlockSize: info.physicalBlockSize,
    serial,
    features: featureNames(info.features),
    probe: readErrors.length === 0
      ? probe
      : { ...probe, notes: [...probe.notes, ...readErrors.slice(0, 4)] },
  };
}

/** {@linkcode collectLsblkRow} for each disk, in the order given. */
export function collectLsblk(disks: readonly LsblkDisk[]): LsblkRow[] {
  return disks.map(collectLsblkRow);
}

function diskContent(probe: DiskProbe): string {
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

const HEADERS = [
  "NAME",
  "SLOT",
  "SIZE",
  "RO",
  "CACHE",
  "LOG-SEC",
  "PHY-SEC",
  "SERIAL",
  "FEATURES",
  "CONTENT",
] as const;

/** Columns printed flush right, as lsblk does for numbers. */
const RIGHT_ALIGNED = new Set(["SIZE", "LOG-SEC", "PHY-SEC"]);

/**
 * The human table: one line per disk and per partition (drawn as a tree
 * under its disk), columns aligned, sizes like lsblk (`1G`, `512M`).
 * Text that came from the disk is escaped so it cannot drive the terminal.
 *
 * @example
 * ```ts
 * console.log(formatLsblkTable(collectLsblk(disks)));
 * // NAME SLOT SIZE RO CACHE         LOG-SEC PHY-SEC SERIAL … CONTENT
 * // vda  9    64M  0  write-through     512     512 …        ext4 LABEL="data" UUID=…
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
      String(row.logicalBlockSize),
      String(row.physicalBlockSize),
      row.serial ?? "-",
      row.features.join(","),
      diskContent(row.probe),
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

function filesystemJson(fs: ExtFilesystem | null): Record<string, unknown> {
  if (fs === null) return { fstype: null, label: null, uuid: null };
  return {
    fstype: fs.type,
    label: fs.label,
    uuid: fs.uuid,
    "fsblock-size": fs.blockSize,
    fssize: fs.size,
    fsfeatures: fs.features,
  };
}

/**
 * The JSON form, shaped like `lsblk --json --bytes` (`blockdevices`, with
 * partitions as `children`) plus this project's virtio fields.
 */
export function lsblkJson(rows: readonly LsblkRow[]): { blockdevices: Record<string, unknown>[] } {
  return {
    blockdevices: rows.map((row) => {
      const table = row.probe.table;
      return {
        name: row.name,
        slot: row.slot,
        size: row.size,
        ro: row.readOnly,
        cache: row.cache,
        "log-sec": row.logicalBlockSize,
        "phy-sec": row.physicalBlockSize,
        serial: row.serial,
        features: row.features,
        pttype: table === null ? null : tableTypeName(table),
        ptuuid: table === null ? null : table.kind === "gpt" ? table.diskGuid : table.diskId,
        ...filesystemJson(row.probe.filesystem),
        notes: row.probe.notes,
        children: row.probe.partitions.map((p) => ({
          name: `${row.name}${p.index}`,
          start: p.offset,
          size: p.size,
          parttype: p.type,
          parttypename: p.typeName ?? null,
          partlabel: p.name ?? null,
          partuuid: p.uuid ?? null,
          ...(p.bootable === undefined ? {} : { bootable: p.bootable }),
          ...filesystemJson(p.filesystem),
        })),
      };
    }),
  };
}
