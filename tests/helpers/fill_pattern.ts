/** The data of the "write-all" test-guest job. */

/** The byte a "write-all" job puts at disk offset `offset`. */
export function fillByte(offset: number, seed: number): number {
  return (Math.floor(offset / 512) * 13 + (offset % 512) + seed) & 0xff;
}
