/**
 * Disks on an NBD server (qemu-nbd, nbdkit, rbd-nbd, …), and the NBD
 * client they use. `describeNbd` probes the export a URI names
 * (`nbd://host[:port]/export`, `nbd+unix:///export?socket=/path`) and
 * describes a device on it; every I/O thread of the device then connects
 * on its own (one connection per thread when the server offers
 * multi-conn, one in all otherwise), with many requests in flight on each.
 * A request the server does not answer within the connection's
 * `requestTimeoutMs` (15 s for a disk) fails with IOERR; the client
 * reconnects with back-off and the device serves again once the server is
 * back. Deno and Node (`node:net`: TCP and Unix sockets); not for a web page.
 * See `docs/nbd.md`.
 *
 * @example A device on an export
 * ```ts
 * import { createVirtioBlkPci, SharedGuestMemory } from "./mod.ts";
 * import { describeNbd } from "./nbd.ts";
 *
 * const memory = SharedGuestMemory.allocate(16 << 20);
 * const backend = await describeNbd("nbd://127.0.0.1:10809/disk", { readOnly: false });
 * const disk = createVirtioBlkPci(memory, { backend });
 * ```
 *
 * @example The client on its own
 * ```ts
 * import { NbdClient } from "./nbd.ts";
 *
 * await using client = await NbdClient.connect("nbd+unix:///disk?socket=/run/nbd.sock");
 * const block = new Uint8Array(4096);
 * await client.read(0, block);
 * ```
 *
 * @module
 */

export {
  isNbdSpec,
  type NbdBackendSpec,
  type NbdConnectionSettings,
} from "./src/backend/nbd_driver.ts";
export {
  describeNbd,
  NBD_DEVICE_REQUEST_TIMEOUT_MS,
  type NbdOptions,
} from "./src/backend/nbd_spec.ts";
export {
  NBD_CLIENT_DEFAULTS,
  NbdClient,
  type NbdClientOptions,
  type NbdRequest,
} from "./src/nbd/client.ts";
export { NbdRequestError } from "./src/nbd/errors.ts";
export { type NbdExport, type Negotiation } from "./src/nbd/export_info.ts";
export { NbdOp, type NbdOpCode } from "./src/nbd/operation.ts";
export { connectionCount, NbdPool } from "./src/nbd/pool.ts";
export type { ByteVector } from "./src/nbd/scatter.ts";
export {
  isNbdUri,
  type NbdAddress,
  type NbdTcpAddress,
  type NbdUnixAddress,
  parseNbdUri,
} from "./src/nbd/uri.ts";
