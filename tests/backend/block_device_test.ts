/**
 * Block devices and partitions as backing files, on loop devices (root
 * only; every test is ignored, with the reason printed, where losetup
 * cannot attach one).
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { probeDeviceSize, seekDeviceSize } from "../../src/backend/block_device.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { openBackend } from "../../src/backend/backend.ts";
import {
  assertUnchanged,
  blkError,
  equalBytes,
  IO_KINDS,
  KiB,
  LoopDevice,
  loopDevicesUnavailable,
  MiB,
  partitionsUnavailable,
  pattern,
  snapshot,
  TempDir,
  writeMbr,
} from "./file_fixtures.ts";
import { skipWhen } from "../helpers/skip.ts";

const noLoop = loopDevicesUnavailable();
skipWhen("the block-device tests", noLoop);
/** Not a power of two, so the size search has to find a real boundary. */
const DEVICE_BYTES = MiB + 3 * 512;

const noPartitions = partitionsUnavailable();
if (!noLoop) skipWhen("the block-device partition test", noPartitions);

function test(name: string, fn: () => void, unavailable = noLoop): void {
  Deno.test({ name: `block device: ${name}`, ignore: unavailable !== undefined, fn });
}

// Seeking needs a Deno.FsFile: on Node this test is skipped, with its reason
// printed (tests/node/node_skips.ts), and devices are sized by probing (below).
test("fsfile: its size comes from seeking to the end (stat says 0)", () => {
  using dir = new TempDir();
  using loop = new LoopDevice(dir.file("disk.img", DEVICE_BYTES));
  assert.equal(fs.statSync(loop.path).size, 0, "stat gives no size for a block device");
  assert.equal(seekDeviceSize(loop.path), DEVICE_BYTES);
});

test("its size comes from probing (stat says 0), and describeFile uses it", () => {
  using dir = new TempDir();
  using loop = new LoopDevice(dir.file("disk.img", DEVICE_BYTES));
  assert.equal(fs.statSync(loop.path).size, 0, "stat gives no size for a block device");
  const fd = fs.openSync(loop.path, fs.constants.O_RDONLY);
  try {
    assert.equal(probeDeviceSize(fd), DEVICE_BYTES);
  } finally {
    fs.closeSync(fd);
  }
  const spec = describeFile(loop.path);
  assert.deepEqual([spec.path, spec.offset, spec.size], [loop.path, 0, DEVICE_BYTES]);
});

for (const io of IO_KINDS) {
  test(`${io}: writes reach the backing file and read back`, () => {
    using dir = new TempDir();
    const original = pattern(DEVICE_BYTES, 20);
    const file = dir.file("disk.img", original);
    const data = pattern(64 * KiB, 21);
    {
      using loop = new LoopDevice(file);
      const backend = openBackend(describeFile(loop.path, { io }));
      try {
        assert.equal(backend.size, DEVICE_BYTES);
        const memory = new Uint8Array(new SharedArrayBuffer(128 * KiB));
        memory.set(data, 4096);
        backend.write(DEVICE_BYTES - data.length, memory, 4096, data.length);
        backend.flush();
        backend.read(DEVICE_BYTES - data.length, memory, 64 * KiB, data.length);
        assert.ok(equalBytes(memory.subarray(64 * KiB), data));
        assert.throws(
          () => backend.read(DEVICE_BYTES - 512, memory, 0, 1024),
          blkError("SHORT_TRANSFER", /lies beyond/),
        );
      } finally {
        backend.close();
      }
    }
    const expected = original.slice();
    expected.set(data, DEVICE_BYTES - data.length);
    assert.ok(equalBytes(Deno.readFileSync(file), expected), "the backing file holds the write");
  });

  test(`${io}: range= on a device keeps to its window`, () => {
    using dir = new TempDir();
    const original = pattern(DEVICE_BYTES, 22);
    const file = dir.file("disk.img", original);
    const data = pattern(8 * KiB, 23);
    {
      using loop = new LoopDevice(file);
      const backend = openBackend(
        describeFile(loop.path, { io, range: { start: 1, size: 2 }, logicalBlockSize: 4096 }),
      );
      try {
        const memory = new Uint8Array(new SharedArrayBuffer(8 * KiB));
        memory.set(data);
        backend.write(0, memory, 0, data.length);
        backend.flush();
        assert.throws(
          () => backend.write(4096, memory, 0, 8 * KiB),
          blkError("SHORT_TRANSFER", /beyond the 8192 bytes/),
        );
      } finally {
        backend.close();
      }
    }
    const expected = original.slice();
    expected.set(data, 4096);
    assert.ok(equalBytes(Deno.readFileSync(file), expected), "only the window changed");
  });
}

test("a device holding an image's header is served as it is: only regular files are checked", () => {
  using dir = new TempDir();
  const bytes = new Uint8Array(MiB);
  bytes.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]); // "QFI\xfb", version 3: qcow2
  const file = dir.file("qcow2-header.img", bytes);
  assert.throws(() => describeFile(file), /is a qcow2 image/);
  using loop = new LoopDevice(file);
  // A volume may hold anything, a qcow2 image too (an LVM volume a VMM formats itself).
  assert.equal(describeFile(loop.path).size, MiB);
});

test("a partition is a device of its own, at its offset in the disk", () => {
  using dir = new TempDir();
  const disk = pattern(4 * MiB, 24);
  writeMbr(disk, 2048, 2048);
  const file = dir.file("disk.img", disk);
  const data = pattern(MiB, 25);
  {
    using loop = new LoopDevice(file);
    const partition = loop.addPartitions(1);
    const spec = describeFile(partition);
    assert.equal(spec.size, MiB);
    const backend = openBackend(spec);
    try {
      const memory = new Uint8Array(new SharedArrayBuffer(MiB));
      memory.set(data);
      backend.write(0, memory, 0, MiB);
      backend.flush();
    } finally {
      backend.close();
    }
  }
  const expected = disk.slice();
  expected.set(data, MiB);
  assert.ok(equalBytes(Deno.readFileSync(file), expected), "the partition's bytes, nothing else");
}, noPartitions);

test("a read-only device needs ro, and then serves reads", () => {
  using dir = new TempDir();
  const original = pattern(DEVICE_BYTES, 26);
  const file = dir.file("disk.img", original);
  const before = snapshot(file);
  {
    using loop = new LoopDevice(file, { readOnly: true });
    assert.throws(
      () => describeFile(loop.path),
      blkError("BAD_BACKING_FILE", /loop\d+ is not writable \(.*\); use ro/),
    );
    const backend = openBackend(describeFile(loop.path, { readOnly: true }));
    try {
      const memory = new Uint8Array(new SharedArrayBuffer(4096));
      backend.read(8192, memory, 0, 4096);
      assert.ok(equalBytes(memory, original.subarray(8192, 12288)));
      assert.throws(() => backend.write(0, memory, 0, 512), blkError("IO_ERROR", /read-only/));
    } finally {
      backend.close();
    }
  }
  assertUnchanged(file, before);
});
