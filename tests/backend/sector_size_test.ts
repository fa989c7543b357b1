import assert from "node:assert/strict";
import { validateSectorSize } from "../../src/backend/sector_size.ts";
import { blkError } from "./file_fixtures.ts";

Deno.test("sectorsize defaults to 512/512 and the physical size to the logical one", () => {
  assert.deepEqual(validateSectorSize(), { logical: 512, physical: 512 });
  assert.deepEqual(validateSectorSize(4096), { logical: 4096, physical: 4096 });
  assert.deepEqual(validateSectorSize(512, 4096), { logical: 512, physical: 4096 });
});

Deno.test("sectorsize accepts powers of two with 512 <= logical <= physical", () => {
  for (let logical = 512; logical <= 64 * 1024; logical *= 2) {
    for (let physical = logical; physical <= 64 * 1024; physical *= 2) {
      assert.deepEqual(validateSectorSize(logical, physical), { logical, physical });
    }
  }
});

Deno.test("sectorsize rejects what ACRN rejects, naming the value", () => {
  const cases: [number, number | undefined, RegExp][] = [
    [256, undefined, /logical block size 256 is smaller than 512/],
    [256, 512, /logical block size 256 is smaller than 512/],
    [1000, undefined, /logical block size 1000 is not a power of two/],
    [0, undefined, /logical block size 0 is not a power of two/],
    [-512, undefined, /logical block size -512 is not a power of two/],
    [512.5, undefined, /logical block size 512.5 is not a power of two/],
    [NaN, undefined, /logical block size NaN is not a power of two/],
    [512, 1000, /physical block size 1000 is not a power of two/],
    [512, 0, /physical block size 0 is not a power of two/],
    [4096, 512, /logical block size 4096 is larger than the physical block size 512/],
    [2 ** 32, undefined, /logical block size 4294967296 is larger than 2147483648/],
    [512, 2 ** 40, /physical block size 1099511627776 is larger than 2147483648/],
  ];
  for (const [logical, physical, message] of cases) {
    assert.throws(
      () => validateSectorSize(logical, physical),
      blkError("INVALID_CONFIG", message),
      `sectorsize=${logical}/${physical}`,
    );
  }
});
