/**
 * ACRN's `range=<start>/<size>`: the window of a medium a device sees,
 * counted in logical sectors, as a byte window. The same rule for every
 * medium (a file, an NBD export); each checks that the window lies inside
 * it.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";

/**
 * The byte window `[offset, end)` of a `range=` counted in `logical`-byte blocks.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a negative or fractional
 *   number, a zero size, or a window ending beyond 2^53 bytes
 */
export function rangeBytes(
  range: { readonly start: number; readonly size: number },
  logical: number,
): { offset: number; end: number } {
  const { start, size } = range;
  for (const [name, value] of [["start", start], ["size", size]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `range ${name} ${value} must be a whole number of ${logical}-byte sectors`,
      );
    }
  }
  if (size === 0) {
    throw new VirtioBlkError("INVALID_CONFIG", `range=${start}/0 gives a zero-size device`);
  }
  const offset = start * logical;
  const end = (start + size) * logical;
  if (!Number.isSafeInteger(end)) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `range=${start}/${size} of ${logical}-byte sectors ends beyond 2^53 bytes`,
    );
  }
  return { offset, end };
}
