import { isDeno } from "../../src/runtime/is_deno.ts";
import assert from "node:assert/strict";
import { FILE_DRIVER } from "../../src/backend/file_driver.ts";
import { fileSpaceUnavailable } from "../../src/backend/file_space.ts";
import { describeFile, type FileOptions } from "../../src/backend/file_spec.ts";
import type { ErrorCode } from "../../src/errors.ts";
import {
  assertUnchanged,
  blkError,
  KiB,
  MiB,
  pattern,
  snapshot,
  TempDir,
  TmpfsMount,
  tmpfsUnavailable,
} from "./file_fixtures.ts";
import { skipWhen } from "../helpers/skip.ts";

/**
 * Asserts that describing `path` fails with `code` and a message naming
 * the path and matching `message`, and that nothing in `dir` was created,
 * changed or touched (for a regular file: same bytes, same mtime).
 */
function assertRejected(
  dir: TempDir,
  path: string,
  options: FileOptions,
  code: ErrorCode,
  message: RegExp,
): void {
  const names = dir.list();
  let before;
  try {
    if (Deno.statSync(path).isFile) before = snapshot(path);
  } catch {
    // Missing, or not something to compare.
  }
  assert.throws(() => describeFile(path, options), blkError(code, message));
  if (before) assertUnchanged(path, before);
  assert.deepEqual(dir.list(), names, "nothing is created or removed");
}

Deno.test("describeFile: a regular file becomes a whole-file, read-write spec", () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", pattern(MiB, 1));
  const before = snapshot(path);
  assert.deepEqual(describeFile(path), {
    module: FILE_DRIVER,
    kind: "file",
    name: path,
    // Holes are punched through FFI (Deno); zeros can be written everywhere.
    capabilities: {
      flush: true,
      discard: fileSpaceUnavailable() === undefined,
      writeZeroes: true,
      handles: "per-thread",
    },
    path,
    offset: 0,
    size: MiB,
    readOnly: false,
    io: isDeno() ? "fsfile" : "node-fs", // FsFile on Deno; positional node:fs elsewhere
    direct: false,
    aio: "threads",
    blockDevice: false,
  });
  assertUnchanged(path, before);
});

