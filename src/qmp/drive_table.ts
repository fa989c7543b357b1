/**
 * The drives one QMP server manages, and what its block commands do to
 * them: find a drive by the names QEMU accepts (`device`, `id`,
 * `node-name`), resize its file, eject its medium, insert another. The
 * operations on one drive run one at a time, in the order asked, whichever
 * client asked: a resize cannot interleave with an eject.
 *
 * The drives have no physical tray; the table keeps QEMU's tray state for
 * a removable one (closed at start; open after `eject`; closed again by
 * `blockdev-change-medium`) and announces each move with
 * DEVICE_TRAY_MOVED, as QEMU does for a CD drive.
 *
 * @module
 */

import { resizableFile, truncateFile } from "../backend/file_resize.ts";
import { isNoMedium, noMedium } from "../backend/no_medium.ts";
import { VirtioBlkError } from "../errors.ts";
import { blockInfo, isRemovable, type QmpDrive } from "./drive.ts";
import { genericError, type JsonObject, QmpError } from "./protocol.ts";

/** Where the table announces events (DEVICE_TRAY_MOVED). */
export type EventSink = (event: string, data: JsonObject) => void;

/** QEMU's blockdev-change-medium `read-only-mode`. */
export type ReadOnlyMode = "retain" | "read-only" | "read-write";

/** A drive and its run-time state. */
interface Entry {
  readonly drive: QmpDrive;
  trayOpen: boolean;
  /** The last operation on the drive (the next one waits for it). */
  queue: Promise<unknown>;
}

/** The drives of a QMP server. */
export class DriveTable {
  readonly #entries: Entry[];
  readonly #emit: EventSink;

  /**
   * The table of `drives`, each tray closed; tray events go to `emit`.
   *
   * @throws {VirtioBlkError} `INVALID_CONFIG` when two drives share a name
   */
  constructor(drives: readonly QmpDrive[], emit: EventSink) {
    const names = new Set<string>();
    for (const drive of drives) {
      for (const name of new Set([drive.device, drive.qdev, drive.nodeName])) {
        if (names.has(name)) {
          throw new VirtioBlkError("INVALID_CONFIG", `QMP: two drives are called "${name}"`);
        }
        names.add(name);
      }
    }
    this.#entries = drives.map((drive) => ({ drive, trayOpen: false, queue: Promise.resolve() }));
    this.#emit = emit;
  }

  /** `query-block`: every drive's entry, in order. */
  queryBlock(): JsonObject[] {
    return this.#entries.map((entry) => blockInfo(entry.drive, entry.trayOpen));
  }

  /**
   * `block_resize`: the drive named by `device` or by its medium's
   * `nodeName` (QEMU's bdrv_lookup_bs) gets its file resized to `size` bytes.
   * Growing: the file grows, then the device takes the new size. Shrinking:
   * the device first (after which nothing reaches past the new end), then
   * the file. The guest's driver gets a configuration-change interrupt.
   */
  resize(device: string | undefined, nodeName: string | undefined, size: number): Promise<void> {
    const entry = this.#entries.find((e) =>
      (device !== undefined && e.drive.device === device) ||
      (nodeName !== undefined && e.drive.nodeName === nodeName)
    );
    if (entry === undefined) {
      throw genericError(
        `Cannot find device="${device ?? ""}" nor node-name="${nodeName ?? ""}"`,
      );
    }
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw genericError("Parameter 'size' expects a >0 size");
    }
    if (size % 512 !== 0) {
      throw genericError("Parameter 'size' expects a multiple of 512 bytes (virtio's sector)");
    }
    return this.#serialized(entry, async () => {
      const { holder } = entry.drive;
      if (isNoMedium(holder.medium)) {
        throw genericError(`Device '${entry.drive.device}' has no medium`);
      }
      const file = resizableFile(holder.medium);
      if (size === file.size) return;
      const resized = { ...file, size };
      if (size > file.size) {
        truncateFile(file, size);
        await holder.changeMedium(resized);
      } else {
        await holder.changeMedium(resized);
        truncateFile(file, size);
      }
    });
  }

  /** `eject`: the medium of the drive leaves it, and its tray is open. */
  eject(device: string | undefined, id: string | undefined): Promise<void> {
    const entry = this.#removable(device, id);
    return this.#serialized(entry, async () => {
      const { holder } = entry.drive;
      this.#moveTray(entry, true);
      if (!isNoMedium(holder.medium)) {
        await holder.changeMedium(noMedium({ readOnly: holder.readOnly }));
      }
    });
  }

  /**
   * `blockdev-change-medium`: the file at `filename` goes into the drive
   * (described with the drive's options), its tray closed. `retain` keeps
   * the read-only mode of the medium there before (for an empty drive, the
   * drive's own). A device that offered VIRTIO_BLK_F_RO takes no writable
   * medium: its driver would never write to it.
   */
  changeMedium(
    device: string | undefined,
    id: string | undefined,
    filename: string,
    mode: ReadOnlyMode,
  ): Promise<void> {
    const entry = this.#removable(device, id);
    return this.#serialized(entry, async () => {
      const { drive } = entry;
      const { holder } = drive;
      if (mode === "read-write" && holder.readOnly) {
        throw genericError(
          `Device '${drive.device}' is read-only (ro: its driver was told so and never writes)`,
        );
      }
      const readOnly = mode === "retain" ? holder.medium.readOnly : mode === "read-only";
      let medium;
      try {
        medium = drive.openMedium!(filename, readOnly);
      } catch (error) {
        throw genericError(`Could not open '${filename}': ${(error as Error).message}`);
      }
      this.#moveTray(entry, true);
      await holder.changeMedium(medium);
      this.#moveTray(entry, false);
    });
  }

  /** The removable drive named by `device` or `id` (QEMU's qmp_get_blk). */
  #removable(device: string | undefined, id: string | undefined): Entry {
    if ((device === undefined) === (id === undefined)) {
      throw genericError("Need exactly one of 'device' and 'id'");
    }
    const entry = this.#entries.find((e) =>
      device !== undefined ? e.drive.device === device : e.drive.qdev === id
    );
    if (entry === undefined) {
      throw new QmpError("DeviceNotFound", `Device '${device ?? id}' not found`);
    }
    if (!isRemovable(entry.drive)) {
      throw genericError(`Device '${device ?? id}' is not removable`);
    }
    return entry;
  }

  #moveTray(entry: Entry, open: boolean): void {
    if (entry.trayOpen === open) return;
    entry.trayOpen = open;
    this.#emit("DEVICE_TRAY_MOVED", {
      device: entry.drive.device,
      id: entry.drive.qdev,
      "tray-open": open,
    });
  }

  /** Runs `operation` once every earlier operation on the drive has ended. */
  #serialized(entry: Entry, operation: () => Promise<void>): Promise<void> {
    const run = entry.queue.then(operation).catch((error) => {
      throw error instanceof QmpError ? error : genericError((error as Error).message);
    });
    entry.queue = run.catch(() => {});
    return run;
  }
}
