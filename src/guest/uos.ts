/**
 * The built-in guest's (ACRN's "UOS") jobs. `uos_worker.ts` boots the guest
 * in its vCPU Worker (PCI scan, one driver per virtio-blk function, disks
 * named vda, vdb, … in slot order) and runs one of these.
 *
 * @module
 */

import type { GuestMachine } from "./boot.ts";
import { collectLsblk, formatLsblkTable, lsblkJson } from "./jobs/lsblk.ts";

/** What the guest is asked to do. */
export type UosJob = { readonly kind: "lsblk"; readonly json: boolean };

/** What a job reports: 0 when it went as expected. */
export interface UosResult {
  readonly exitCode: number;
}

/** Runs `job` on the booted guest, writing its output through `print`. */
export function runJob(guest: GuestMachine, job: UosJob, print: (text: string) => void): UosResult {
  switch (job.kind) {
    case "lsblk": {
      const rows = collectLsblk(guest.disks.map((disk) => ({
        name: disk.name,
        slot: disk.pci.func === 0 ? disk.pci.slot : `${disk.pci.slot}:${disk.pci.func}`,
        driver: disk.driver,
      })));
      print(job.json ? JSON.stringify(lsblkJson(rows), null, 2) : formatLsblkTable(rows));
      return { exitCode: 0 };
    }
  }
}
