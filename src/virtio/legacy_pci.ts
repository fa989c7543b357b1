/**
 * The legacy (virtio 0.9.5 / transitional) virtio-PCI function: PCI identity
 * and the register block in I/O BAR0 (virtio 1.2 §4.1.4.8, "Legacy
 * Interfaces: A Note on PCI Device Layout"). Device configuration starts at
 * offset 20 because this function has no MSI-X.
 *
 * Every access the guest makes is checked: a register accessed with the
 * wrong width, a write to a read-only register and an access past the end
 * are ignored (reads give all ones); nothing a guest writes can throw.
 *
 * A closed function answers like one removed from the bus: every read is
 * all ones and every write is dropped, and one last interrupt tells a
 * driver waiting on it to look (it reads the ISR and finds all ones).
 *
 * @module
 */

import { allOnes } from "../pci/all_ones.ts";
import { PciConfigSpace } from "../pci/config_space.ts";
import type { VirtioDevice } from "./device.ts";
import { LEGACY_PFN_SHIFT, legacyRingAddresses } from "./ring_layout.ts";
import { DeviceStatus } from "./spec.ts";
import { ISR_CONFIG, type TransportState } from "./transport_state.ts";

/** PCI vendor ID of virtio devices. */
export const VIRTIO_PCI_VENDOR = 0x1af4;
/** Legacy PCI device IDs are 0x1000 + (virtio device ID − 1): 0x1001 for block (§4.1.2.3). */
export const LEGACY_DEVICE_ID_BASE = 0x0fff;

/** Offsets of the legacy register block in BAR0 (virtio 1.2 §4.1.4.8). */
export const LegacyRegister = {
  HOST_FEATURES: 0,
  GUEST_FEATURES: 4,
  QUEUE_PFN: 8,
  QUEUE_NUM: 12,
  QUEUE_SEL: 14,
  QUEUE_NOTIFY: 16,
  STATUS: 18,
  ISR: 19,
  /** Device configuration (no MSI-X). */
  CONFIG: 20,
} as const;

const LOW_32 = 0xffff_ffffn;

/** BAR0's size: a power of two that holds the registers and the device configuration. */
function barSizeFor(configSize: number): number {
  let size = 4;
  while (size < LegacyRegister.CONFIG + configSize) size *= 2;
  return size;
}

/** A legacy virtio-PCI function wrapping one {@linkcode VirtioDevice}. */
export class LegacyVirtioPci {
  /** The function's PCI configuration space. */
  readonly config: PciConfigSpace;
  readonly #device: VirtioDevice;
  readonly #transport: TransportState;
  #queueSelect = 0;
  readonly #pfn: number[];
  #closed = false;

  /**
   * Builds the legacy (transitional) virtio-PCI function of `device`:
   * vendor 0x1AF4, device 0x1000 + (device ID − 1), subsystem the device ID
   * (§4.1.2.3), INTA#, and an I/O BAR0 holding the legacy registers and the
   * device's config space at offset 20 (§4.1.4.8).
   *
   * @param device the device behind the function
   * @param transport the shared status/ISR/interrupt words
   * @param classCode PCI class and subclass (mass storage, other, for block)
   */
  constructor(
    device: VirtioDevice,
    transport: TransportState,
    classCode: { classCode: number; subclass: number },
  ) {
    this.#device = device;
    this.#transport = transport;
    this.#pfn = new Array(device.queueCount).fill(0);
    this.config = new PciConfigSpace({
      vendorId: VIRTIO_PCI_VENDOR,
      deviceId: LEGACY_DEVICE_ID_BASE + device.deviceId,
      revisionId: 0,
      classCode: classCode.classCode,
      subclass: classCode.subclass,
      progIf: 0,
      subsystemVendorId: VIRTIO_PCI_VENDOR,
      subsystemId: device.deviceId,
      interruptPin: 1,
    }, [{ size: barSizeFor(device.configSize) }]);
  }

  /** The device behind the function. */
  get device(): VirtioDevice {
    return this.#device;
  }

  /** What messages call the function: its device's name. */
  get name(): string {
    return this.#device.name;
  }

  /** Whether {@linkcode close} was called: the function answers like a removed one. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Closes the function, once its device has stopped (no request of it can
   * touch guest memory any more): from now on it answers like a function
   * removed from the bus, every BAR read all ones (PCI Local Bus 3.0 §6.1)
   * and every write dropped. A driver learns it from the one interrupt this
   * raises, or at its next interrupt: the ISR it reads is all ones, which
   * no live function returns (only bits 0 and 1 are defined, §4.1.4.5).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#transport.raise(ISR_CONFIG);
  }

  /** The transport words (status, ISR, interrupt line). */
  get transport(): TransportState {
    return this.#transport;
  }

