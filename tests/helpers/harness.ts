/**
 * Builds the pieces most tests need: guest memory, a virtio-blk PCI function
 * over a RAM disk, and the guest driver talking to it in-process.
 */

import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import type { BlkDeviceOptions } from "../../src/blk/device.ts";
import { createVirtioBlkPci, type VirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { GuestAllocator } from "../../src/guest/allocator.ts";
import { DirectRegisters, InterruptLine } from "../../src/guest/io.ts";
import { type DriverOptions, VirtioBlkDriver } from "../../src/guest/virtio_blk_driver.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";

export const MiB = 1 << 20;

/** A device and a driver over it, in one thread. */
export interface Harness {
  memory: SharedGuestMemory;
  allocator: GuestAllocator;
  disk: VirtioBlkPci;
  /** The RAM disk's bytes (the host's view of the medium). */
  medium: Uint8Array;
  driver: VirtioBlkDriver;
  close(): Promise<void>;
}

export interface HarnessOptions {
  memoryBytes?: number;
  /** Where the guest's allocator starts handing out memory (default 0x1000). */
  ramStart?: number;
  diskBytes?: number;
  readOnly?: boolean;
  device?: Partial<BlkDeviceOptions>;
  driver?: Partial<Pick<DriverOptions, "indirect" | "eventIdx" | "readIsr">>;
}

/** Memory, device and in-process driver. */
export function harness(options: HarnessOptions = {}): Harness {
  const memory = SharedGuestMemory.allocate(options.memoryBytes ?? 16 * MiB);
  const backend = MemoryBackend.create(options.diskBytes ?? 1 * MiB, {
    readOnly: options.readOnly,
  });
  // In-process by default: each kick is served before kick() returns.
  const disk = createVirtioBlkPci(memory, {
    backend,
    engine: (context) => new InlineEngine(context),
    ...options.device,
  });
  const allocator = new GuestAllocator(options.ramStart ?? 0x1000, memory.size);
  const driver = VirtioBlkDriver.init({
    memory,
    registers: new DirectRegisters(disk.pci),
    interrupt: new InterruptLine(disk.transport.buffer),
    allocator,
    ...options.driver,
  });
  return {
    memory,
    allocator,
    disk,
    medium: new Uint8Array(backend.buffer),
    driver,
    close: () => disk.close(),
  };
}

/** Deterministic bytes for a test pattern. */
export function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}
