/**
 * The command line's QMP drives: one per `-s` virtio-blk function, named
 * as QEMU names `-drive if=virtio` disks (`virtio0`, `virtio1`, … in slot
 * order, the guest's vda, vdb, …), with libvirt's device ids (`virtio-disk0`,
 * …), the guest's disk name as the medium's node name, and the slot as
 * ACRN writes it in a field of its own. A `nodisk` drive takes media: a file
 * is described with the drive's options, and refused when another drive
 * holds it and one of the two would write it (as two `-s` are refused).
 *
 * @module
 */

import { statSync } from "node:fs";
import type { BackendSpec } from "../backend/backend.ts";
import { isFileSpec } from "../backend/file_driver.ts";
import type { VirtioBlkDevice } from "../blk/device.ts";
import { describeMedium, type SlotSpec } from "../dm/slot_spec.ts";
import { VirtioBlkError } from "../errors.ts";
import { diskName } from "../guest/boot.ts";
import type { QmpDrive } from "../qmp/drive.ts";

/** A `-s` function and the device serving it (or its stand-in, over vhost-user). */
export interface SlotDrive {
  readonly spec: SlotSpec;
  readonly holder: QmpDrive["holder"];
}

/** The QMP drives of `slots`, in the guest's order (slot, then function). */
export function slotDrives(slots: readonly SlotDrive[]): QmpDrive[] {
  const ordered = [...slots].sort((a, b) => a.spec.slot - b.spec.slot || a.spec.func - b.spec.func);
  return ordered.map(({ spec, holder }, i) => ({
    device: `virtio${i}`,
    qdev: `virtio-disk${i}`,
    nodeName: diskName(i),
    holder,
    fields: { slot: spec.func === 0 ? String(spec.slot) : `${spec.slot}:${spec.func}` },
    openMedium: spec.nodisk
      ? (path: string, readOnly: boolean) => {
        const medium = describeMedium(spec, path, readOnly);
        checkNotShared(medium, slots.filter((other) => other.spec !== spec));
        return medium;
      }
      : undefined,
  }));
}

/** Refuses a file another drive holds when either of the two may write it. */
function checkNotShared(medium: BackendSpec, others: readonly SlotDrive[]): void {
  if (!isFileSpec(medium)) return;
  const identity = fileIdentity(medium.path);
  for (const other of others) {
    const held = other.holder.medium;
    if (!isFileSpec(held) || fileIdentity(held.path) !== identity) continue;
    if (!medium.readOnly || !held.readOnly) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `${medium.path} is in use by -s ${other.spec.text}; a file opened writable can back ` +
          `only one drive`,
      );
    }
  }
}

/** The same file under another name (a symlink, a hard link) is the same file. */
function fileIdentity(path: string): string {
  const { dev, ino } = statSync(path);
  return `${dev}:${ino}`;
}

/** The drives of the built-in machine's devices, one per `-s` in `specs` (same order). */
export function machineDrives(
  specs: readonly SlotSpec[],
  devices: readonly VirtioBlkDevice[],
): QmpDrive[] {
  return slotDrives(specs.map((spec, i) => ({ spec, holder: devices[i] })));
}
