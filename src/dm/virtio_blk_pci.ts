/**
 * A virtio-blk device behind a legacy virtio-PCI function: the unit a device
 * model plugs into a PCI slot, and what library users create to put a disk
 * in front of their own guest.
 *
 * @module
 */

import { type BlkDeviceOptions, VirtioBlkDevice } from "../blk/device.ts";
import { workerEngine } from "../blockif/worker_engine.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { LegacyVirtioPci } from "../virtio/legacy_pci.ts";
import { type InterruptLineHandle, TransportState } from "../virtio/transport_state.ts";

/** PCI class of a virtio-blk function: mass storage (ACRN sets PCIC_STORAGE, subclass 0). */
export const BLK_PCI_CLASS = { classCode: 0x01, subclass: 0x00 } as const;

/** A legacy virtio-blk PCI function. */
export interface VirtioBlkPci {
  /** The PCI function: configuration space and BAR0 register handlers. */
  readonly pci: LegacyVirtioPci;
  /** The block device behind it. */
  readonly device: VirtioBlkDevice;
  /** Status, ISR and interrupt words shared with data-plane threads and the guest. */
  readonly transport: TransportState;
  /**
   * Stops the device's engine and releases its threads and files, then
   * closes the function: a driver's requests, pending or later, fail with
   * `VirtioBlkError` `CLOSED` naming the device (see `LegacyVirtioPci.close`).
   */
  close(): Promise<void>;
}

/**
 * Creates a virtio-blk device on `memory` and the legacy PCI function that
 * exposes it. Requests run on the blockif engine (8 worker threads) unless
 * `options.engine` says otherwise (`(context) => new InlineEngine(context)`
 * runs them on the thread that kicks). Its interrupts pulse the function's
 * own interrupt word, or `interruptLine` when the device model shares one
 * among devices.
 *
 * @example
 * ```ts
 * const memory = SharedGuestMemory.allocate(16 << 20);
 * const disk = createVirtioBlkPci(memory, { backend: MemoryBackend.create(1 << 20) });
 * disk.pci.ioRead(0, 4); // HOST_FEATURES
 * ```
 */
export function createVirtioBlkPci(
  memory: GuestMemory,
  options: BlkDeviceOptions,
  interruptLine?: InterruptLineHandle,
): VirtioBlkPci {
  const transport = new TransportState(undefined, interruptLine);
  const device = new VirtioBlkDevice(memory, { engine: workerEngine(), ...options }, {
    sink: transport,
    handle: transport.handle(),
    // A closed function reads as removed: it says nothing more.
    configChanged: () => {
      if (!pci.closed) transport.configChanged();
    },
  });
  const pci = new LegacyVirtioPci(device, transport, BLK_PCI_CLASS);
  const close = async () => {
    // The device first: once the function reads as closed a driver gives up
    // its buffers, so no started request may still write into them.
    await device.close();
    pci.close();
  };
  return { pci, device, transport, close };
}
