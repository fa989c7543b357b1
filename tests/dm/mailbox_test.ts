/**
 * The guest's ways in: PCI configuration space (mechanism #1) and BAR0
 * register accesses from the vCPU Worker, through the I/O-request mailbox
 * and the I/O events, give exactly what direct calls on the device model
 * give.
 */

import assert from "node:assert/strict";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { IoDirection } from "../../src/dm/io_mailbox.ts";
import { PciConfig } from "../../src/pci/config_space.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import { ISR_CONFIG, ISR_QUEUE } from "../../src/virtio/transport_state.ts";
import type { Access } from "../helpers/test_guest.ts";

const guestProgram = new URL("../helpers/test_guest.ts", import.meta.url);

async function machine(): Promise<VirtualMachine> {
  return await VirtualMachine.create({
    memoryBytes: 16 << 20,
    disks: [
      { slot: 5, func: 0, device: { backend: MemoryBackend.create(1 << 20), serial: "five" } },
      { slot: 6, func: 2, device: { backend: MemoryBackend.create(2 << 20), serial: "six" } },
    ],
  });
}

/** The same accesses, done directly on the bus. */
function direct(vm: VirtualMachine, accesses: Access[]): number[] {
  const address = (slot: number, func: number, offset: number) =>
    (0x8000_0000 | (slot << 11) | (func << 8) | (offset & 0xfc)) >>> 0;
  return accesses.map((a) => {
    switch (a.op) {
      case "config-read":
        vm.bus.portWrite(0xcf8, 4, address(a.slot, a.func, a.offset));
        return vm.bus.portRead(0xcfc + (a.offset & 3), a.size);
      case "config-write":
        vm.bus.portWrite(0xcf8, 4, address(a.slot, a.func, a.offset));
        vm.bus.portWrite(0xcfc + (a.offset & 3), a.size, a.value);
        return 0;
      case "port-read":
        return vm.bus.portAccess(IoDirection.IN, a.port, a.size, 0);
      case "port-write":
        vm.bus.portAccess(IoDirection.OUT, a.port, a.size, a.value);
        return 0;
    }
  });
}

Deno.test("config space and BAR0 accesses from the vCPU Worker match direct calls", async () => {
  const [viaGuest, viaCalls] = [await machine(), await machine()];
  try {
    const base = viaGuest.bus.ioBase(5, 0)!;
    assert.equal(base, viaCalls.bus.ioBase(5, 0));
    const accesses: Access[] = [];
    for (const [slot, func] of [[0, 0], [5, 0], [6, 0], [6, 2], [7, 0]]) {
      for (
        const [offset, size] of [[0, 4], [0, 2], [2, 2], [8, 4], [0x0b, 1], [0x0e, 1], [0x2c, 4], [
          0x3d,
          1,
        ], [0x3e, 2]]
      ) {
        accesses.push({ op: "config-read", slot, func, offset, size: size as 1 | 2 | 4 });
      }
    }
    accesses.push(
      // BAR sizing, then back to where it was.
      { op: "config-write", slot: 5, func: 0, offset: PciConfig.BAR0, size: 4, value: 0xffff_ffff },
      { op: "config-read", slot: 5, func: 0, offset: PciConfig.BAR0, size: 4 },
      { op: "config-write", slot: 5, func: 0, offset: PciConfig.BAR0, size: 4, value: base },
      { op: "config-read", slot: 5, func: 0, offset: PciConfig.BAR0, size: 4 },
      { op: "port-read", port: base + LegacyRegister.HOST_FEATURES, size: 4 },
      { op: "port-read", port: base + LegacyRegister.QUEUE_NUM, size: 2 },
      { op: "port-write", port: base + LegacyRegister.STATUS, size: 1, value: 3 },
      { op: "port-read", port: base + LegacyRegister.STATUS, size: 1 },
      { op: "port-read", port: base + LegacyRegister.CONFIG, size: 4 },
      { op: "port-read", port: base + LegacyRegister.CONFIG + 20, size: 4 },
      { op: "port-read", port: base + LegacyRegister.HOST_FEATURES, size: 2 },
      { op: "port-read", port: base + LegacyRegister.ISR, size: 1 },
      { op: "port-read", port: base + LegacyRegister.ISR, size: 1 },
      { op: "port-read", port: 0x80, size: 1 },
      { op: "port-read", port: 0xffff, size: 2 },
    );
    // An interrupt is pending on both machines: the ISR read (an I/O event
    // on the vCPU, a mailbox access directly) returns it, then clears it.
    for (const vm of [viaGuest, viaCalls]) {
      vm.disks[0].function.transport.raise(ISR_QUEUE | ISR_CONFIG);
    }
    const fromGuest = await viaGuest.runVcpu(guestProgram, {
      kind: "accesses",
      accesses,
    }) as number[];
    const fromCalls = direct(viaCalls, accesses);
    assert.deepEqual(fromGuest, fromCalls);
    // Spot checks, so equal-but-wrong answers would not pass.
    assert.equal(fromCalls[0], 0x1237_8086, "host bridge at 0:0");
    assert.equal(fromCalls[9], 0x1001_1af4, "virtio-blk at 5:0");
    const isr = accesses.findIndex((a) =>
      a.op === "port-read" && a.port === base + LegacyRegister.ISR
    );
    assert.deepEqual([fromGuest[isr], fromGuest[isr + 1]], [ISR_QUEUE | ISR_CONFIG, 0]);
  } finally {
    await viaGuest.close();
    await viaCalls.close();
  }
});
