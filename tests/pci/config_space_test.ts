/**
 * The PCI configuration space of a function (type-0 header): identity,
 * read-only fields, the command register, the BAR sizing protocol and
 * accesses of odd widths, through the virtio-blk function's header.
 */

import assert from "node:assert/strict";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { createVirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { PciCommand, PciConfig, PciConfigSpace } from "../../src/pci/config_space.ts";
import { PciBus } from "../../src/dm/pci_bus.ts";

function blkFunction() {
  const memory = SharedGuestMemory.allocate(1 << 16);
  return createVirtioBlkPci(memory, {
    backend: MemoryBackend.create(1 << 16),
    engine: (context) => new InlineEngine(context),
  });
}

function plain(bars: ({ size: number } | undefined)[] = [{ size: 32 }]): PciConfigSpace {
  return new PciConfigSpace({
    vendorId: 0x1234,
    deviceId: 0x5678,
    revisionId: 3,
    classCode: 0x01,
    subclass: 0x80,
    progIf: 0x02,
    subsystemVendorId: 0xabcd,
    subsystemId: 0xef01,
    interruptPin: 1,
  }, bars);
}

Deno.test("identity: a legacy virtio-blk function (1af4:1001, subsystem 2, mass storage)", async () => {
  const disk = blkFunction();
  const c = disk.pci.config;
  assert.equal(c.read(PciConfig.VENDOR_ID, 2), 0x1af4);
  assert.equal(c.read(PciConfig.DEVICE_ID, 2), 0x1001);
  assert.equal(c.read(0, 4), 0x1001_1af4);
  assert.equal(c.read(PciConfig.REVISION_ID, 1), 0);
  assert.equal(c.read(PciConfig.CLASS, 1), 0x01);
  assert.equal(c.read(PciConfig.SUBCLASS, 1), 0x00);
  assert.equal(c.read(PciConfig.PROG_IF, 1), 0);
  assert.equal(c.read(PciConfig.REVISION_ID, 4), 0x0100_0000);
  assert.equal(c.read(PciConfig.SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
  assert.equal(c.read(PciConfig.SUBSYSTEM_ID, 2), 2);
  assert.equal(c.read(PciConfig.HEADER_TYPE, 1), 0);
  assert.equal(c.read(PciConfig.INTERRUPT_PIN, 1), 1, "INTA#");
  assert.equal(c.read(PciConfig.CAPABILITIES, 1), 0, "no capabilities (no MSI-X)");
  assert.equal(c.read(PciConfig.BAR0, 4) & 1, 1, "BAR0 is an I/O BAR");
  await disk.close();
});

Deno.test("read-only fields keep their values whatever is written", () => {
  const c = plain();
  const readOnly = [
    PciConfig.VENDOR_ID,
    PciConfig.DEVICE_ID,
    PciConfig.STATUS,
    PciConfig.REVISION_ID,
    PciConfig.HEADER_TYPE,
    PciConfig.SUBSYSTEM_VENDOR_ID,
    PciConfig.SUBSYSTEM_ID,
    PciConfig.CAPABILITIES,
    PciConfig.INTERRUPT_PIN,
    PciConfig.LATENCY_TIMER,
    0x40,
    0xfc,
  ];
  const before = readOnly.map((offset) => c.read(offset & ~3, 4));
  for (const offset of readOnly) {
    c.write(offset & ~3, 4, 0xffff_ffff);
    c.write(offset, 1, 0x5a);
  }
  // Writable neighbours (command, cache line, interrupt line) are masked out of the comparison.
  const mask = (offset: number) =>
    offset === PciConfig.COMMAND
      ? 0xffff_0000
      : offset === PciConfig.CACHE_LINE_SIZE
      ? 0xffff_ff00
      : offset === PciConfig.INTERRUPT_LINE
      ? 0xffff_ff00
      : 0xffff_ffff;
  readOnly.forEach((offset, i) => {
    const dword = offset & ~3;
    assert.equal(
      (c.read(dword, 4) & mask(dword)) >>> 0,
      (before[i] & mask(dword)) >>> 0,
      `offset 0x${offset.toString(16)}`,
    );
  });
  assert.equal(c.read(PciConfig.VENDOR_ID, 2), 0x1234);
  assert.equal(c.read(PciConfig.CLASS, 1), 0x01);
});

Deno.test("command register: only I/O, memory, bus master and INTx-disable bits stick", () => {
  const c = plain();
  assert.equal(c.read(PciConfig.COMMAND, 2), 0);
  assert.equal(c.ioEnabled, false);
  c.write(PciConfig.COMMAND, 2, 0xffff);
  assert.equal(
    c.read(PciConfig.COMMAND, 2),
    PciCommand.IO_SPACE | PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER | PciCommand.INTX_DISABLE,
  );
  assert.equal(c.ioEnabled, true);
  assert.equal(c.read(PciConfig.STATUS, 2), 0, "the status half of the dword is not written");
  c.write(PciConfig.COMMAND, 1, 0); // low byte only
  assert.equal(c.read(PciConfig.COMMAND, 2), PciCommand.INTX_DISABLE);
  assert.equal(c.ioEnabled, false);
  c.write(PciConfig.COMMAND + 1, 1, 0);
  assert.equal(c.read(PciConfig.COMMAND, 2), 0);
  // A dword write covering command and status.
  c.write(PciConfig.COMMAND, 4, 0xffff_0001);
  assert.equal(c.read(PciConfig.COMMAND, 4), 1);
});

Deno.test("BAR sizing: all ones reads back the size mask; a base is kept to the BAR's alignment", () => {
  const c = plain([{ size: 32 }, undefined, { size: 256 }]);
  const moves: [number, number][] = [];
  c.onBarMoved = (index, base) => moves.push([index, base]);

  c.write(PciConfig.BAR0, 4, 0xffff_ffff);
  assert.equal(c.read(PciConfig.BAR0, 4), 0xffff_ffe1, "~(32 - 1) | I/O");
  c.write(PciConfig.BAR0, 4, 0xc0f3);
  assert.equal(c.read(PciConfig.BAR0, 4), 0xc0e1, "the low 5 bits are the BAR's own");
  assert.equal(c.barBase(0), 0xc0e0);
  assert.deepEqual(moves, [[0, 0xffff_ffe0], [0, 0xc0e0]]);

  // Byte-wise writes merge into the BAR.
  c.write(PciConfig.BAR0 + 1, 1, 0xd1);
  assert.equal(c.barBase(0), 0xd1e0);
  c.write(PciConfig.BAR0 + 2, 2, 0x0001);
  assert.equal(c.barBase(0), 0x1_d1e0);

  // The same value again is not a move.
  const count = moves.length;
  c.write(PciConfig.BAR0, 4, 0x1_d1e0);
  assert.equal(moves.length, count);

  c.write(PciConfig.BAR0 + 8, 4, 0xffff_ffff);
  assert.equal(c.read(PciConfig.BAR0 + 8, 4), 0xffff_ff01);

  // Unimplemented BARs read 0 and stay 0.
  for (const index of [1, 3, 4, 5]) {
    c.write(PciConfig.BAR0 + 4 * index, 4, 0xffff_ffff);
    assert.equal(c.read(PciConfig.BAR0 + 4 * index, 4), 0, `BAR${index}`);
  }
  assert.equal(c.bar(1), undefined);

  c.assignBar(2, 0x6000);
  assert.equal(c.barBase(2), 0x6000);
});

Deno.test("BAR sizing of the virtio-blk function: 128 bytes (20 of registers + 57 of config)", async () => {
  const disk = blkFunction();
  assert.equal(disk.pci.barSize, 128);
  disk.pci.config.write(PciConfig.BAR0, 4, 0xffff_ffff);
  assert.equal(disk.pci.config.read(PciConfig.BAR0, 4), 0xffff_ff81);
  await disk.close();
});

Deno.test("odd widths and offsets read all ones and write nothing", () => {
  const c = plain();
  const image = Array.from({ length: 64 }, (_, i) => c.read(4 * i, 4));
  const bad: [number, number][] = [
    [0, 3],
    [0, 8],
    [0, 0],
    [3, 2], // crosses a dword
    [2, 4],
    [1, 4],
    [255, 2],
    [256, 1],
    [-1, 1],
    [1.5, 1],
  ];
  for (const [offset, size] of bad) {
    const expected = size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
    assert.equal(c.read(offset, size), expected, `read(${offset}, ${size})`);
    c.write(offset, size, 0);
  }
  c.write(PciConfig.COMMAND - 1, 2, 0xffff); // would touch the command register
  c.write(PciConfig.BAR0 - 2, 4, 0); // would touch BAR0
  assert.deepEqual(Array.from({ length: 64 }, (_, i) => c.read(4 * i, 4)), image);
  // Every aligned narrow read matches the dword.
  assert.equal(c.read(PciConfig.DEVICE_ID, 2), 0x5678);
  assert.equal(c.read(PciConfig.DEVICE_ID + 1, 1), 0x56);
  assert.equal(c.read(PciConfig.SUBCLASS, 2), 0x0180);
});

Deno.test("cache line size and interrupt line are writable bytes", () => {
  const c = plain();
  c.write(PciConfig.CACHE_LINE_SIZE, 1, 0x10);
  c.write(PciConfig.INTERRUPT_LINE, 1, 11);
  assert.equal(c.read(PciConfig.CACHE_LINE_SIZE, 1), 0x10);
  assert.equal(c.read(PciConfig.INTERRUPT_LINE, 1), 11);
  assert.equal(c.read(PciConfig.INTERRUPT_PIN, 1), 1);
  c.interruptLine = 5;
  assert.equal(c.read(PciConfig.INTERRUPT_LINE, 1), 5);
});

Deno.test("an I/O BAR must be a power of two of at least 4 bytes", () => {
  for (const size of [0, 2, 3, 24]) {
    assert.throws(() => plain([{ size }]), RangeError, `size ${size}`);
  }
  assert.equal(plain([{ size: 4 }]).bar(0)?.size, 4);
});

Deno.test("reads nobody answers are all ones of their width, whatever the width", () => {
  const bus = new PciBus();
  assert.equal(bus.portRead(0x80, 1), 0xff);
  assert.equal(bus.portRead(0x80, 2), 0xffff);
  assert.equal(bus.portRead(0x80, 4), 0xffff_ffff);
  // Widths no x86 port access has still read as ones, never as 0 or undefined.
  assert.equal(bus.portRead(0x80, 3 as 1), 0xffff_ffff);
  assert.equal(bus.portRead(0xcfc, 3 as 1), 0xffff_ffff);
});
