/**
 * The QMP control socket: a Unix socket speaking the QEMU Machine Protocol
 * (QEMU 7.2's), through which `qmp-shell`, libvirt-style tools or a few
 * lines of Python query the drives (`query-block`), resize their files
 * (`block_resize`: the guest's driver gets a configuration-change
 * interrupt), and eject and insert media (`eject`,
 * `blockdev-change-medium`: ACRN's `nodisk` and blkrescan). Deno and Node
 * (`node:net`); not for a web page.
 *
 * @example
 * ```ts
 * import { createVirtioBlkPci, SharedGuestMemory } from "./mod.ts";
 * import { describeFile } from "./file.ts";
 * import { QmpServer } from "./qmp.ts";
 *
 * const memory = SharedGuestMemory.allocate(16 << 20);
 * const disk = createVirtioBlkPci(memory, { backend: describeFile("disk.img") });
 * const qmp = await QmpServer.listen({
 *   path: "/tmp/qmp.sock",
 *   drives: [{ device: "virtio0", qdev: "virtio-disk0", nodeName: "vda", holder: disk.device }],
 * });
 * ```
 *
 * @module
 */

export {
  DEFAULT_MAX_CLIENTS,
  DEFAULT_MAX_UNSENT_BYTES,
  QmpServer,
  type QmpServerOptions,
} from "./src/qmp/server.ts";
export { isRemovable, type MediumHolder, type QmpDrive } from "./src/qmp/drive.ts";
export { DriveTable, type EventSink, type ReadOnlyMode } from "./src/qmp/drive_table.ts";
export { DEFAULT_JSON_LIMITS, type JsonStreamLimits } from "./src/qmp/json_stream.ts";
export {
  type Json,
  type JsonObject,
  QEMU_VERSION,
  type QmpErrorClass,
  type QmpVersion,
} from "./src/qmp/protocol.ts";
export { MAX_PENDING } from "./src/qmp/session.ts";
export { isNoMedium, noMedium, type NoMediumSpec } from "./src/backend/no_medium.ts";
