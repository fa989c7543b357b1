/**
 * The browser build's entry: `scripts/build_browser.ts` bundles it into one
 * ES module, `web/dist/virtio-blk.js`, with a worker entry point next to it
 * for each kind of thread ({@linkcode THREAD_ENTRIES}). It holds the
 * browser-safe core (`mod.ts`), the OPFS medium, the built-in guest and how
 * to run it on a machine, and the functions the worker entry points call.
 * Threads are module Web Workers; a thread given a handle imports the
 * bundle, which it has already loaded, so one copy of every registry serves
 * each thread.
 *
 * @example In a page served cross-origin isolated (COOP same-origin, COEP require-corp)
 * ```ts
 * const lib = await import("./dist/virtio-blk.js");
 * await lib.createOpfsDisk("disks/scratch.img", 64 << 20);
 * const backend = await lib.describeOpfsFile("disks/scratch.img");
 * const vm = await lib.VirtualMachine.create({ disks: [{ slot: 3, func: 0, device: { backend } }] });
 * await lib.runUos(vm, { kind: "lsblk", json: false }, { stdout: (text) => console.log(text) });
 * await vm.close();
 * ```
 *
 * @module
 */

import { serveFetchThread } from "./src/backend/http/fetch_channel.ts";
import { serveOpfsProbe } from "./src/backend/opfs/opfs_probe.ts";
import { serveBlockifThread } from "./src/blockif/worker_main.ts";
import { runUosVcpu } from "./src/guest/uos_vcpu.ts";

export * from "./mod.ts";

// The OPFS medium and the page's disk files
export { describeOpfsFile, type OpfsOptions } from "./src/backend/opfs/opfs_spec.ts";
export { OpfsBackend, type OpfsBackendSpec } from "./src/backend/opfs/opfs_driver.ts";
export { FileBackend, type FileWindow } from "./src/backend/file_backend.ts";
export { type SpaceCalls, ZeroMethod, type ZeroMethodCode } from "./src/io/space.ts";
export type { SectorRange } from "./src/backend/range_window.ts";
export {
  copyIntoOpfs,
  createOpfsDisk,
  listOpfsFiles,
  type OpfsEntry,
  opfsFileExists,
  removeOpfsFile,
} from "./src/backend/opfs/opfs_files.ts";
export { opfsUnavailable } from "./src/backend/opfs/opfs_api.ts";

// The built-in guest: its jobs, and running them on a machine
export { runUos, type UosOutput } from "./src/guest/uos_run.ts";
export type { UosJob, UosResult } from "./src/guest/uos.ts";
export type {
  DirectionResult,
  IoErrorRecord,
  LoadPhase,
  LoadProgress,
  LoadResult,
  MismatchRecord,
  StopReason,
  VerifyResult,
} from "./src/guest/jobs/load.ts";
export type { LoadPlan } from "./src/guest/jobs/load_plan.ts";
export type { LatencyHistogramState, LatencySummary } from "./src/guest/jobs/latency.ts";
export { VerifyStatus, type VerifyStatusCode } from "./src/guest/jobs/verify.ts";
export {
  type Amount,
  type LoadOptions,
  parseLoadOptions,
  READ_WRITE_MODES,
  type ReadWrite,
  type VerifyMethod,
} from "./src/guest/jobs/load_options.ts";
export { formatBinary, formatCount, humanSize } from "./src/guest/jobs/units.ts";
export { StopFlag } from "./src/sync/stop_flag.ts";

/**
 * What each worker entry point of the bundle runs, by file name (next to
 * the bundle, as the modules that start them name them): the blockif
 * threads (`worker.js`), the built-in guest's vCPU (`uos_worker.js`), the
 * OPFS probe (`opfs_probe_worker.js`), the HTTP helper (`fetch_thread.js`,
 * for workers without sync XHR).
 */
export const THREAD_ENTRIES: Readonly<Record<string, () => Promise<void>>> = {
  worker: serveBlockifThread,
  uos_worker: runUosVcpu,
  opfs_probe_worker: serveOpfsProbe,
  fetch_thread: serveFetchThread,
};
