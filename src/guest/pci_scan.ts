/**
 * The guest's PCI enumeration over configuration mechanism #1 (ports
 * 0xCF8/0xCFC): what firmware and an OS do at boot to find devices. The
 * guest learns everything from config space — IDs, class, BARs — and never
 * from the device model's objects.
 *
 * @module
 */

import { PciConfig } from "../pci/config_space.ts";
import type { IoSize } from "../dm/io_mailbox.ts";

/** Port access as the guest's vCPU performs it. */
export interface PortAccess {
  read(port: number, size: IoSize): number;
  write(port: number, size: IoSize, value: number): void;
}

/** A function found on bus 0. */
export interface PciDeviceInfo {
  readonly slot: number;
  readonly func: number;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly subclass: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  /** I/O port base of BAR0, or undefined when BAR0 is not an I/O BAR. */
  readonly ioBase: number | undefined;
  readonly interruptLine: number;
}

const CONFIG_ADDRESS = 0xcf8;
const CONFIG_DATA = 0xcfc;
const ENABLE = 0x8000_0000;

/** Reads `size` bytes at `offset` of bus 0 `slot`:`func`'s configuration space. */
export function configRead(
  io: PortAccess,
  slot: number,
  func: number,
  offset: number,
  size: IoSize,
): number {
  io.write(CONFIG_ADDRESS, 4, (ENABLE | (slot << 11) | (func << 8) | (offset & 0xfc)) >>> 0);
  return io.read(CONFIG_DATA + (offset & 3), size);
}

/** Writes configuration space of bus 0 `slot`:`func`. */
export function configWrite(
  io: PortAccess,
  slot: number,
  func: number,
  offset: number,
  size: IoSize,
  value: number,
): void {
  io.write(CONFIG_ADDRESS, 4, (ENABLE | (slot << 11) | (func << 8) | (offset & 0xfc)) >>> 0);
  io.write(CONFIG_DATA + (offset & 3), size, value);
}

/** Enumerates bus 0 in slot order (functions 1–7 only for multi-function devices). */
export function scanBus(io: PortAccess): PciDeviceInfo[] {
  const found: PciDeviceInfo[] = [];
  for (let slot = 0; slot < 32; slot++) {
    const functions = configRead(io, slot, 0, PciConfig.HEADER_TYPE, 1) & 0x80 ? 8 : 1;
    for (let func = 0; func < functions; func++) {
      const vendorId = configRead(io, slot, func, PciConfig.VENDOR_ID, 2);
      if (vendorId === 0xffff) continue;
      const bar0 = configRead(io, slot, func, PciConfig.BAR0, 4) >>> 0;
      found.push({
        slot,
        func,
        vendorId,
        deviceId: configRead(io, slot, func, PciConfig.DEVICE_ID, 2),
        classCode: configRead(io, slot, func, PciConfig.CLASS, 1),
        subclass: configRead(io, slot, func, PciConfig.SUBCLASS, 1),
        subsystemVendorId: configRead(io, slot, func, PciConfig.SUBSYSTEM_VENDOR_ID, 2),
        subsystemId: configRead(io, slot, func, PciConfig.SUBSYSTEM_ID, 2),
        ioBase: bar0 & 1 ? bar0 & 0xfffc : undefined,
        interruptLine: configRead(io, slot, func, PciConfig.INTERRUPT_LINE, 1),
      });
    }
  }
  return found;
}

/** Whether a function is a legacy virtio block device (1AF4:1001, subsystem 2). */
export function isVirtioBlk(device: PciDeviceInfo): boolean {
  return device.vendorId === 0x1af4 && device.deviceId === 0x1001 && device.subsystemId === 2 &&
    device.ioBase !== undefined;
}
