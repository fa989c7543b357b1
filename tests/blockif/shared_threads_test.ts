/**
 * Blockif threads as a group that devices attach to (QEMU's iothread
 * model): several devices share one pool and its workers, each device's
 * requests stay its own, a device that leaves does not stop the others,
 * and new guest memory reaches the threads without reopening the medium.
 */

import assert from "node:assert/strict";
import { wakeSignalFor } from "../../src/backend/backend.ts";
import { isFileSpec } from "../../src/backend/file_driver.ts";
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
import { IO_VARIANTS } from "../helpers/io_variants.ts";

const MiB = 1 << 20;

function driverFor(memory: SharedGuestMemory, disk: VirtioBlkPci): VirtioBlkDriver {
  return VirtioBlkDriver.init({
    memory,
    registers: new DirectRegisters(disk.pci),
    interrupt: new InterruptLine(disk.transport.buffer),
    allocator: new GuestAllocator(0x1000, memory.size),
  });
}

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `shared threads (${io.name}): two devices on one group each read back what they wrote, and one leaving does not stop the other`,
    ignore: io.skip.ignore,
    async fn() {
      using mediumA = io.medium(MiB);
      using mediumB = io.medium(MiB);
      // Threads that sleep in their rings get the wake signal the medium asks for.
      const threads = new BlockifThreads({
        workers: 2,
        poolSize: 16,
        segMax: 62,
        wake: wakeSignalFor(mediumA.backend),
      });
      const memory = SharedGuestMemory.allocate(8 * MiB);
      const a = createVirtioBlkPci(memory, {
        backend: mediumA.backend,
        engine: workerEngine({ threads }),
      });
      const b = createVirtioBlkPci(memory, {
        backend: mediumB.backend,
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
    },
  });
}

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `shared threads (${io.name}): a pool that runs dry is drained again for every device with chains waiting`,
    ignore: io.skip.ignore,
    async fn() {
      // Two elements for two devices with twelve requests each: the pool starves
      // over and over, and the request that frees an element is often the other
      // device's. Each starved ring must still be drained. On io_uring the
      // guests offer more requests (24) than the thread's completion queue has
      // entries (16): the pool's two tokens bound what is in flight.
      const media = [io.medium(MiB), io.medium(MiB)];
      const threads = new BlockifThreads({
        workers: 1,
        poolSize: 2,
        segMax: 62,
        wake: wakeSignalFor(media[0].backend),
      });
      const memory = SharedGuestMemory.allocate(8 * MiB);
      const disks = media.map((medium) =>
        createVirtioBlkPci(memory, {
          backend: medium.backend,
          engine: workerEngine({ threads }),
        })
      );
      try {
        await Promise.all(disks.map((disk) => disk.device.ready()));
        const drivers = disks.map((disk, i) =>
          VirtioBlkDriver.init({
            memory,
            registers: new DirectRegisters(disk.pci),
            interrupt: new InterruptLine(disk.transport.buffer),
            allocator: new GuestAllocator((1 + 3 * i) * MiB, (4 + 3 * i) * MiB),
          })
        );
        const seed = (round: number, d: number, i: number) => round * 100 + d * 20 + i;
        for (let round = 0; round < 20; round++) {
          const writes = drivers.flatMap((driver, d) =>
            Array.from(
              { length: 12 },
              (_, i) => driver.write(i * 8, pattern(4096, seed(round, d, i))),
            )
          );
          await Promise.all(writes);
        }
        for (const [d, driver] of drivers.entries()) {
          for (let i = 0; i < 12; i++) {
            assert.deepEqual(await driver.read(i * 8, 4096), pattern(4096, seed(19, d, i)));
          }
        }
      } finally {
        for (const disk of disks) await disk.close();
        await threads.close();
        for (const medium of media) medium[Symbol.dispose]();
      }
    },
  });
}

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `new guest memory reaches all 8 threads, again and again, without reopening the medium (${io.name})`,
    ignore: io.skip.ignore,
    async fn() {
      // Eight threads: each must hear every control message, also where they
      // sleep in their rings and one that wakes first could take another's
      // share of a wake-up (the io_uring threads hung on the second message).
      using medium = io.medium(MiB, { file: true });
      assert.ok(isFileSpec(medium.backend));
      const path = medium.backend.path;
      let memory = SharedGuestMemory.allocate(4 * MiB);
      const disk = createVirtioBlkPci(memory, {
        backend: medium.backend,
        engine: workerEngine({ workers: 8 }),
      });
      try {
        await disk.device.ready();
        await driverFor(memory, disk).write(0, pattern(4096, 1));
        const descriptors = openDescriptors(path);
        assert.equal(descriptors.length, 8, "each worker holds its own descriptor");
        for (let round = 0; round < 5; round++) {
          disk.pci.reset(); // the driver's queue goes away: no request in flight
          memory = SharedGuestMemory.allocate(4 * MiB);
          await disk.device.attachMemory(memory);
          // A driver over the new memory reads what was written through the old one.
          const driver = driverFor(memory, disk);
          assert.deepEqual(await driver.read(0, 4096), pattern(4096, 1 + round));
          await driver.write(0, pattern(4096, 2 + round));
          assert.deepEqual(await driver.read(0, 4096), pattern(4096, 2 + round));
        }
        assert.deepEqual(openDescriptors(path), descriptors, "the same descriptors, none reopened");
      } finally {
        await disk.close();
      }
    },
  });
}

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