  /** Size of BAR0 in bytes. */
  get barSize(): number {
    return this.config.bar(0)!.size;
  }

  /** Reads `size` bytes at `offset` of BAR0. */
  ioRead(offset: number, size: number): number {
    if (this.#closed || !Number.isInteger(offset) || offset < 0 || offset + size > this.barSize) {
      return allOnes(size);
    }
    if (offset >= LegacyRegister.CONFIG) {
      return this.#device.readConfig(offset - LegacyRegister.CONFIG, size);
    }
    const device = this.#device;
    switch (offset) {
      case LegacyRegister.HOST_FEATURES:
        if (size !== 4) break;
        return Number(device.offeredFeatures & LOW_32);
      case LegacyRegister.GUEST_FEATURES:
        if (size !== 4) break;
        return Number(device.ackedFeatures & LOW_32);
      case LegacyRegister.QUEUE_PFN:
        if (size !== 4) break;
        return this.#pfn[this.#queueSelect] ?? 0;
      case LegacyRegister.QUEUE_NUM:
        if (size !== 2) break;
        return this.#queueSelect < device.queueCount ? device.queueSize : 0;
      case LegacyRegister.QUEUE_SEL:
        if (size !== 2) break;
        return this.#queueSelect;
      case LegacyRegister.STATUS:
        if (size !== 1) break;
        return this.#transport.status;
      case LegacyRegister.ISR:
        if (size !== 1) break;
        // §4.1.4.5: reading the ISR clears it and de-asserts the interrupt.
        return this.#transport.takeIsr();
    }
    return allOnes(size);
  }

  /** Writes `size` bytes of `value` at `offset` of BAR0. */
  ioWrite(offset: number, size: number, value: number): void {
    if (this.#closed || !Number.isInteger(offset) || offset < 0 || offset + size > this.barSize) {
      return;
    }
    if (offset >= LegacyRegister.CONFIG) {
      this.#device.writeConfig(offset - LegacyRegister.CONFIG, size, value);
      return;
    }
    const device = this.#device;
    switch (offset) {
      case LegacyRegister.GUEST_FEATURES:
        if (size !== 4) return;
        // Features are fixed once the driver is running (§3.1.1).
        if (this.#transport.status & DeviceStatus.DRIVER_OK) return;
        device.ackFeatures(BigInt(value >>> 0) & device.offeredFeatures & LOW_32);
        return;
      case LegacyRegister.QUEUE_PFN:
        if (size !== 4) return;
        this.#setQueuePfn(value >>> 0);
        return;
      case LegacyRegister.QUEUE_SEL:
        if (size !== 2) return;
        this.#queueSelect = value & 0xffff;
        return;
      case LegacyRegister.QUEUE_NOTIFY:
        if (size !== 2) return;
        if ((value & 0xffff) < device.queueCount) device.notify(value & 0xffff);
        return;
      case LegacyRegister.STATUS:
        if (size !== 1) return;
        if ((value & 0xff) === 0) this.reset();
        // Keeps DEVICE_NEEDS_RESET, even one a worker sets during the write (§2.1.2).
        else this.#transport.writeByDriver(value);
        return;
    }
  }

  /** Device reset (the driver wrote 0 to STATUS). */
  reset(): void {
    this.#device.reset();
    this.#pfn.fill(0);
    this.#queueSelect = 0;
    this.#transport.reset();
  }

  #setQueuePfn(pfn: number): void {
    const index = this.#queueSelect;
    const device = this.#device;
    if (index >= device.queueCount) return;
    // A device that needs a reset stays broken until one, as in QEMU: a new ring does not revive it.
    if (this.#transport.status & DeviceStatus.DEVICE_NEEDS_RESET) return;
    if (this.#pfn[index] !== 0) {
      device.disableQueue(index);
      this.#pfn[index] = 0;
    }
    if (pfn === 0) return;
    const base = pfn * 2 ** LEGACY_PFN_SHIFT;
    const ok = device.queue(index).activate({
      size: device.queueSize,
      ...legacyRingAddresses(base, device.queueSize),
      features: Number(device.ackedFeatures & LOW_32),
      maxChain: device.maxChain,
    });
    // A ring that does not lie wholly in guest memory leaves the queue disabled.
    if (ok) this.#pfn[index] = pfn;
  }
}
