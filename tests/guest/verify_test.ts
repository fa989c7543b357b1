import assert from "node:assert/strict";
import { crc32c } from "../../src/guest/probe/crc32.ts";
import {
  checkBlock,
  expectedBlock,
  VERIFY_MAGIC,
  VerifyHeader,
  VerifyStatus,
  type VerifyStatusCode,
} from "../../src/guest/jobs/verify.ts";

const BS = 4096;

function check(
  block: Uint8Array,
  address: number,
  seed: number,
  generation: number,
  blockSize = block.length,
): VerifyStatusCode {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  return checkBlock(block, view, 0, blockSize, address, seed, generation);
}

Deno.test("verify: a block carries its magic, checksum, address, seed, generation and size where documented", () => {
  const address = 5 * 2 ** 32 + 8192; // above 4 GiB: both address words matter
  const block = expectedBlock(address, 77, 3, BS);
  const view = new DataView(block.buffer);
  assert.equal(new TextDecoder().decode(block.subarray(0, 4)), "VBLK");
  assert.equal(view.getUint32(VerifyHeader.MAGIC, true), VERIFY_MAGIC);
  assert.equal(view.getUint32(VerifyHeader.CRC, true), crc32c(block, 8, BS));
  assert.equal(view.getUint32(VerifyHeader.ADDRESS, true), 8192);
  assert.equal(view.getUint32(VerifyHeader.ADDRESS + 4, true), 5);
  assert.equal(view.getUint32(VerifyHeader.SEED, true), 77);
  assert.equal(view.getUint32(VerifyHeader.GENERATION, true), 3);
  assert.equal(view.getUint32(VerifyHeader.BLOCK_SIZE, true), BS);
  assert.equal(view.getUint32(VerifyHeader.RESERVED, true), 0);
  assert.equal(check(block, address, 77, 3), VerifyStatus.OK);
  assert.equal(check(block, address, 77, 0), VerifyStatus.OK); // any generation
});

Deno.test("verify: payloads differ between addresses, generations and seeds", () => {
  const payload = (address: number, seed: number, generation: number) =>
    expectedBlock(address, seed, generation, 512).subarray(VerifyHeader.SIZE).join();
  const seen = new Set([
    payload(0, 1, 1),
    payload(512, 1, 1),
    payload(0, 1, 2),
    payload(0, 2, 1),
    payload(2 ** 41, 1, 1),
  ]);
  assert.equal(seen.size, 5);
});

Deno.test("verify: each kind of damage is told apart", () => {
  const good = () => expectedBlock(40960, 9, 2, BS);
  const flip = (at: number) => {
    const block = good();
    block[at] ^= 0x10;
    return block;
  };
  assert.equal(check(flip(VerifyHeader.MAGIC), 40960, 9, 2), VerifyStatus.BAD_MAGIC);
  assert.equal(check(flip(BS - 1), 40960, 9, 2), VerifyStatus.BAD_CRC);
  assert.equal(check(flip(VerifyHeader.SIZE), 40960, 9, 2), VerifyStatus.BAD_CRC);
  assert.equal(check(flip(VerifyHeader.ADDRESS), 40960, 9, 2), VerifyStatus.BAD_CRC);
  assert.equal(check(good(), 45056, 9, 2), VerifyStatus.BAD_ADDRESS); // another block's data
  assert.equal(check(good(), 40960, 10, 2), VerifyStatus.BAD_SEED);
  assert.equal(check(good(), 40960, 9, 3), VerifyStatus.STALE_GENERATION);
  assert.equal(check(new Uint8Array(BS), 40960, 9, 0), VerifyStatus.BAD_MAGIC); // never written
  // Read with another bs: the header says 4096, the reader expects 512.
  assert.equal(check(good().subarray(0, 512), 40960, 9, 2, 512), VerifyStatus.BAD_BLOCK_SIZE);
});
