/**
 * The plain-TypeScript MD5 behind default serials: RFC 1321's own test
 * suite (appendix A.5), and the same digests as `node:crypto` for every
 * length around the padding boundaries and for text beyond ASCII.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { md5 } from "../../src/blk/md5.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("md5: RFC 1321 appendix A.5 test suite", () => {
  const suite: [string, string][] = [
    ["", "d41d8cd98f00b204e9800998ecf8427e"],
    ["a", "0cc175b9c0f1b6a831c399e269772661"],
    ["abc", "900150983cd24fb0d6963f7d28e17f72"],
    ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
    ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
    [
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
      "d174ab98d277d9f5a5611c2c9f419d9f",
    ],
    [
      "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
      "57edf4a22be3c955ac49da2e2107b67a",
    ],
  ];
  for (const [input, digest] of suite) assert.equal(hex(md5(input)), digest, JSON.stringify(input));
});

Deno.test("md5: the same digest as node:crypto for 0 to 300 bytes and for UTF-8 text", () => {
  // Every length crosses the padding cases: room for the length in the last block or not.
  const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 151 + 7) & 0xff);
  for (let length = 0; length <= bytes.length; length++) {
    const input = bytes.subarray(0, length);
    assert.equal(hex(md5(input)), createHash("md5").update(input).digest("hex"), `${length} bytes`);
  }
  for (const text of ["/srv/disques/été.img,ro", "データ.img", "disk 🙂.img,serial=a b"]) {
    assert.equal(hex(md5(text)), createHash("md5").update(text).digest("hex"), text);
  }
});
