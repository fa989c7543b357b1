/**
 * The two file backends (Deno.FsFile and node:fs positional I/O) meet the
 * same specification: every test runs against both.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import type { BlockBackend } from "../../src/backend/backend.ts";
import { describeFile, type FileIo, type FileOptions } from "../../src/backend/file_spec.ts";
import { FsFileBackend } from "../../src/backend/fsfile_backend.ts";
import { NodeFsBackend } from "../../src/backend/node_fs_backend.ts";
import { openBackend } from "../../src/backend/backend.ts";
import {
  accessMode,
  assertUnchanged,
  blkError,
  descriptorFlags,
  equalBytes,
  IO_KINDS,
  KiB,
  MiB,
  openDescriptors,
  pattern,
  snapshot,
  TempDir,
} from "./file_fixtures.ts";

/** Guest memory as the executor hands it over: one view of a shared region. */
function guestMemory(bytes: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(bytes));
}

function open(path: string, io: FileIo, options: FileOptions = {}): BlockBackend {
  return openBackend(describeFile(path, { ...options, io }));
}

for (const io of IO_KINDS) {
  Deno.test(`${io}: openBackend opens the backend the spec names`, () => {
    using dir = new TempDir();
    const path = dir.file("disk.img", 64 * KiB);
    const backend = open(path, io);
    try {
      assert.ok(backend instanceof (io === "fsfile" ? FsFileBackend : NodeFsBackend));
      assert.equal(backend.size, 64 * KiB);
      assert.equal(backend.readOnly, false);
    } finally {
      backend.close();
    }
  });

  Deno.test(`${io}: writes land in the file and reads return them, at any buffer offset`, () => {
    using dir = new TempDir();
    const original = pattern(MiB, 10);
    const path = dir.file("disk.img", original);
    const backend = open(path, io);
    try {
      const memory = guestMemory(64 * KiB);
      const data = pattern(8 * KiB, 11);
      memory.set(data, 1000);
      backend.write(4096, memory, 1000, data.length);

      const expected = original.slice();
      expected.set(data, 4096);
      assert.ok(equalBytes(Deno.readFileSync(path), expected), "file holds the write");

      const before = memory.slice();
      backend.read(4096, memory, 20000, data.length);
      assert.ok(equalBytes(memory.subarray(20000, 20000 + data.length), data), "read returns it");
      assert.ok(equalBytes(memory.subarray(0, 20000), before.subarray(0, 20000)));
      assert.ok(equalBytes(memory.subarray(20000 + data.length), before.subarray(28192)));

      backend.read(MiB - 512, memory, 0, 512);
      assert.ok(equalBytes(memory.subarray(0, 512), original.subarray(MiB - 512)), "last sector");
      backend.read(0, memory, 0, 0);
      backend.write(0, memory, 0, 0);
      backend.flush();
    } finally {
      backend.close();
    }
  });

  Deno.test(`${io}: random reads and writes agree with a model of the disk`, () => {
    using dir = new TempDir();
    const model = pattern(256 * KiB, 12);
    const path = dir.file("disk.img", model);
    const backend = open(path, io);
    const memory = guestMemory(128 * KiB);
    let seed = 0x9e3779b9;
    const random = (limit: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % limit;
    };
    try {
      for (let i = 0; i < 500; i++) {
        const length = 1 + random(64 * KiB);
        const offset = random(model.length - length + 1);
        const at = random(memory.length - length + 1);
        if (random(2) === 0) {
          memory.set(pattern(length, i), at);
          backend.write(offset, memory, at, length);
          model.set(memory.subarray(at, at + length), offset);
        } else {
          backend.read(offset, memory, at, length);
          assert.ok(
            equalBytes(memory.subarray(at, at + length), model.subarray(offset, offset + length)),
            `read ${i} at ${offset}, ${length} bytes`,
          );
        }
      }
      backend.flush();
    } finally {
      backend.close();
    }
    assert.ok(equalBytes(Deno.readFileSync(path), model), "file equals the model");
  });

  Deno.test(`${io}: a read past end of file (truncated under the device) is SHORT_TRANSFER`, () => {
    using dir = new TempDir();
    const original = pattern(64 * KiB, 13);
    const path = dir.file("disk.img", original);
    const backend = open(path, io);
    try {
      Deno.truncateSync(path, 8 * KiB);
      const memory = guestMemory(16 * KiB).fill(0xee);
      assert.throws(
        () => backend.read(8 * KiB, memory, 0, 512),
        blkError("SHORT_TRANSFER", /read of 512 bytes at device offset 8192 .* after 0 bytes/),
      );
      assert.throws(
        () => backend.read(4 * KiB, memory, 0, 8 * KiB),
        blkError(
          "SHORT_TRANSFER",
          /read of 8192 bytes .* stopped after 4096 bytes \(end of file\)/,
        ),
      );
      backend.read(0, memory, 0, 8 * KiB);
      assert.ok(equalBytes(memory.subarray(0, 8 * KiB), original.subarray(0, 8 * KiB)));
    } finally {
      backend.close();
    }
  });

  Deno.test(`${io}: range= keeps every access inside its window`, () => {
    using dir = new TempDir();
    const original = pattern(64 * KiB, 14);
    const path = dir.file("disk.img", original);
    // Sectors 16..47: bytes [8 KiB, 24 KiB) of the file.
    const backend = open(path, io, { range: { start: 16, size: 32 } });
    const windowStart = 8 * KiB;
    const windowEnd = 24 * KiB;
    try {
      assert.equal(backend.size, 16 * KiB);
      const memory = guestMemory(64 * KiB);
      backend.read(0, memory, 0, backend.size);
      assert.ok(
        equalBytes(memory.subarray(0, backend.size), original.subarray(windowStart, windowEnd)),
        "the device's byte 0 is the window's first byte",
      );

      const data = pattern(backend.size, 15);
      memory.set(data);
      backend.write(0, memory, 0, data.length);
      const written = Deno.readFileSync(path);
      assert.ok(equalBytes(written.subarray(windowStart, windowEnd), data));
      assert.ok(equalBytes(written.subarray(0, windowStart), original.subarray(0, windowStart)));
      assert.ok(equalBytes(written.subarray(windowEnd), original.subarray(windowEnd)));

      const before = snapshot(path);
      const outside: [number, number][] = [
        [backend.size - 512, 1024], // crosses the end
        [backend.size, 512], // starts at the end
        [backend.size + 512, 512],
        [-512, 1024], // before the start
        [0, backend.size + 1],
        [Number.MAX_SAFE_INTEGER, 512],
        [0.5, 512],
      ];
      for (const [offset, length] of outside) {
        assert.throws(
          () => backend.write(offset, memory, 0, length),
          blkError("SHORT_TRANSFER", /lies beyond the 16384 bytes/),
          `write at ${offset}`,
        );
        memory.fill(0xee);
        assert.throws(
          () => backend.read(offset, memory, 0, length),
          blkError("SHORT_TRANSFER", /lies beyond the 16384 bytes/),
          `read at ${offset}`,
        );
        assert.ok(memory.every((byte) => byte === 0xee), "a refused read fills nothing");
      }
      assertUnchanged(path, before);
    } finally {
      backend.close();
    }
  });

  Deno.test(`${io}: ro opens read-only, refuses writes, and leaves bytes and mtime alone`, () => {
    using dir = new TempDir();
    const original = pattern(64 * KiB, 16);
    const path = dir.file("disk.img", original);
    const before = snapshot(path);
    const backend = open(path, io, { readOnly: true });
    try {
      assert.equal(backend.readOnly, true);
      const [fd] = openDescriptors(path);
      assert.equal(accessMode(fd), fs.constants.O_RDONLY);
      const memory = guestMemory(8 * KiB).fill(0x55);
      assert.throws(
        () => backend.write(0, memory, 0, 4096),
        blkError("IO_ERROR", /disk\.img, which is open read-only/),
      );
      backend.read(4096, memory, 0, 4096);
      assert.ok(equalBytes(memory.subarray(0, 4096), original.subarray(4096, 8192)));
      backend.flush();
    } finally {
      backend.close();
    }
    assertUnchanged(path, before);
  });

  Deno.test(`${io}: a writable backend holds one read/write descriptor, closed by close()`, () => {
    using dir = new TempDir();
    const path = dir.file("disk.img", 64 * KiB);
    const backend = open(path, io);
    const fds = openDescriptors(path);
    assert.equal(fds.length, 1, "describeFile closed everything it opened");
    assert.equal(accessMode(fds[0]), fs.constants.O_RDWR);
    assert.equal(descriptorFlags(fds[0]) & fs.constants.O_DIRECT, 0);
    backend.close();
    assert.deepEqual(openDescriptors(path), []);
    backend.close();
    const memory = guestMemory(512);
    assert.throws(() => backend.read(0, memory, 0, 512), blkError("CLOSED", /disk\.img/));
    assert.throws(() => backend.write(0, memory, 0, 512), blkError("CLOSED", /closed/));
    assert.throws(() => backend.flush(), blkError("CLOSED", /closed/));
  });

  Deno.test(`${io}: a buffer range outside the guest-memory view is refused before any I/O`, () => {
    using dir = new TempDir();
    const path = dir.file("disk.img", pattern(64 * KiB, 17));
    const before = snapshot(path);
    const backend = open(path, io);
    try {
      const memory = guestMemory(4096);
      assert.throws(() => backend.write(0, memory, 3584, 1024), RangeError);
      assert.throws(() => backend.read(0, memory, -1, 512), RangeError);
      assert.throws(() => backend.read(0, memory, 4096, 1), RangeError);
    } finally {
      backend.close();
    }
    assertUnchanged(path, before);
  });

  Deno.test(`${io}: a file gone between describeFile and open is BAD_BACKING_FILE, not recreated`, () => {
    using dir = new TempDir();
    const path = dir.file("disk.img", 64 * KiB);
    const spec = describeFile(path, { io });
    Deno.removeSync(path);
    assert.throws(
      () => openBackend(spec),
      blkError("BAD_BACKING_FILE", /disk\.img does not exist/),
    );
    assert.deepEqual(dir.list(), []);
  });
}
