import assert from "node:assert/strict";
import fc from "fast-check";
import { crc32, CRC32_POLYNOMIAL, crc32c, CRC32C_POLYNOMIAL } from "../../src/guest/probe/crc32.ts";

/** The definition, one bit at a time: a reference that shares no code with the tables. */
function bitwise(polynomial: number, bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ polynomial : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const CHECK = new TextEncoder().encode("123456789");

Deno.test("crc32: the catalogued check values of CRC-32 and CRC-32C", () => {
  assert.equal(crc32(CHECK), 0xcbf43926);
  assert.equal(crc32c(CHECK), 0xe3069283);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  // RFC 3720 B.4: 32 bytes of zeros and of 0xFF.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
});

Deno.test("crc32: any range of any bytes equals the bit-by-bit definition", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.nat(),
      fc.nat(),
      (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (b % (bytes.length - start + 1));
        const range = bytes.subarray(start, end);
        assert.equal(crc32(bytes, start, end), bitwise(CRC32_POLYNOMIAL, range));
        assert.equal(crc32c(bytes, start, end), bitwise(CRC32C_POLYNOMIAL, range));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("crc32: continuing from an earlier result equals one pass over the whole", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (bytes, cut) => {
      const at = cut % (bytes.length + 1);
      assert.equal(crc32c(bytes, at, bytes.length, crc32c(bytes, 0, at)), crc32c(bytes));
      assert.equal(crc32(bytes, at, bytes.length, crc32(bytes, 0, at)), crc32(bytes));
    }),
  );
});
