/**
 * The front-end's guest memory as the back end holds it: each region of
 * SET_MEM_TABLE / ADD_MEM_REG mapped from the fd that came with it, and the
 * two translations a vhost-user back end needs (reference §7.2):
 * - ring addresses (SET_VRING_ADDR) are the front-end's *user* addresses;
 *   {@linkcode RegionTable.userToGuest} turns them into guest-physical ones;
 * - buffer addresses in descriptors are guest-physical: the
 *   {@linkcode MappedGuestMemory} built by {@linkcode RegionTable.guestMemory}
 *   resolves them like any other guest memory.
 *
 * A table is immutable: adding or removing a region gives a new table, so a
 * device keeps using the old one until it is closed, and only then are the
 * regions that left unmapped.
 *
 * Only memory files sealed against shrinking (F_SEAL_SHRINK) are mapped.
 * The front end shares the file and could `ftruncate` it at any time; the
 * next touch of a page past the new end raises SIGBUS and kills the back
 * end. Surviving that fault instead would need a SIGBUS handler that skips
 * the faulting access, which JavaScript code cannot have. QEMU's
 * `memory-backend-memfd` seals its memfds (its `seal=on` default);
 * `memory-backend-file` (a file on /dev/shm or hugetlbfs) cannot be sealed
 * and is refused with a log line that says so.
 *
 * @module
 */

import { MappedGuestMemory } from "./mapped_memory.ts";
import { closeFd, Sys } from "./libc.ts";
import { fileSeals, fileSize, type Mapping, mapShared, unmap } from "./mapping.ts";
import type { RegionDescription } from "./messages.ts";

/** One mapped region of guest memory. */
export interface TableRegion {
  /** Guest-physical address of the region's first byte (descriptors address buffers by it). */
  readonly gpa: number;
  /** Bytes in the region. */
  readonly size: number;
  /** The front-end's address of the region's first byte. */
  readonly userAddress: number;
  /** Offset of the region in its file. */
  readonly mmapOffset: number;
  /** The mapping, from file offset 0 to mmapOffset + size. */
  readonly mapping: Mapping;
}

/** A region description the back end cannot use. */
export class RegionError extends Error {
  override name = "RegionError";
}

function safe(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RegionError(`${what} ${value} is beyond 2^53`);
  }
  return Number(value);
}

/**
 * Maps one region from the fd that came with its description. The fd is
 * closed in every case (the mapping keeps the file alive).
 *
 * @throws RegionError for an unusable description; OsError if mmap fails
 */
export function mapRegion(description: RegionDescription, fd: number): TableRegion {
  try {
    const gpa = safe(description.gpa, "region guest address");
    const size = safe(description.size, "region size");
    const userAddress = safe(description.userAddress, "region user address");
    const mmapOffset = safe(description.mmapOffset, "region mmap offset");
    if (size === 0) throw new RegionError(`region at GPA ${gpa} is empty`);
    for (const [end, what] of [[gpa, "guest"], [userAddress, "user"], [mmapOffset, "file"]]) {
      if (!Number.isSafeInteger((end as number) + size)) {
        throw new RegionError(`region at GPA ${gpa} ends beyond 2^53 in ${what} addresses`);
      }
    }
    if (mmapOffset % 4 !== 0) {
      throw new RegionError(`region at GPA ${gpa} has an unaligned mmap offset ${mmapOffset}`);
    }
    // A page of a shared mapping past the end of its file raises SIGBUS when
    // touched, which would kill the whole back end: the file must cover the
    // region now, and must not be shrunk later by the front end, which shares
    // it (ftruncate after ADD_MEM_REG). Only a seal makes the second hold.
    const seals = fileSeals(fd);
    if (seals === undefined || (seals & Sys.F_SEAL_SHRINK) === 0) {
      throw new RegionError(
        `region at GPA ${gpa}: its memory file is not sealed against shrinking ` +
          `(F_SEAL_SHRINK${seals === undefined ? ": the file cannot carry seals" : ""}), so ` +
          `the front end could truncate it under the back end; give QEMU guest RAM from ` +
          `-object memory-backend-memfd,share=on (sealed by default), not memory-backend-file`,
      );
    }
    const available = fileSize(fd);
    if (available !== undefined && mmapOffset + size > available) {
      throw new RegionError(
        `region at GPA ${gpa} reaches past the end of its file: it needs ` +
          `${mmapOffset + size} bytes, the file has ${available}`,
      );
    }
    const mapping = mapShared(fd, mmapOffset + size);
    return { gpa, size, userAddress, mmapOffset, mapping };
  } finally {
    closeFd(fd);
  }
}

/** Unmaps a region (once no device can touch it). */
export function unmapRegion(region: TableRegion): void {
  unmap(region.mapping);
}

function overlaps(aStart: number, aSize: number, bStart: number, bSize: number): boolean {
  return aStart < bStart + bSize && bStart < aStart + aSize;
}

/** An immutable set of mapped regions. */
export class RegionTable {
  /** The regions, sorted by guest-physical address. */
  readonly regions: readonly TableRegion[];

  /**
   * @param regions mapped regions that overlap neither in guest nor in user addresses
   * @throws RegionError when two overlap
   */
  constructor(regions: readonly TableRegion[] = []) {
    const sorted = [...regions].sort((a, b) => a.gpa - b.gpa);
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) {
        const a = sorted[i], b = sorted[j];
        if (overlaps(a.gpa, a.size, b.gpa, b.size)) {
          throw new RegionError(`regions at GPA ${a.gpa} and ${b.gpa} overlap`);
        }
        if (overlaps(a.userAddress, a.size, b.userAddress, b.size)) {
          throw new RegionError(`regions at GPA ${a.gpa} and ${b.gpa} overlap in user addresses`);
        }
      }
    }
    this.regions = sorted;
  }

  /** Whether the table has no region. */
  get empty(): boolean {
    return this.regions.length === 0;
  }

  /** This table plus `region` (throws RegionError on overlap). */
  with(region: TableRegion): RegionTable {
    return new RegionTable([...this.regions, region]);
  }

  /** The region matching `description` exactly (for REM_MEM_REG), if any. */
  find(description: RegionDescription): TableRegion | undefined {
    return this.regions.find((r) =>
      BigInt(r.gpa) === description.gpa && BigInt(r.size) === description.size &&
      BigInt(r.userAddress) === description.userAddress
    );
  }

  /** This table without `region`. */
  without(region: TableRegion): RegionTable {
    return new RegionTable(this.regions.filter((r) => r !== region));
  }

  /**
   * The guest-physical address of the front-end user address `address`, if
   * `[address, address + length)` lies in one region.
   */
  userToGuest(address: bigint, length: number): number | undefined {
    if (address > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const user = Number(address);
    for (const region of this.regions) {
      const offset = user - region.userAddress;
      if (offset >= 0 && length <= region.size && offset <= region.size - length) {
        return region.gpa + offset;
      }
    }
    return undefined;
  }

  /** New views of the regions on this thread, as the device's guest memory. */
  guestMemory(): MappedGuestMemory {
    return new MappedGuestMemory(this.regions.map((region) => ({
      gpa: region.gpa,
      size: region.size,
      hostAddress: region.mapping.address + BigInt(region.mmapOffset),
    })));
  }
}
