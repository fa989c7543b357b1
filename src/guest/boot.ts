/**
 * A guest's boot on our machine, run inside its vCPU thread: map guest
 * memory, reach the device model through the mailbox, enumerate PCI bus 0,
 * and bind the virtio-blk driver to every virtio-blk function, naming the
 * disks vda, vdb, … in PCI order (slot, then function) as Linux does.
 *
 * @module
 */

import { PortIo } from "../dm/io_mailbox.ts";
import type { VcpuInit } from "../dm/vm.ts";
import { SharedGuestMemory } from "../memory/shared_memory.ts";
import { GuestAllocator } from "./allocator.ts";
import { InterruptLine } from "./io.ts";
import { isVirtioBlk, type PciDeviceInfo, scanBus } from "./pci_scan.ts";
import { PortRegisters } from "./port_registers.ts";
import { type DriverOptions, VirtioBlkDriver } from "./virtio_blk_driver.ts";

/** A disk the guest found. */
export interface GuestDisk {
  /** vda, vdb, … */
  readonly name: string;
  readonly pci: PciDeviceInfo;
  readonly driver: VirtioBlkDriver;
}

/** The booted guest: its memory, port access, allocator and disks. */
export interface GuestMachine {
  readonly memory: SharedGuestMemory;
  readonly io: PortIo;
  readonly allocator: GuestAllocator;
  readonly interrupt: InterruptLine;
  readonly disks: readonly GuestDisk[];
}

/** Linux's naming of virtio disks: vda … vdz, vdaa, vdab, … */
export function diskName(index: number): string {
  let suffix = "";
  let n = index;
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `vd${suffix}`;
}

/** Boots the guest side of a machine from its vCPU set-up message. */
export function bootGuest(
  init: VcpuInit,
  driverOptions: Pick<DriverOptions, "indirect" | "eventIdx" | "readIsr"> = {},
): GuestMachine {
  const memory = SharedGuestMemory.fromHandle(init.memory);
  const io = new PortIo(init.mailbox, init.vcpu, init.ioEvents);
  const allocator = new GuestAllocator(init.ram.start, init.ram.end);
  const interrupt = new InterruptLine(init.irq.buffer, init.irq.index);
  const disks = scanBus(io).filter(isVirtioBlk).map((pci, i) => ({
    name: diskName(i),
    pci,
    driver: VirtioBlkDriver.init({
      memory,
      registers: new PortRegisters(io, pci.ioBase!),
      interrupt,
      allocator,
      ...driverOptions,
    }),
  }));
  return { memory, io, allocator, interrupt, disks };
}
