/**
 * The UOS's `watch` job: lists the disks (as `lsblk` does), then stays up
 * and reports every configuration change the device model makes while the
 * guest runs (a `block_resize`, a medium inserted into an empty `nodisk`
 * drive or ejected from it, through the QMP socket) the way Linux's
 * virtio_blk logs it, `vda: detected capacity change from 0 to 131072`,
 * followed by the disks as they are now; until it is stopped (SIGINT,
 * SIGTERM, QMP `quit`).
 *
 * It waits on the vCPU's interrupt line: each interrupt, every driver reads
 * its ISR, and a configuration change makes it read the capacity again.
 * Runs in the vCPU Worker (it blocks).
 *
 * @module
 */

import type { StopFlag } from "../../sync/stop_flag.ts";
import type { GuestMachine } from "../boot.ts";
import { humanSize } from "./units.ts";

/** How long the watch sleeps between looks at the stop flag, in ms. */
const STOP_POLL_MS = 100;

/** A configuration change one disk went through. */
export interface CapacityChange {
  /** The disk (`vda`, …). */
  readonly name: string;
  /** Capacity before, in 512-byte sectors. */
  readonly from: number;
  /** Capacity now, in 512-byte sectors (0: the medium was ejected). */
  readonly to: number;
}

/** Linux's line for a capacity change (block/genhd.c), with the size lsblk would show. */
export function describeCapacityChange(change: CapacityChange): string {
  const { name, from, to } = change;
  const what = to === 0 ? "no medium" : humanSize(to * 512);
  return `${name}: detected capacity change from ${from} to ${to} (${what})`;
}

/**
 * Reports each disk's capacity changes until `stop` is set: `onChange` for
 * every change, in the order seen, the last look after the stop;
 * `onWatching` once the capacities to compare with are taken. Returns how
 * many there were.
 */
export function watchDisks(
  guest: GuestMachine,
  stop: StopFlag,
  onChange: (change: CapacityChange) => void,
  onWatching?: () => void,
): number {
  const known = guest.disks.map((disk) => disk.driver.capacity);
  // From here on every change is reported: whoever waits for this (the
  // listing printed now) may change the disks.
  onWatching?.();
  let changes = 0;
  for (;;) {
    // Read before the look below: a change made before the stop (a resize
    // QMP answered before its quit) is reported by the last look.
    const stopping = stop.aborted;
    const seen = guest.interrupt.count;
    guest.disks.forEach((disk, i) => {
      disk.driver.acknowledgeInterrupts();
      const capacity = disk.driver.capacity;
      if (capacity === known[i]) return;
      onChange({ name: disk.name, from: known[i], to: capacity });
      known[i] = capacity;
      changes++;
    });
    if (stopping) return changes;
    guest.interrupt.waitSync(seen, STOP_POLL_MS);
  }
}
