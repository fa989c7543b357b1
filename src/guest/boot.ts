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
import { wakeSignals } from "../sync/wake_signal.ts";
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

/** One vCPU's view of the machine: memory, port access, its allocator, the interrupt line. */
export interface GuestVcpu {
  readonly memory: SharedGuestMemory;
  readonly io: PortIo;
  /** Allocates from this vCPU's share of guest RAM. */
  readonly allocator: GuestAllocator;
  readonly interrupt: InterruptLine;
  /** The machine's vCPU count. */
  readonly vcpus: number;
}

/** The booted guest: its memory, port access, allocator and disks. */
export interface GuestMachine extends GuestVcpu {
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

/**
 * Loads, on this vCPU thread, the modules its set-up names: the wake
 * signals its doorbells ring besides their words (threads that sleep in
 * io_uring). Await it before {@linkcode bootGuest}.
 */
export async function prepareVcpu(init: VcpuInit): Promise<void> {
  for (const target of init.ioEvents.targets) {
    if (target.wake) await wakeSignals.load(target.wake);
  }
}

/**
 * A vCPU's view of the machine from its set-up message, without touching
 * any device: what a vCPU started by the boot vCPU works with.
 */
export function startVcpu(init: VcpuInit): GuestVcpu {
  return {
    memory: SharedGuestMemory.fromHandle(init.memory),
    io: new PortIo(init.mailbox, init.vcpu, init.ioEvents),
    allocator: new GuestAllocator(init.ram.start, init.ram.end),
    interrupt: new InterruptLine(init.irq.buffer, init.irq.index),
    vcpus: init.vcpus,
  };
}

/**
 * Boots the guest side of a machine from its vCPU set-up message (the boot
 * vCPU's): each disk's driver sets up one request queue per vCPU where the
 * device offers that many (Linux: min(num_queues, CPUs)).
 */
export function bootGuest(
  init: VcpuInit,
  driverOptions: Pick<DriverOptions, "indirect" | "eventIdx" | "readIsr"> = {},
): GuestMachine {
  const vcpu = startVcpu(init);
  const { memory, io, interrupt, allocator } = vcpu;
  const disks = scanBus(io).filter(isVirtioBlk).map((pci, i) => ({
    name: diskName(i),
    pci,
    driver: VirtioBlkDriver.init({
      memory,
      registers: new PortRegisters(io, pci.ioBase!),
      interrupt,
      allocator,
      queues: init.vcpus,
      ...driverOptions,
    }),
  }));
  return { ...vcpu, disks };
}
