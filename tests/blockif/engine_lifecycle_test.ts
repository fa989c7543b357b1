/**
 * The worker engine's life: workers that cannot open the medium make
 * ready() fail with the reason, and close() still ends every thread (Deno's
 * sanitizers would report one left running); close() twice is one close.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { createVirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";

Deno.test("workers that cannot open the medium: ready() rejects naming it, close() ends every thread", async () => {
  const memory = SharedGuestMemory.allocate(1 << 20);
  const dir = await Deno.makeTempDir();
  const path = `${dir}/disk.img`;
  await Deno.writeFile(path, new Uint8Array(1 << 20));
  const backend = describeFile(path, { io: "node-fs" });
  // The file vanishes between validation and the workers' open.
  await Deno.remove(dir, { recursive: true });
  const disk = createVirtioBlkPci(memory, { backend, engine: workerEngine({ workers: 3 }) });
  await assert.rejects(disk.device.ready(), (error: unknown) => {
    assert.ok(error instanceof VirtioBlkError);
    assert.equal(error.code, "BAD_BACKING_FILE");
    assert.match(error.message, new RegExp(`blockif worker \\d: .*${path}`));
    return true;
  });
  await disk.close();
});

Deno.test("close() twice: the second waits for the first, and both resolve", async () => {
  const memory = SharedGuestMemory.allocate(1 << 20);
  const disk = createVirtioBlkPci(memory, {
    backend: MemoryBackend.create(1 << 20),
    engine: workerEngine({ workers: 2 }),
  });
  await disk.device.ready();
  let firstDone = false;
  let secondSawFirstDone: boolean | undefined;
  const first = disk.close().then(() => void (firstDone = true));
  const second = disk.close().then(() => void (secondSawFirstDone = firstDone));
  await Promise.all([first, second]);
  assert.equal(firstDone, true, "the first close resolved");
  assert.equal(secondSawFirstDone, true, "the second resolved only once the first had");
});
