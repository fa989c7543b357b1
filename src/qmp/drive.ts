/**
 * A block device as the QMP server manages it (a "drive" in QEMU's words):
 * the names QMP commands find it by, the device whose medium they change,
 * and, for a drive with removable media (ACRN's `nodisk`), how a file
 * becomes its medium. Also the drive's entry of `query-block`, in QEMU
 * 7.2's shape.
 *
 * @module
 */

import type { BackendSpec } from "../backend/backend.ts";
import { isFileSpec } from "../backend/file_driver.ts";
import { isNoMedium } from "../backend/no_medium.ts";
import type { JsonObject } from "./protocol.ts";

/**
 * What holds a drive's medium: a `VirtioBlkDevice` (the built-in machine's
 * disks, a library's device), or the vhost-user back end, whose device is
 * rebuilt for each connection.
 */
export interface MediumHolder {
  /** The medium in the drive now (a no-medium spec when it is empty). */
  readonly medium: BackendSpec;
  /** Whether the device offered VIRTIO_BLK_F_RO: it refuses writes whatever the medium. */
  readonly readOnly: boolean;
  /** Whether the guest-visible write cache is on (config `writeback`, CONFIG_WCE). */
  readonly writeback: boolean;
  /**
   * Puts `backend` in the drive (a resize: the same file at its new size;
   * an eject: an empty medium) and tells the guest's driver.
   */
  changeMedium(backend: BackendSpec): Promise<void>;
}

/** A drive the QMP server manages. */
export interface QmpDrive {
  /** QMP's `device` (QEMU's drive id; the command line names them `virtio0`, `virtio1`, …). */
  readonly device: string;
  /** QMP's `qdev`/`id`: the device's own id (the command line: `virtio-disk0`, … as libvirt). */
  readonly qdev: string;
  /** The `node-name` of its medium, which `block_resize` also accepts. */
  readonly nodeName: string;
  /** The device and its medium. */
  readonly holder: MediumHolder;
  /**
   * Describes the file at `path` as this drive's medium, with the drive's
   * options (sector size, cache, I/O): `blockdev-change-medium`. Only a
   * drive with removable media (ACRN's `nodisk`) has it; `eject` and
   * `blockdev-change-medium` refuse the others, as QEMU refuses a
   * non-removable device.
   */
  readonly openMedium?: (path: string, readOnly: boolean) => BackendSpec;
  /** Fields of our own in its `query-block` entry (the command line's: `slot`). */
  readonly fields?: Readonly<JsonObject>;
}

/** Whether media may be ejected from and inserted into `drive`. */
export function isRemovable(drive: QmpDrive): boolean {
  return drive.openMedium !== undefined;
}

/**
 * `drive`'s entry of `query-block` (QEMU's BlockInfo): `device`, `qdev`,
 * `type`, `removable`, `locked`, `io-status`, `tray_open` for a removable
 * drive, and `inserted` (BlockDeviceInfo) when it holds a medium; then the
 * drive's own fields.
 */
export function blockInfo(drive: QmpDrive, trayOpen: boolean): JsonObject {
  const { holder } = drive;
  const medium = holder.medium;
  const removable = isRemovable(drive);
  return {
    device: drive.device,
    qdev: drive.qdev,
    type: "unknown",
    removable,
    locked: false,
    ...(removable ? { tray_open: trayOpen } : {}),
    "io-status": "ok",
    ...(isNoMedium(medium) ? {} : { inserted: insertedInfo(drive, medium) }),
    ...drive.fields,
  };
}

/** BlockDeviceInfo of the medium in `drive`: a raw image, no throttling, no backing file. */
function insertedInfo(drive: QmpDrive, medium: BackendSpec): JsonObject {
  const file = isFileSpec(medium) ? medium.path : medium.name;
  return {
    file,
    "node-name": drive.nodeName,
    ro: drive.holder.readOnly || medium.readOnly,
    drv: "raw",
    backing_file_depth: 0,
    encrypted: false,
    detect_zeroes: "off",
    bps: 0,
    bps_rd: 0,
    bps_wr: 0,
    iops: 0,
    iops_rd: 0,
    iops_wr: 0,
    write_threshold: 0,
    cache: {
      writeback: drive.holder.writeback,
      direct: isFileSpec(medium) && medium.direct,
      "no-flush": false,
    },
    image: {
      filename: file,
      format: "raw",
      "virtual-size": medium.size,
      "dirty-flag": false,
    },
  };
}
