/**
 * A virtio-blk device back end in TypeScript, modelled on the ACRN device
 * model's virtio-blk: a legacy virtio-PCI block function whose virtqueue
 * lives in guest memory held in a SharedArrayBuffer, plus the guest-side
 * driver that uses it.
 *
 * @example Put a RAM disk in front of a guest and drive it with the guest driver
 * ```ts
 * import {
 *   createVirtioBlkPci, DirectRegisters, GuestAllocator, InterruptLine,
 *   MemoryBackend, SharedGuestMemory, VirtioBlkDriver,
 * } from "./mod.ts";
 *
 * const memory = SharedGuestMemory.allocate(16 << 20);
 * const disk = createVirtioBlkPci(memory, { backend: MemoryBackend.create(1 << 20) });
 * const driver = VirtioBlkDriver.init({
 *   memory,
 *   registers: new DirectRegisters(disk.pci),
 *   interrupt: new InterruptLine(disk.transport.buffer),
 *   allocator: new GuestAllocator(0x1000, memory.size),
 * });
 * await driver.write(0, new Uint8Array(512).fill(7));
 * console.log(await driver.read(0, 512), await driver.getId());
 * await disk.close();
 * ```
 *
 * @module
 */

import { isMainModule } from "./src/runtime/main_module.ts";

// Guest memory
export {
  type GuestMemory,
  type GuestMemoryHandle,
  type MemoryRegion,
} from "./src/memory/guest_memory.ts";
export { SharedGuestMemory } from "./src/memory/shared_memory.ts";

// Backends
export type { BackendSpec, BlockBackend } from "./src/backend/backend.ts";
export { MemoryBackend } from "./src/backend/memory_backend.ts";
export { openBackend } from "./src/backend/open_backend.ts";
export { describeFile, type FileOptions } from "./src/backend/file_spec.ts";

// The virtio-blk device and its PCI function
export { type BlkDeviceOptions, DEFAULT_QUEUE_SIZE, VirtioBlkDevice } from "./src/blk/device.ts";
export { BLK_PCI_CLASS, createVirtioBlkPci, type VirtioBlkPci } from "./src/dm/virtio_blk_pci.ts";
export type { EngineContext, EngineFactory, RequestEngine } from "./src/blk/engine.ts";
export { InlineEngine } from "./src/blk/inline_engine.ts";
export {
  WorkerEngine,
  workerEngine,
  type WorkerEngineOptions,
} from "./src/blockif/worker_engine.ts";
export { BlkFeature, RequestStatus, RequestType } from "./src/blk/spec.ts";
export { LegacyRegister, LegacyVirtioPci } from "./src/virtio/legacy_pci.ts";
export { TransportState } from "./src/virtio/transport_state.ts";
export { QueueFault, SplitQueue } from "./src/virtio/split_queue.ts";

// The guest side
export { GuestAllocator } from "./src/guest/allocator.ts";
export { DirectRegisters, InterruptLine, type RegisterAccess } from "./src/guest/io.ts";
export {
  type Completion,
  DeviceFault,
  type DiskInfo,
  type DriverOptions,
  RequestFailed,
  VirtioBlkDriver,
} from "./src/guest/virtio_blk_driver.ts";

// vhost-user-blk (Deno only: FFI)
export {
  serveVhostUserBlk,
  VHOST_USER_MAX_QUEUE_SIZE,
  VHOST_USER_SEG_MAX,
  type VhostUserBlkOptions,
  type VhostUserBlkServer,
} from "./src/vhost_user/server.ts";
export { MappedGuestMemory } from "./src/memory/mapped_memory.ts";

// The device model and its command line
export { VirtualMachine, type VmConfig, type VmDiskConfig } from "./src/dm/vm.ts";
export { checkSlots, diskConfig, parseSlotSpec, type SlotSpec } from "./src/dm/slot_spec.ts";
export { main } from "./src/cli/main.ts";

// Errors
export { type ErrorCode, VirtioBlkError } from "./src/errors.ts";

// `deno run mod.ts …` and `node mod.js …` (the npm package) start the command line.
if (isMainModule(import.meta)) {
  const { runCli } = await import("./src/cli/run.ts");
  await runCli();
}
