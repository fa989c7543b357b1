/** The blocks of the durability tests' write stream. */

/** Size of one block of the write stream. */
export const STREAM_BLOCK = 4096;

/**
 * The contents of block `index` written in round `round`: a header
 * (index, round) and bytes derived from both, so a reader can tell which
 * write a block holds and whether it is whole.
 */
export function streamBlock(index: number, round: number): Uint8Array {
  const block = new Uint8Array(STREAM_BLOCK);
  const view = new DataView(block.buffer);
  view.setUint32(0, index, true);
  view.setUint32(4, round, true);
  for (let i = 8; i < STREAM_BLOCK; i++) block[i] = (index * 7 + round * 131 + i) & 0xff;
  return block;
}
