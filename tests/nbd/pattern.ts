/**
 * Test data that says where it belongs: the byte for absolute export
 * offset `offset` depends on the offset and a seed, so data read from the
 * wrong place, written to the wrong place, or left stale does not match.
 */

/** The byte the pattern of `seed` has at export offset `offset`. */
export function patternByte(offset: number, seed: number): number {
  return (Math.imul(offset | 0, 2654435761) >>> 24) ^ (Math.imul(seed + 1, 0x9e37) & 0xff);
}

/** `length` bytes of the pattern of `seed`, from export offset `offset`. */
export function pattern(offset: number, length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = patternByte(offset + i, seed);
  return bytes;
}

/** The first offset (relative to the start) where `actual` and `expected` differ, or -1. */
export function firstDifference(actual: Uint8Array, expected: Uint8Array): number {
  if (actual.length !== expected.length) return Math.min(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) return i;
  return -1;
}