Deno.test("describeFile: a relative path is made absolute, so every worker opens the same file", () => {
  using dir = new TempDir();
  dir.file("disk.img", 4 * KiB);
  const cwd = Deno.cwd();
  Deno.chdir(dir.path);
  try {
    assert.equal(describeFile("disk.img").path, `${dir.path}/disk.img`);
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("describeFile: ro, io and nocache are carried into the spec", () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", 64 * KiB);
  assert.equal(describeFile(path, { readOnly: true }).readOnly, true);
  assert.equal(describeFile(path, { io: "node-fs" }).io, "node-fs");
  // Deno.FsFile exists only on Deno; Node refuses it (both runtimes check something).
  if (isDeno()) assert.equal(describeFile(path, { io: "fsfile" }).io, "fsfile");
  else assert.throws(() => describeFile(path, { io: "fsfile" }), /io "fsfile" needs Deno/);
  const direct = describeFile(path, { direct: true });
  assert.equal(direct.direct, true);
  assert.equal(direct.io, "node-fs", "nocache picks node:fs, the I/O that can pass O_DIRECT");
});

Deno.test("describeFile: range= counts logical sectors of the configured size", () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", MiB);
  const sectors512 = describeFile(path, { range: { start: 2, size: 3 } });
  assert.equal(sectors512.offset, 2 * 512);
  assert.equal(sectors512.size, 3 * 512);
  assert.equal(sectors512.windowed, true, "the window is part of the medium's name");
  const wholeWindow = describeFile(path, { range: { start: 0, size: MiB / 512 } });
  assert.equal(wholeWindow.windowed, true, "a range= over the whole file is still a range=");
  const sectors4k = describeFile(path, {
    range: { start: 2, size: 3 },
    logicalBlockSize: 4096,
    physicalBlockSize: 4096,
  });
  assert.equal(sectors4k.offset, 2 * 4096);
  assert.equal(sectors4k.size, 3 * 4096);
  const toTheEnd = describeFile(path, { range: { start: 255, size: 1 }, logicalBlockSize: 4096 });
  assert.equal(toTheEnd.offset + toTheEnd.size, MiB, "a window may end exactly at end of file");
});

Deno.test("describeFile: with range=, only the window must be whole sectors", () => {
  using dir = new TempDir();
  const path = dir.file("odd.img", 64 * KiB + 100);
  const spec = describeFile(path, { range: { start: 1, size: 127 } });
  assert.deepEqual([spec.offset, spec.size], [512, 127 * 512]);
});

Deno.test("describeFile: a missing file is named, and not created", () => {
  using dir = new TempDir();
  const missing = `${dir.path}/missing.img`;
  for (const readOnly of [false, true]) {
    assertRejected(dir, missing, { readOnly }, "BAD_BACKING_FILE", /missing\.img does not exist/);
  }
  const file = dir.file("file", 512);
  assertRejected(dir, `${file}/below`, {}, "BAD_BACKING_FILE", /file\/below does not exist/);
});

Deno.test("describeFile: a directory is rejected", () => {
  using dir = new TempDir();
  Deno.mkdirSync(`${dir.path}/sub`);
  assertRejected(dir, `${dir.path}/sub`, {}, "BAD_BACKING_FILE", /sub is a directory/);
});

Deno.test("describeFile: character devices, FIFOs and sockets are rejected without opening them", async () => {
  using dir = new TempDir();
  assert.throws(
    () => describeFile("/dev/null"),
    blkError(
      "BAD_BACKING_FILE",
      /\/dev\/null is a character device, not a regular file or block device/,
    ),
  );
  // Opening a FIFO for reading would block until a writer comes: the check
  // must decide from stat alone.
  const fifo = `${dir.path}/fifo`;
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(made.success, "mkfifo");
  assertRejected(dir, fifo, {}, "BAD_BACKING_FILE", /fifo is a FIFO, not a regular file/);
  const socketPath = `${dir.path}/socket`;
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  try {
    assertRejected(dir, socketPath, {}, "BAD_BACKING_FILE", /socket is a socket, not a regular/);
  } finally {
    listener.close();
  }
});

Deno.test("describeFile: an empty file or one of a size not a multiple of 512 is rejected", () => {
  using dir = new TempDir();
  assertRejected(dir, dir.file("empty.img", 0), {}, "BAD_BACKING_FILE", /empty\.img is empty/);
  assertRejected(
    dir,
    dir.file("odd.img", pattern(1000, 2)),
    {},
    "BAD_BACKING_FILE",
    /odd\.img \(1000 bytes\) is not a multiple of 512 bytes/,
  );
  assertRejected(
    dir,
    dir.file("odd_ro.img", pattern(MiB + 1, 3)),
    { readOnly: true },
    "BAD_BACKING_FILE",
    /odd_ro\.img \(1048577 bytes\) is not a multiple of 512 bytes/,
  );
});

Deno.test("describeFile: a range= outside the file, empty or malformed is rejected", () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", pattern(MiB, 4));
  const cases: [FileOptions, RegExp][] = [
    [
      { range: { start: 2040, size: 16 } },
      /range=2040\/16 \(bytes 1044480 to 1052672\) lies outside/,
    ],
    [{ range: { start: 2048, size: 1 } }, /range=2048\/1 .* lies outside .*1048576 bytes/],
    [{ range: { start: 0, size: 257 }, logicalBlockSize: 4096 }, /range=0\/257 .* lies outside/],
    [{ range: { start: 0, size: 0 } }, /range=0\/0 gives a zero-size device/],
    [
      { range: { start: -1, size: 8 } },
      /range start -1 must be a whole number of 512-byte sectors/,
    ],
    [{ range: { start: 0, size: 1.5 } }, /range size 1.5 must be a whole number/],
    [
      { range: { start: 2 ** 52, size: 8 } },
      /range=4503599627370496\/8 .* ends beyond 2\^53 bytes/,
    ],
  ];
  for (const [options, message] of cases) {
    assertRejected(dir, path, options, "INVALID_CONFIG", message);
  }
});

Deno.test("describeFile: a bad sectorsize= is rejected before the file is looked at", () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", pattern(64 * KiB, 5));
  assertRejected(dir, path, { logicalBlockSize: 256 }, "INVALID_CONFIG", /sectorsize: logical/);
  assertRejected(
    dir,
    path,
    { logicalBlockSize: 4096, physicalBlockSize: 512 },
    "INVALID_CONFIG",
    /sectorsize: logical block size 4096 is larger than the physical block size 512/,
  );
  assertRejected(dir, path, { physicalBlockSize: 3000 }, "INVALID_CONFIG", /3000 is not a power/);
});

Deno.test("describeFile: an io that cannot do what is asked is rejected", () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", pattern(64 * KiB, 6));
  assertRejected(
    dir,
    path,
    { io: "fsfile", direct: true },
    "INVALID_CONFIG",
    isDeno() ? /nocache \(O_DIRECT\) needs io "node-fs"/ : /io "fsfile" needs Deno/,
  );
  assertRejected(
    dir,
    path,
    { io: "aio" as "fsfile" },
    "INVALID_CONFIG",
    /io aio must be "fsfile" or "node-fs"/,
  );
});

const noTmpfs = tmpfsUnavailable();

Deno.test({
  name: "describeFile: a file that cannot be opened for writing needs ro",
  ignore: noTmpfs !== undefined,
  fn() {
    // As root, permission bits never refuse a write; a read-only mount does.
    using mount = new TmpfsMount(MiB);
    const path = `${mount.path}/disk.img`;
    Deno.writeFileSync(path, pattern(64 * KiB, 7));
    const before = snapshot(path);
    mount.remountReadOnly();
    assert.throws(
      () => describeFile(path),
      blkError("BAD_BACKING_FILE", /disk\.img is not writable \(.*\); use ro/),
    );
    assert.equal(describeFile(path, { readOnly: true }).size, 64 * KiB);
    assertUnchanged(path, before);
  },
});
skipWhen("the read-only mount test", noTmpfs);
