import assert from "node:assert/strict";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";

const guestProgram = new URL("../helpers/test_guest.ts", import.meta.url);

Deno.test("the guest finds its disks as vda, vdb in slot order, whatever the configuration order", async () => {
  const vm = await VirtualMachine.create({
    memoryBytes: 32 << 20,
    disks: [
      { slot: 10, func: 0, device: { backend: MemoryBackend.create(2 << 20), serial: "ten" } },
      {
        slot: 9,
        func: 0,
        device: { backend: MemoryBackend.create(1 << 20, { readOnly: true }), serial: "nine" },
      },
    ],
  });
  try {
    const disks = await vm.runVcpu(guestProgram, { kind: "disks" });
    assert.deepEqual(disks, [
      { name: "vda", slot: 9, func: 0, capacity: 2048, readOnly: true, serial: "nine" },
      { name: "vdb", slot: 10, func: 0, capacity: 4096, readOnly: false, serial: "ten" },
    ]);
  } finally {
    await vm.close();
  }
});

Deno.test("a guest in a Worker writes and reads back through mailbox, I/O events and workers", async () => {
  const backend = MemoryBackend.create(1 << 20);
  const vm = await VirtualMachine.create({
    memoryBytes: 32 << 20,
    disks: [{ slot: 3, func: 0, device: { backend } }],
  });
  try {
    const bytes = Array.from({ length: 4096 }, (_, i) => (i * 13) & 0xff);
    const read = await vm.runVcpu(guestProgram, { kind: "roundtrip", disk: 0, sector: 7, bytes });
    assert.deepEqual(read, bytes);
    assert.deepEqual([...new Uint8Array(backend.buffer, 7 * 512, 4096)], bytes);
  } finally {
    await vm.close();
  }
});
