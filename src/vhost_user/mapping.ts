/**
 * Shared mappings of the front-end's memory files (mmap/munmap through
 * libc), and anonymous memory files for tests and tools.
 *
 * @module
 */

import { check, closeFd, cString, Errno, lastErrno, libc, OsError, Sys } from "./libc.ts";
import { regularFileSize, statBuffer } from "./sys_structs.ts";

/** One `mmap(MAP_SHARED)` of a file, from file offset 0. */
export interface Mapping {
  /** Host address of the mapping's first byte. */
  readonly address: bigint;
  /** Bytes mapped. */
  readonly length: number;
}

/**
 * Maps `length` bytes of `fd` from offset 0, shared and read-write. The fd
 * may be closed afterwards: the mapping keeps the file alive.
 *
 * @throws OsError when mmap fails (EACCES, ENODEV, ENOMEM…)
 */
export function mapShared(fd: number, length: number): Mapping {
  const pointer = libc().mmap(
    null,
    BigInt(length),
    Sys.PROT_READ | Sys.PROT_WRITE,
    Sys.MAP_SHARED,
    fd,
    0n,
  );
  const address = BigInt(Deno.UnsafePointer.value(pointer));
  // MAP_FAILED is (void *) -1.
  if (pointer === null || address === 0xffff_ffff_ffff_ffffn || address < 0n) {
    throw new OsError("mmap", lastErrno());
  }
  return { address, length };
}

/**
 * The size of `fd`'s file when it is a regular file (a memfd, a file on
 * tmpfs or hugetlbfs), else undefined (a device has no meaningful st_size).
 *
 * @throws OsError when fstat fails
 */
export function fileSize(fd: number): number | undefined {
  const stat = statBuffer();
  check("fstat", libc().fstat(fd, stat));
  return regularFileSize(stat);
}

/**
 * The seals of `fd` (F_GET_SEALS: F_SEAL_SHRINK and friends), or undefined
 * when the file cannot carry seals (EINVAL: a file that is not a memfd,
 * such as a file on /dev/shm or hugetlbfs).
 *
 * @throws OsError for any other failure
 */
export function fileSeals(fd: number): number | undefined {
  const seals = libc().fcntl(fd, Sys.F_GET_SEALS, 0);
  if (seals >= 0) return seals;
  const errno = lastErrno();
  if (errno === Errno.EINVAL) return undefined;
  throw new OsError("fcntl(F_GET_SEALS)", errno);
}

/** Unmaps a {@linkcode Mapping} (once nothing can touch it any more). */
export function unmap(mapping: Mapping): void {
  check(
    "munmap",
    libc().munmap(Deno.UnsafePointer.create(mapping.address), BigInt(mapping.length)),
  );
}

/**
 * Creates an anonymous memory file of `size` bytes (memfd_create +
 * ftruncate), sealed against shrinking and growing as QEMU's
 * memory-backend-memfd seals guest RAM, unless `sealed` is false.
 */
export function createMemoryFile(
  name: string,
  size: number,
  options: { sealed?: boolean } = {},
): number {
  const fd = check(
    "memfd_create",
    libc().memfd_create(cString(name), Sys.MFD_CLOEXEC | Sys.MFD_ALLOW_SEALING),
  );
  let failed = "";
  if (libc().ftruncate(fd, BigInt(size)) < 0) failed = "ftruncate";
  else if (
    (options.sealed ?? true) &&
    libc().fcntl(fd, Sys.F_ADD_SEALS, Sys.F_SEAL_SHRINK | Sys.F_SEAL_GROW) < 0
  ) failed = "fcntl(F_ADD_SEALS)";
  if (failed !== "") {
    const errno = lastErrno();
    closeFd(fd);
    throw new OsError(failed, errno);
  }
  return fd;
}
