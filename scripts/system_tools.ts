/**
 * The system programs the tests use, and the Debian package each comes from:
 * the one list both the test command (`npm test`, which installs what is
 * missing when it runs as root) and the tests (which are skipped, with the
 * program named, where one cannot be had) read.
 *
 * Plain `node:` modules only: the tests that import this also run on Node.
 *
 * @module
 */

import { accessSync, constants } from "node:fs";
import process from "node:process";

/** Program name → the Debian (bookworm) package that provides it. */
export const SYSTEM_TOOLS = {
  // Real disk images and what real tools say about them (tests/guest, tests/backend).
  "mkfs.ext4": "e2fsprogs",
  "mkfs.ext2": "e2fsprogs",
  "mkfs.ext3": "e2fsprogs",
  "dumpe2fs": "e2fsprogs",
  "debugfs": "e2fsprogs",
  "e2fsck": "e2fsprogs",
  "blkid": "util-linux",
  "lsblk": "util-linux",
  "sfdisk": "fdisk",
  "fdisk": "fdisk",
  "losetup": "mount",
  "partx": "util-linux",
  "mount": "mount",
  // The real Linux guest (scripts/guest, tests/vhost_user/guest_test.ts).
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-img": "qemu-utils",
  "fio": "fio",
  "busybox": "busybox-static",
  "modprobe": "kmod",
  "depmod": "kmod",
  "cpio": "cpio",
  "xz": "xz-utils",
  // Packed into the guest: busybox's blkdiscard has no -z (WRITE_ZEROES).
  "blkdiscard": "util-linux",
  // Media that fail, hang or hold requests on demand: a FUSE file served by
  // nbdkit (tests/helpers/nbd_medium.ts).
  "nbdkit": "nbdkit",
  "nbdfuse": "libnbd-bin",
  "fusermount3": "fuse3",
  // The NBD server the NBD client is tested against (tests/nbd) besides
  // nbdkit: qemu-nbd serves raw and qcow2 images (qemu-img makes them).
  "qemu-nbd": "qemu-utils",
  // The browser build and the web page, driven by playwright-core (tests/browser).
  "chromium": "chromium",
} as const;

/** A program the tests may need. */
export type SystemTool = keyof typeof SYSTEM_TOOLS;

/** Where programs are looked for: `PATH`, plus the sbin directories a non-root `PATH` lacks. */
function searchPath(): string[] {
  const path = (process.env.PATH ?? "").split(":").filter((dir) => dir !== "");
  for (const dir of ["/usr/local/sbin", "/usr/sbin", "/sbin"]) {
    if (!path.includes(dir)) path.push(dir);
  }
  return path;
}

/** The path of executable `command`, or undefined when it is not installed. */
export function findCommand(command: string): string | undefined {
  for (const dir of searchPath()) {
    const candidate = `${dir}/${command}`;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The programs of `tools` that are not installed. */
export function missingTools(tools: readonly SystemTool[]): SystemTool[] {
  return tools.filter((tool) => findCommand(tool) === undefined);
}

/** The Debian packages that provide `tools`, each once. */
export function packagesFor(tools: readonly SystemTool[]): string[] {
  return [...new Set(tools.map((tool) => SYSTEM_TOOLS[tool]))];
}

/** "sfdisk, fdisk (Debian package fdisk)": what is missing, and where it comes from. */
export function describeMissing(tools: readonly SystemTool[]): string {
  const packages = packagesFor(tools);
  return `${tools.join(", ")} (Debian package${packages.length > 1 ? "s" : ""} ${
    packages.join(", ")
  })`;
}
