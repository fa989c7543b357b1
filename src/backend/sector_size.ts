/**
 * The `sectorsize=<logical>[/<physical>]` rule of ACRN's block interface:
 * both sizes are powers of two, the logical size is at least 512 bytes and
 * at most the physical size. The device reports the logical size as
 * `blk_size` and log2(physical / logical) as `physical_block_exp`
 * (virtio 1.2 §5.2.4); `range=` counts logical sectors.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";

/** The virtio sector, and the smallest logical block ACRN accepts. */
export const MIN_LOGICAL_BLOCK_SIZE = 512;

/** Logical and physical block sizes in bytes. */
export interface SectorSize {
  readonly logical: number;
  readonly physical: number;
}

/**
 * Checks a `sectorsize=` pair and returns it with its defaults filled in
 * (logical 512, physical = logical).
 *
 * @param logical logical block size in bytes (default 512)
 * @param physical physical block size in bytes (default `logical`)
 * @throws {VirtioBlkError} `INVALID_CONFIG` naming the bad value
 *
 * @example
 * ```ts
 * validateSectorSize(512, 4096); // { logical: 512, physical: 4096 }
 * validateSectorSize(4096, 512); // throws: logical larger than physical
 * ```
 */
export function validateSectorSize(
  logical: number = MIN_LOGICAL_BLOCK_SIZE,
  physical: number = logical,
): SectorSize {
  for (const [name, value] of [["logical", logical], ["physical", physical]] as const) {
    if (!isPowerOfTwo(value)) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `sectorsize: ${name} block size ${value} is not a power of two`,
      );
    }
    if (value > MAX_BLOCK_SIZE) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `sectorsize: ${name} block size ${value} is larger than ${MAX_BLOCK_SIZE}`,
      );
    }
  }
  if (logical < MIN_LOGICAL_BLOCK_SIZE) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `sectorsize: logical block size ${logical} is smaller than ${MIN_LOGICAL_BLOCK_SIZE}`,
    );
  }
  if (logical > physical) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `sectorsize: logical block size ${logical} is larger than the physical block size ${physical}`,
    );
  }
  return { logical, physical };
}

/** The largest power of two a u32 holds: `blk_size` is a u32 config field (§5.2.4). */
const MAX_BLOCK_SIZE = 2 ** 31;

function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && value === 2 ** Math.round(Math.log2(value));
}
