/**
 * What `stat` does not tell about a block device or partition.
 *
 * - Its size: `stat` reports 0 bytes, so the size comes from the device
 *   itself: seeking to its end (lseek SEEK_END) on Deno, and on Node a search
 *   with one-byte positional reads, which is all `node:fs` offers (it has no
 *   lseek and no ioctl).
 * - Whether it is read-only (`blockdev --setro`, `losetup -r`): Linux lets
 *   such a device be opened for writing and refuses the writes later, so an
 *   open test cannot see it; sysfs can (`/sys/dev/block/MAJ:MIN/ro`).
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
  const device = Deno.openSync(path, { read: true });
  try {
    return device.seekSync(0, Deno.SeekMode.End);
  } finally {
    device.close();
  }
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

/**
 * Whether the Linux block device with device number `rdev` (from `stat`) is
 * read-only, from `/sys/dev/block/MAJ:MIN/ro`. `false` where sysfs does not
 * say (another OS, no /sys): the first write then fails as an I/O error.
 */
export function isReadOnlyDevice(rdev: bigint): boolean {
  // Linux's dev_t encoding (new_encode_dev): 12 + 20 bits of major, 20 + 12 of minor.
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  try {
    return fs.readFileSync(`/sys/dev/block/${major}:${minor}/ro`, "utf8").trim() === "1";
  } catch {
    return false;
  }
}
