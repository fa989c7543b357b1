/**
 * The size of a block device or partition. `stat` reports 0 bytes for one,
 * so the size comes from the device itself: seeking to its end (lseek
 * SEEK_END) on Deno, and on Node a search with one-byte positional reads,
 * which is all `node:fs` offers (it has no lseek and no ioctl).
 *
 * @module
 */

import * as fs from "node:fs";

/** A device's size in bytes always counts whole 512-byte sectors. */
const DEVICE_SECTOR = 512;

/**
 * Bytes in the block device at `path`, by seeking a `Deno.FsFile` to its end
 * (Deno only). Opens the device read-only and closes it again; throws what
 * `Deno.openSync` throws.
 */
export function seekDeviceSize(path: string): number {
  using device = Deno.openSync(path, { read: true });
  return device.seekSync(0, Deno.SeekMode.End);
}

/**
 * Bytes readable through `fd` (a block device opened for reading), found
 * by positional one-byte reads: a read at or past the end returns 0 bytes.
 * The size is a whole number of 512-byte sectors, so an exponential then
 * binary search over sector indexes needs about 2·log2(sectors) reads.
 */
export function probeDeviceSize(fd: number): number {
  const probe = new Uint8Array(1);
  const sectorExists = (sector: number) =>
    fs.readSync(fd, probe, 0, 1, sector * DEVICE_SECTOR) === 1;
  if (!sectorExists(0)) return 0;
  // Invariant: sector lo - 1 exists and sector hi does not (once hi is found).
  let lo = 1;
  let hi = 1;
  while (sectorExists(hi)) {
    lo = hi + 1;
    hi *= 2;
  }
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (sectorExists(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo * DEVICE_SECTOR;
}
