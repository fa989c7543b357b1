/**
 * A virtio-blk device back end in TypeScript, modelled on the ACRN device
 * model's virtio-blk: a legacy virtio-PCI block function whose virtqueue
 * lives in guest memory held in a SharedArrayBuffer, plus the guest-side
 * driver that uses it.
 *
 * This is the browser-safe core: nothing it reaches uses Node or Deno. Files
 * and block devices are `./file`, the vhost-user-blk export for QEMU is
 * `./vhost-user` (Deno), the ACRN-style command line is `./cli`.
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

// Guest memory
export {
  type GuestMemory,
  type GuestMemoryHandle,
  type MemoryRegion,
} from "./src/memory/guest_memory.ts";
export { SharedGuestMemory, type SharedMemoryHandle } from "./src/memory/shared_memory.ts";

// Backends
export {
  type BackendCapabilities,
  type BackendDriver,
  backendDrivers,
  type BackendSpec,
  type BlockBackend,
  loadBackendDriver,
  openBackend,
  openIoQueue,
  prepareBackend,
  type ThreadIo,
} from "./src/backend/backend.ts";
export { MemoryBackend, type MemoryBackendSpec } from "./src/backend/memory_backend.ts";
// Lazy HTTP images: a disk image on a web server, read as the guest needs it
export {
  DEFAULT_BLOCK_BYTES,
  DEFAULT_CACHE_BYTES,
  DEFAULT_TIMEOUT_MS,
  describeHttpImage,
  type HttpImageOptions,
} from "./src/backend/http/http_spec.ts";
export type { HttpImageSpec } from "./src/backend/http/http_driver.ts";
export type { BlockCacheHandle } from "./src/backend/http/block_cache.ts";
export type {
  MemoryOverlaySpec,
  OpfsOverlaySpec,
  OverlaySpec,
} from "./src/backend/http/overlay.ts";
export type { OverlayFileLayout } from "./src/backend/http/overlay_file.ts";
export type { SyncAccessMode } from "./src/backend/opfs/opfs_api.ts";

// The virtio-blk device and its PCI function
export {
  type BlkDeviceOptions,
  DEFAULT_QUEUE_SIZE,
  type DiscardOptions,
  type InterruptRoute,
  VirtioBlkDevice,
} from "./src/blk/device.ts";
export type { BlkState } from "./src/blk/blk_state.ts";
export { BLK_PCI_CLASS, createVirtioBlkPci, type VirtioBlkPci } from "./src/dm/virtio_blk_pci.ts";
export { BlkFeature, RequestStatus, RequestType } from "./src/blk/spec.ts";

// Request engines: in-process, and blockif's pool of worker threads, with
// the parsed request and the pool's element states, for reading them.
export type {
  EngineContext,
  EngineFactory,
  MediumChange,
  RequestEngine,
} from "./src/blk/engine.ts";
export { InlineEngine } from "./src/blk/inline_engine.ts";
export {
  WorkerEngine,
  workerEngine,
  type WorkerEngineOptions,
} from "./src/blockif/worker_engine.ts";
export {
  BlockifThreads,
  type BlockifThreadsOptions,
  type BlockifThreadsSettings,
  type DeviceHandles,
} from "./src/blockif/threads.ts";
export type { QueueHandles } from "./src/blockif/worker_init.ts";
export type { DeviceSettings } from "./src/blockif/server.ts";
export {
  describeSummary,
  type MediumErrorKind,
  MediumErrors,
  type MediumErrorSummary,
} from "./src/blk/medium_errors.ts";

// I/O queues: how a thread hands I/O to a medium (for drivers of asynchronous media)
export {
  type EventLoopIoWaiter,
  IO_SHORT,
  IoOp,
  type IoOpCode,
  type IoQueue,
  IoRanges,
  type IoRequest,
  IoVector,
  type IoWaiter,
  type KernelIoWaiter,
} from "./src/io/io_queue.ts";
export { SyncIoQueue } from "./src/io/sync_io_queue.ts";
export { EventLoopWaiter, eventLoopWaiterFor } from "./src/io/event_loop_waiter.ts";
export { ERRNO, errnoName } from "./src/io/errno.ts";
export { type PluginHandle, PluginRegistry } from "./src/runtime/plugins.ts";
// Wake signals: how threads that sleep in the kernel (io_uring) are woken
export {
  openWakeSignal,
  type WakeSignal,
  type WakeSignalFactory,
  type WakeSignalHandle,
  wakeSignals,
} from "./src/sync/wake_signal.ts";
export type { Dispatch } from "./src/blockif/server.ts";
export {
  type BlkRequest,
  type RangeLimits,
  RequestError,
  type RequestErrorCode,
  RequestKind,
  type RequestKindCode,
  type RequestLimits,
  type WriteZeroesLimits,
} from "./src/blk/request.ts";
export type { PoolCounts, RequestPool } from "./src/blockif/request_pool.ts";
export {
  ElementState,
  type ElementStateCode,
  type PoolDimensions,
  type PoolLayout,
} from "./src/blockif/pool_layout.ts";

// The legacy virtio-PCI transport and the split virtqueue
export { LegacyRegister, LegacyVirtioPci } from "./src/virtio/legacy_pci.ts";
export type { IoBar, PciConfigSpace } from "./src/pci/config_space.ts";
export type { VirtioDevice } from "./src/virtio/device.ts";
export {
  type InterruptHandle,
  type InterruptLineHandle,
  type InterruptSink,
  interruptSinks,
  openInterruptSink,
  type TransportInterruptHandle,
  TransportState,
} from "./src/virtio/transport_state.ts";
export {
  Pop,
  type PopResult,
  type QueueConfig,
  QueueFault,
  type QueueFaultCode,
  SplitQueue,
} from "./src/virtio/split_queue.ts";
export type { QueueStateBuffer } from "./src/virtio/queue_state.ts";
export type { RingAddresses } from "./src/virtio/ring_layout.ts";
export type { DescriptorChain } from "./src/virtio/descriptor_chain.ts";
export type { DoorbellHandle } from "./src/virtio/doorbell.ts";

// The guest side
export { GuestAllocator } from "./src/guest/allocator.ts";
export { DirectRegisters, InterruptLine, type RegisterAccess } from "./src/guest/io.ts";
export {
  type Buffers,
  type Completion,
  type CompletionHandler,
  DeviceFault,
  type DiskInfo,
  type DriverOptions,
  type QueueBinding,
  RequestFailed,
  VirtioBlkDriver,
} from "./src/guest/virtio_blk_driver.ts";

// The device model: a machine with its PCI bus and vCPU (for the command line see `./cli`)
export {
  type VcpuInit,
  VirtualMachine,
  type VmConfig,
  type VmDisk,
  type VmDiskConfig,
} from "./src/dm/vm.ts";
export type { PciBus, PciFunction } from "./src/dm/pci_bus.ts";
export type { IoEvents, IoSize } from "./src/dm/io_mailbox.ts";
// Errors
export { type ErrorCode, VirtioBlkError } from "./src/errors.ts";
