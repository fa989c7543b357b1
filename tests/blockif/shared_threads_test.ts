/**
 * Blockif threads as a group that devices attach to (QEMU's iothread
 * model): several devices share one pool and its workers, each device's
 * requests stay its own, a device that leaves does not stop the others,
 * and new guest memory reaches the threads without reopening the medium.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { BlockifThreads } from "../../src/blockif/threads.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { createVirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { GuestAllocator } from "../../src/guest/allocator.ts";
import { DirectRegisters, InterruptLine } from "../../src/guest/io.ts";
import { VirtioBlkDriver } from "../../src/guest/virtio_blk_driver.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import type { VirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { openDescriptors } from "../backend/file_fixtures.ts";
import { pattern } from "../helpers/harness.ts";

const MiB = 1 << 20;

function driverFor(memory: SharedGuestMemory, disk: VirtioBlkPci): VirtioBlkDriver {
  return VirtioBlkDriver.init({
    memory,
    registers: new DirectRegisters(disk.pci),
    interrupt: new InterruptLine(disk.transport.buffer),
    allocator: new GuestAllocator(0x1000, memory.size),
  });
}

Deno.test("shared threads: two devices on one group each read back what they wrote, and one leaving does not stop the other", async () => {
  const threads = new BlockifThreads({ workers: 2, poolSize: 16, segMax: 62 });
  const memory = SharedGuestMemory.allocate(8 * MiB);
  const a = createVirtioBlkPci(memory, {
    backend: MemoryBackend.create(MiB),
    engine: workerEngine({ threads }),
  });
  const b = createVirtioBlkPci(memory, {
    backend: MemoryBackend.create(MiB),
    engine: workerEngine({ threads }),
  });
  try {
    await Promise.all([a.device.ready(), b.device.ready(), threads.ready()]);
    assert.equal(threads.deviceCount, 2);
    // Each device's driver gets its own part of guest memory.
    const driverA = VirtioBlkDriver.init({
      memory,
      registers: new DirectRegisters(a.pci),
      interrupt: new InterruptLine(a.transport.buffer),
      allocator: new GuestAllocator(0x1000, 4 * MiB),
    });
    const driverB = VirtioBlkDriver.init({
      memory,
      registers: new DirectRegisters(b.pci),
      interrupt: new InterruptLine(b.transport.buffer),
      allocator: new GuestAllocator(4 * MiB, 8 * MiB),
    });
    // The same sectors on both disks, at the same time: neither sees the other's data.
    const writes = [];
    for (let i = 0; i < 8; i++) {
      writes.push(driverA.write(i * 8, pattern(4096, 100 + i)));
      writes.push(driverB.write(i * 8, pattern(4096, 200 + i)));
    }
    await Promise.all(writes);
    for (let i = 0; i < 8; i++) {
      assert.deepEqual(await driverA.read(i * 8, 4096), pattern(4096, 100 + i));
      assert.deepEqual(await driverB.read(i * 8, 4096), pattern(4096, 200 + i));
    }
    await a.close();
    assert.equal(threads.deviceCount, 1);
    await driverB.write(0, pattern(512, 7));
    assert.deepEqual(await driverB.read(0, 512), pattern(512, 7));
  } finally {
    await a.close();
    await b.close();
    await threads.close();
  }
});

Deno.test("new guest memory reaches the threads without reopening the medium", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const image = `${dir}/disk.img`;
    await Deno.writeFile(image, new Uint8Array(MiB));
    const first = SharedGuestMemory.allocate(4 * MiB);
    const disk = createVirtioBlkPci(first, {
      backend: describeFile(image, { io: "node-fs" }),
      engine: workerEngine({ workers: 2 }),
    });
    try {
      await disk.device.ready();
      await driverFor(first, disk).write(0, pattern(4096, 1));
      const descriptors = openDescriptors(image);
      assert.equal(descriptors.length, 2, "each worker holds its own descriptor");
      disk.pci.reset(); // the driver's queue goes away: no request in flight
      const second = SharedGuestMemory.allocate(4 * MiB);
      await disk.device.attachMemory(second);
      // A driver over the new memory reads what was written through the old one.
      const driver = driverFor(second, disk);
      assert.deepEqual(await driver.read(0, 4096), pattern(4096, 1));
      await driver.write(8, pattern(4096, 2));
      assert.deepEqual(await driver.read(8, 4096), pattern(4096, 2));
      assert.deepEqual(openDescriptors(image), descriptors, "the same descriptors, none reopened");
    } finally {
      await disk.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("new guest memory is refused while a queue runs", async () => {
  const memory = SharedGuestMemory.allocate(4 * MiB);
  const disk = createVirtioBlkPci(memory, {
    backend: MemoryBackend.create(MiB),
    engine: workerEngine({ workers: 1 }),
  });
  try {
    await driverFor(memory, disk).write(0, pattern(512, 3));
    await assert.rejects(
      disk.device.attachMemory(SharedGuestMemory.allocate(4 * MiB)),
      (error: unknown) => error instanceof VirtioBlkError && error.code === "INVALID_CONFIG",
    );
  } finally {
    await disk.close();
  }
});

Deno.test("a medium that takes one handle at a time gets one thread, and cannot share several", async () => {
  const spec = MemoryBackend.create(MiB);
  const exclusive = {
    ...spec,
    capabilities: { ...spec.capabilities, handles: "exclusive" as const },
  };
  const memory = SharedGuestMemory.allocate(4 * MiB);
  const disk = createVirtioBlkPci(memory, { backend: exclusive, engine: workerEngine() });
  const threads = new BlockifThreads({ workers: 2, segMax: 62 });
  try {
    const engine = disk.device.engine as unknown as { settings: { workers: number } };
    assert.equal(engine.settings.workers, 1);
    await driverFor(memory, disk).write(0, pattern(512, 4));
    assert.throws(
      () => createVirtioBlkPci(memory, { backend: exclusive, engine: workerEngine({ threads }) }),
      /takes one handle at a time; it cannot share 2 blockif threads/,
    );
  } finally {
    await disk.close();
    await threads.close();
  }
});
