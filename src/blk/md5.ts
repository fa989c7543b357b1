/**
 * MD5 (RFC 1321), in plain TypeScript: ACRN derives a disk's default serial
 * from the MD5 digest of its option string (`src/blk/serial.ts`), and the
 * core must run where no `node:crypto` exists (a browser's WebCrypto has no
 * MD5). Only for that: MD5 is not a secure hash.
 *
 * @module
 */

/** Left rotations: four per round, used in turn (RFC 1321 §3.4). */
const SHIFTS = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];

/** T[i] = floor(2^32 × |sin(i + 1)|) (RFC 1321 §3.4). */
const SINES = Array.from(
  { length: 64 },
  (_, i) => Math.floor(2 ** 32 * Math.abs(Math.sin(i + 1))) >>> 0,
);

/** Bytes in one MD5 block. */
const BLOCK = 64;

/** The 16-byte MD5 digest of `input` (a string is hashed as its UTF-8 bytes). */
export function md5(input: string | Uint8Array): Uint8Array {
  const data = typeof input === "string" ? new TextEncoder().encode(input) : input;
  // §3.1–3.2: a 1 bit, zeros to 56 mod 64 bytes, then the bit length as a little-endian u64.
  const padded = new Uint8Array(Math.ceil((data.length + 9) / BLOCK) * BLOCK);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  const bits = data.length * 8;
  view.setUint32(padded.length - 8, bits >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bits / 2 ** 32), true);

  // §3.3: the initial buffer A, B, C, D.
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  const m = new Uint32Array(16);
  for (let block = 0; block < padded.length; block += BLOCK) {
    for (let i = 0; i < 16; i++) m[i] = view.getUint32(block + 4 * i, true);
    let a = a0, b = b0, c = c0, d = d0;
    // §3.4: four rounds of 16 operations, with F, G, H and I and their word orders.
    for (let i = 0; i < 64; i++) {
      let f: number, g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const sum = (a + f + SINES[i] + m[g]) | 0;
      const shift = SHIFTS[i >>> 4][i & 3];
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << shift) | (sum >>> (32 - shift)))) | 0;
    }
    a0 = (a0 + a) | 0;
    b0 = (b0 + b) | 0;
    c0 = (c0 + c) | 0;
    d0 = (d0 + d) | 0;
  }
  // §3.5: the digest is A, B, C, D, low-order byte first.
  const digest = new Uint8Array(16);
  const out = new DataView(digest.buffer);
  [a0, b0, c0, d0].forEach((word, i) => out.setUint32(4 * i, word >>> 0, true));
  return digest;
}
