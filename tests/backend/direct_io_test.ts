/**
 * `nocache` (O_DIRECT) through the node:fs backend, with guest memory in a
 * shared WebAssembly.Memory (page aligned, as the kernel wants).
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import type { BlockBackend } from "../../src/backend/backend.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { openBackend } from "../../src/backend/backend.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import {
  blkError,
  descriptorFlags,
  equalBytes,
  KiB,
  LoopDevice,
  loopDevicesUnavailable,
  MiB,
  openDescriptors,
  pattern,
  TempDir,
} from "./file_fixtures.ts";
import { skipWhen } from "../helpers/skip.ts";

/** 1 MiB of page-aligned shared guest memory. */
function wasmGuestMemory(): Uint8Array {
  const pages = MiB / (64 * KiB);
  return new Uint8Array(
    new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true })
      .buffer,
  );
}

/** Whether the temporary directory's filesystem takes O_DIRECT (tmpfs before Linux 6.6 does not). */
function tempFsRefusesDirect(): string | undefined {
  using dir = new TempDir();
  try {
    describeFile(dir.file("probe.img", 4 * KiB), { direct: true });
    return undefined;
  } catch (error) {
    if (error instanceof VirtioBlkError) return error.message;
    throw error;
  }
}

/** Writes 64 KiB at page-aligned memory, reads it back elsewhere, checks the medium. */
function roundTrip(backend: BlockBackend, medium: () => Uint8Array, original: Uint8Array): void {
  const memory = wasmGuestMemory();
  const data = pattern(64 * KiB, 31);
  memory.set(data, 4096);
  backend.write(8192, memory, 4096, data.length);
  backend.flush();
  backend.read(8192, memory, 512 * KiB, data.length);
  assert.ok(equalBytes(memory.subarray(512 * KiB, 512 * KiB + data.length), data));
  const expected = original.slice();
  expected.set(data, 8192);
  assert.ok(equalBytes(medium(), expected), "the medium holds the write");
}

function assertDirect(path: string): void {
  const fds = openDescriptors(path);
  assert.equal(fds.length, 1);
  assert.notEqual(descriptorFlags(fds[0]) & fs.constants.O_DIRECT, 0, "opened with O_DIRECT");
}

const noDirect = tempFsRefusesDirect();
skipWhen("the O_DIRECT regular-file test", noDirect);

Deno.test({
  name: "nocache: a regular file is opened O_DIRECT and round-trips page-aligned guest memory",
  ignore: noDirect !== undefined,
  fn() {
    using dir = new TempDir();
    const original = pattern(256 * KiB, 30);
    const path = dir.file("disk.img", original);
    const spec = describeFile(path, { direct: true });
    assert.deepEqual([spec.io, spec.direct], ["node-fs", true]);
    const backend = openBackend(spec);
    try {
      assertDirect(path);
      roundTrip(backend, () => Deno.readFileSync(path), original);
    } finally {
      backend.close();
    }
  },
});

const noLoop = loopDevicesUnavailable();
skipWhen("the O_DIRECT block-device test", noLoop);

Deno.test({
  name: "nocache: a misaligned buffer is an IO_ERROR (EINVAL), and aligned requests still work",
  ignore: noLoop !== undefined,
  fn() {
    // A block device enforces O_DIRECT alignment on every filesystem setup.
    using dir = new TempDir();
    const original = pattern(256 * KiB, 32);
    const file = dir.file("disk.img", original);
    using loop = new LoopDevice(file);
    const backend = openBackend(describeFile(loop.path, { direct: true }));
    try {
      assertDirect(loop.path);
      const memory = wasmGuestMemory();
      const misaligned: [number, number, number][] = [
        [0, 1, 4096], // buffer address
        [0, 4096, 100], // length
        [100, 4096, 4096], // file offset
      ];
      for (const [offset, at, length] of misaligned) {
        assert.throws(
          () => backend.read(offset, memory, at, length),
          blkError("IO_ERROR", /read of .* failed: .*(EINVAL|Invalid argument)/),
        );
        assert.throws(
          () => backend.write(offset, memory, at, length),
          blkError("IO_ERROR", /write of .* failed: .*(EINVAL|Invalid argument)/),
        );
      }
      backend.read(0, memory, 512, 512);
      assert.ok(equalBytes(memory.subarray(512, 1024), original.subarray(0, 512)), "512-aligned");
      roundTrip(backend, () => {
        const device = fs.openSync(loop.path, fs.constants.O_RDONLY);
        try {
          const bytes = new Uint8Array(original.length);
          assert.equal(fs.readSync(device, bytes, 0, bytes.length, 0), bytes.length);
          return bytes;
        } finally {
          fs.closeSync(device);
        }
      }, original);
    } finally {
      backend.close();
    }
  },
});
