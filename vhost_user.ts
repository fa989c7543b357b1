/**
 * The vhost-user-blk export: the same virtio-blk device serving a QEMU
 * virtual machine over a Unix socket (QEMU emulates the PCI function and
 * hands the queue, the guest's memory and eventfds to this back end).
 * Deno on Linux x86-64 only: it passes file descriptors, maps guest memory
 * and signals eventfds through Deno's FFI. See docs/vhost_user.md.
 *
 * @example
 * ```ts
 * import { describeFile } from "./file.ts";
 * import { serveVhostUserBlk } from "./vhost_user.ts";
 *
 * const server = serveVhostUserBlk({
 *   socketPath: "/tmp/vblk.sock",
 *   device: { backend: describeFile("disk.img") },
 * });
 * await server.closed;
 * ```
 *
 * @module
 */

export {
  serveVhostUserBlk,
  VHOST_USER_MAX_QUEUE_SIZE,
  VHOST_USER_SEG_MAX,
  type VhostUserBlkOptions,
  type VhostUserBlkServer,
} from "./src/vhost_user/server.ts";
export type { VhostUserBlkSession } from "./src/vhost_user/session.ts";
export type { TableRegion } from "./src/vhost_user/memory_table.ts";
export type { Mapping } from "./src/vhost_user/mapping.ts";
export { MappedGuestMemory, type MappedMemoryHandle } from "./src/vhost_user/mapped_memory.ts";
