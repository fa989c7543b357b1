/**
 * What makes an export usable, and when a reconnection's export may stand
 * in for the one a device was built on.
 */

import assert from "node:assert/strict";
import { VirtioBlkError } from "../../src/errors.ts";
import {
  DEFAULT_BLOCK_SIZES,
  describeExport,
  exportChange,
  maxTransfer,
  type NbdExport,
} from "../../src/nbd/export_info.ts";
import { TransmissionFlag as Flag } from "../../src/nbd/protocol.ts";

const ALL = Flag.HAS_FLAGS | Flag.SEND_FLUSH | Flag.SEND_FUA | Flag.SEND_TRIM |
  Flag.SEND_WRITE_ZEROES | Flag.CAN_MULTI_CONN;

function exportOf(size: number, flags: number, sizes = DEFAULT_BLOCK_SIZES): NbdExport {
  return describeExport("nbd://h/x", "x", size, flags, true, sizes, "go");
}

Deno.test("the transmission flags become what the export offers", () => {
  const info = exportOf(1 << 20, ALL | Flag.ROTATIONAL);
  assert.ok(info.canFlush && info.canFua && info.canTrim && info.canWriteZeroes);
  assert.ok(info.canMultiConn && info.rotational && !info.readOnly);
  const bare = exportOf(1 << 20, Flag.HAS_FLAGS | Flag.READ_ONLY);
  assert.ok(bare.readOnly && !bare.canFlush && !bare.canFua && !bare.canTrim && !bare.canMultiConn);
});

Deno.test("reads and writes are split at the maximum payload, at most 32 MiB, in whole blocks", () => {
  const sized = (minimumBlock: number, maximumPayload: number) =>
    exportOf(1 << 20, ALL, {
      minimumBlock,
      preferredBlock: 4096,
      maximumPayload,
      blockSizeAdvertised: true,
    });
  assert.equal(maxTransfer(exportOf(1 << 20, ALL)), 1 << 25);
  assert.equal(
    maxTransfer(sized(1, 0xffffffff)),
    1 << 25,
    "a server's claim of more is not trusted",
  );
  assert.equal(maxTransfer(sized(512, 65536)), 65536);
  assert.equal(maxTransfer(sized(1, 1_000_000)), 999_936, "rounded down to 512");
  assert.equal(maxTransfer(sized(4096, 1_000_000)), 999_424, "rounded down to the minimum block");
});

Deno.test("a reconnection must find the same size, every operation offered before, no stricter sizes", () => {
  const before = exportOf(1 << 20, ALL);
  assert.equal(exportChange(before, exportOf(1 << 20, ALL), true), undefined);
  assert.equal(
    exportChange(before, exportOf(1 << 20, ALL | Flag.SEND_CACHE), true),
    undefined,
    "more is fine",
  );
  assert.equal(
    exportChange(before, exportOf(2 << 20, ALL), false),
    "the export size changed from 1048576 to 2097152 bytes",
  );
  assert.equal(
    exportChange(before, exportOf(1 << 20, ALL | Flag.READ_ONLY), false),
    "the export became read-only",
  );
  assert.equal(
    exportChange(exportOf(1 << 20, ALL | Flag.READ_ONLY), exportOf(1 << 20, ALL), false),
    undefined,
    "a read-only export becoming writable loses nothing",
  );
  for (
    const [flag, name] of [[Flag.SEND_FLUSH, "SEND_FLUSH"], [Flag.SEND_FUA, "SEND_FUA"], [
      Flag.SEND_TRIM,
      "SEND_TRIM",
    ], [Flag.SEND_WRITE_ZEROES, "SEND_WRITE_ZEROES"]] as const
  ) {
    assert.equal(
      exportChange(before, exportOf(1 << 20, ALL & ~flag), false),
      `the export no longer offers NBD_FLAG_${name}`,
    );
  }
  const withoutMultiConn = exportOf(1 << 20, ALL & ~Flag.CAN_MULTI_CONN);
  assert.equal(
    exportChange(before, withoutMultiConn, false),
    undefined,
    "a lone connection does not need it",
  );
  assert.equal(
    exportChange(before, withoutMultiConn, true),
    "the export no longer offers NBD_FLAG_CAN_MULTI_CONN",
  );
  const strict = exportOf(1 << 20, ALL, {
    minimumBlock: 4096,
    preferredBlock: 4096,
    maximumPayload: 1 << 25,
    blockSizeAdvertised: true,
  });
  assert.equal(exportChange(before, strict, false), "the minimum block size grew from 1 to 4096");
  const small = exportOf(1 << 20, ALL, {
    minimumBlock: 1,
    preferredBlock: 4096,
    maximumPayload: 65536,
    blockSizeAdvertised: true,
  });
  assert.equal(
    exportChange(before, small, false),
    "the maximum payload shrank from 33554432 to 65536",
  );
});

Deno.test("an unusable export is refused with one line naming it", () => {
  const refused: [() => NbdExport, RegExp][] = [
    [() => exportOf(1000, ALL), /the export size 1000 bytes is not a multiple of 512/],
    [
      () => describeExport("nbd://h/x", "x", undefined, ALL, true, DEFAULT_BLOCK_SIZES, "go"),
      /2\^53 bytes or more/,
    ],
    [() => exportOf(512, ALL & ~Flag.HAS_FLAGS), /lack NBD_FLAG_HAS_FLAGS/],
    [
      () =>
        exportOf(512, ALL, {
          minimumBlock: 1 << 17,
          preferredBlock: 1 << 17,
          maximumPayload: 1 << 20,
          blockSizeAdvertised: true,
        }),
      /minimum block size 131072 is not a power of two up to 65536/,
    ],
    [
      () =>
        exportOf(512, ALL, {
          minimumBlock: 4096,
          preferredBlock: 2048,
          maximumPayload: 1 << 20,
          blockSizeAdvertised: true,
        }),
      /preferred block size 2048 is not a power of two of at least 4096/,
    ],
  ];
  for (const [make, message] of refused) {
    assert.throws(make, (error: unknown) => {
      assert.ok(error instanceof VirtioBlkError);
      assert.equal(error.code, "BAD_BACKING_FILE");
      assert.match(error.message, /^nbd:\/\/h\/x: /);
      assert.match(error.message, message);
      return true;
    });
  }
});
