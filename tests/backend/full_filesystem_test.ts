/**
 * A full filesystem (a small tmpfs, root only): the write that runs out of
 * space fails with IO_ERROR (the device answers IOERR) and everything that
 * does not need new space keeps working.
 */

import assert from "node:assert/strict";
import type { BlockBackend } from "../../src/backend/backend.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { openBackend } from "../../src/backend/backend.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { RequestFailed } from "../../src/guest/virtio_blk_driver.ts";
import { harness } from "../helpers/harness.ts";
import {
  blkError,
  equalBytes,
  IO_KINDS,
  KiB,
  MiB,
  pattern,
  TmpfsMount,
  tmpfsUnavailable,
} from "./file_fixtures.ts";
import { skipWhen } from "../helpers/skip.ts";

const noTmpfs = tmpfsUnavailable();
skipWhen("the full-filesystem tests", noTmpfs);
/** The filesystem holds 1 MiB; the sparse disk claims 4. */
const FS_BYTES = MiB;
const DISK_BYTES = 4 * MiB;
/** The part of the disk that has blocks allocated before the filesystem fills up. */
const ALLOCATED = 64 * KiB;

/** A sparse disk image on a 1 MiB tmpfs, with its first 64 KiB allocated. */
function sparseDisk(mount: TmpfsMount, allocated: Uint8Array): string {
  const path = `${mount.path}/disk.img`;
  using file = Deno.openSync(path, { write: true, createNew: true });
  file.truncateSync(DISK_BYTES);
  file.writeSync(allocated);
  return path;
}

/** Writes 64 KiB chunks after the allocated part until one fails; returns that error. */
function fillUp(backend: BlockBackend, memory: Uint8Array): unknown {
  for (let offset = ALLOCATED; offset < DISK_BYTES; offset += 64 * KiB) {
    try {
      backend.write(offset, memory, 0, 64 * KiB);
    } catch (error) {
      return error;
    }
  }
  assert.fail(`writing ${DISK_BYTES} bytes into a ${FS_BYTES}-byte filesystem never failed`);
}

for (const io of IO_KINDS) {
  Deno.test({
    name: `${io}: ENOSPC is an IO_ERROR, and later reads and in-place writes succeed`,
    ignore: noTmpfs !== undefined,
    fn() {
      using mount = new TmpfsMount(FS_BYTES);
      const allocated = pattern(ALLOCATED, 40);
      const path = sparseDisk(mount, allocated);
      const backend = openBackend(describeFile(path, { io }));
      try {
        const memory = new Uint8Array(new SharedArrayBuffer(128 * KiB));
        memory.set(pattern(64 * KiB, 41));
        assert.ok(
          blkError("IO_ERROR", /write of 65536 bytes .* failed: .*(ENOSPC|No space left)/)(
            fillUp(backend, memory),
          ),
        );
        assert.throws(
          () => backend.write(DISK_BYTES - 64 * KiB, memory, 0, 64 * KiB),
          blkError("IO_ERROR", /No space left|ENOSPC/),
          "still full",
        );

        backend.read(0, memory, 64 * KiB, ALLOCATED);
        assert.ok(equalBytes(memory.subarray(64 * KiB), allocated), "allocated blocks read back");
        backend.read(DISK_BYTES - 4096, memory, 0, 4096);
        assert.ok(memory.subarray(0, 4096).every((byte) => byte === 0), "a hole reads as zeros");

        const rewrite = pattern(ALLOCATED, 42);
        memory.set(rewrite, 64 * KiB);
        backend.write(0, memory, 64 * KiB, ALLOCATED);
        backend.flush();
        backend.read(0, memory, 0, ALLOCATED);
        assert.ok(equalBytes(memory.subarray(0, ALLOCATED), rewrite), "in-place write landed");
      } finally {
        backend.close();
      }
    },
  });
}

Deno.test({
  name:
    "device on a full filesystem: the failing write completes IOERR and the device keeps serving",
  ignore: noTmpfs !== undefined,
  async fn() {
    using mount = new TmpfsMount(FS_BYTES);
    const allocated = pattern(ALLOCATED, 43);
    const path = sparseDisk(mount, allocated);
    const h = harness({
      device: { backend: describeFile(path), engine: (context) => new InlineEngine(context) },
    });
    try {
      const chunk = pattern(64 * KiB, 44);
      let failed: unknown;
      for (let sector = ALLOCATED / 512; sector < DISK_BYTES / 512; sector += 128) {
        try {
          await h.driver.write(sector, chunk);
        } catch (error) {
          failed = error;
          break;
        }
      }
      assert.ok(failed instanceof RequestFailed, `expected an IOERR, got ${failed}`);
      assert.equal(failed.status, 1, "IOERR");

      assert.ok(equalBytes(await h.driver.read(0, ALLOCATED), allocated));
      const rewrite = pattern(4096, 45);
      await h.driver.write(8, rewrite);
      await h.driver.flush();
      assert.ok(equalBytes(await h.driver.read(8, 4096), rewrite));
      assert.equal(await h.driver.getId(), h.driver.getIdSync());
    } finally {
      await h.close();
    }
  },
});
