/**
 * The block backend interface: what an executor needs from the medium, and
 * how media plug in. A medium is described once by a structured-cloneable
 * {@linkcode BackendSpec} that names its driver; every thread opens its own
 * handle from it ({@linkcode openBackend}), so handles are never shared
 * across threads. A synchronous handle ({@linkcode BlockBackend}) serves
 * behind the synchronous I/O queue; a driver of an asynchronous medium
 * opens an I/O queue itself. Adding a kind of medium adds a driver module
 * that registers itself; nothing else changes.
 *
 * Data moves straight between the medium and a guest-memory view: `bytes`
 * is the whole region's Uint8Array and `at` the offset in it, so no view is
 * made per request.
 *
 * @module
 */

import type { IoQueue } from "../io/io_queue.ts";
import { SyncIoQueue } from "../io/sync_io_queue.ts";
import { type PluginHandle, PluginRegistry } from "../runtime/plugins.ts";
import type { WakeSignalFactory, WakeSignalHandle } from "../sync/wake_signal.ts";

/** A medium as an executor sees it. */
export interface BlockBackend {
  /** Bytes the device exposes (the `range=` window for a file). */
  readonly size: number;
  /** Whether writes are refused (`ro`). */
  readonly readOnly: boolean;
  /**
   * Reads exactly `length` bytes at disk offset `offset` into
   * `bytes[at, at + length)`. Throws a `VirtioBlkError` on an error or a
   * short read.
   */
  read(offset: number, bytes: Uint8Array, at: number, length: number): void;
  /** Writes exactly `length` bytes from `bytes[at, at + length)` at `offset`. */
  write(offset: number, bytes: Uint8Array, at: number, length: number): void;
  /** Makes every write that has completed stable (fdatasync for a file). */
  flush(): void;
  /**
   * Gives `length` bytes at `offset` back (DISCARD): the medium may
   * deallocate them, and what they read afterwards is undefined. Present
   * when the spec's capabilities say `discard`.
   */
  discard?(offset: number, length: number): void;
  /**
   * Makes `length` bytes at `offset` read as zeros (WRITE_ZEROES); with
   * `unmap` the medium may deallocate them instead. Present when the spec's
   * capabilities say `writeZeroes`.
   */
  writeZeroes?(offset: number, length: number, unmap: boolean): void;
  /** Releases the handle. */
  close(): void;
}

/** What a medium can do; the device offers features and config fields from it. */
export interface BackendCapabilities {
  /**
   * FLUSH makes completed writes stable (a file's fdatasync), or the medium
   * has no volatile cache to empty: the device offers VIRTIO_BLK_F_FLUSH
   * and CONFIG_WCE (§5.2.3). False only for a medium that cannot promise
   * stability at all.
   */
  readonly flush: boolean;
  /**
   * Ranges can be given back (hole punching, BLKDISCARD): the device offers
   * VIRTIO_BLK_F_DISCARD when asked to (`discard`), and lets WRITE_ZEROES
   * deallocate (write_zeroes_may_unmap).
   */
  readonly discard: boolean;
  /**
   * Ranges can be made to read as zeros without the guest sending them
   * (ZERO_RANGE, BLKZEROOUT, or zeros written by the medium's driver): the
   * device offers VIRTIO_BLK_F_WRITE_ZEROES when the medium is writable.
   */
  readonly writeZeroes: boolean;
  /**
   * How threads may hold the medium: `"per-thread"`, each thread opens its
   * own handle (files); `"shared"`, every handle sees the same bytes at
   * once (a RAM disk); `"exclusive"`, one handle at a time (the engine then
   * runs one I/O thread); `"async"`, one handle serves many requests in
   * flight (a network disk).
   */
  readonly handles: "per-thread" | "shared" | "exclusive" | "async";
}

/**
 * A structured-cloneable description from which any thread opens a
 * backend: the driver that opens it (by its module's URL), the medium's
 * name and size, and what it can do. Each driver extends it with what it
 * needs (a path, a buffer, a URL).
 */
export interface BackendSpec extends PluginHandle {
  /** What identifies the medium in messages, and for a default serial. */
  readonly name: string;
  /** Bytes the device exposes (a multiple of 512). */
  readonly size: number;
  /** Whether writes are refused (the device then offers VIRTIO_BLK_F_RO). */
  readonly readOnly: boolean;
  /** What the medium can do. */
  readonly capabilities: BackendCapabilities;
}

/** What a thread opening an I/O queue gives it. */
export interface ThreadIo {
  /** Operations the queue must hold at once (the thread's pool elements, its tokens). */
  readonly capacity: number;
  /** Most data segments (or DISCARD/WRITE_ZEROES ranges) of one operation. */
  readonly segMax: number;
  /** The wake signal the thread's group rings, for a queue that sleeps in the kernel. */
  readonly wake?: WakeSignalHandle;
  /** The thread's index in its group (which part of `wake` is its own). */
  readonly thread?: number;
}

/** Opens media of one kind on any thread. */
export interface BackendDriver<S extends BackendSpec = BackendSpec> {
  /**
   * What a thread must await before it opens the medium, called on each
   * thread that serves it before {@linkcode open} or {@linkcode openQueue}:
   * an OPFS disk's access handle and the helper thread of HTTP requests on
   * Deno and Node come from promises, while opening is synchronous. A
   * medium whose driver prepares opens only on threads that awaited
   * {@linkcode prepareBackend} (the blockif workers do; the in-process
   * engine does not).
   */
  prepare?(spec: S): Promise<void>;
  /** Opens a handle on this thread for synchronous I/O. */
  open(spec: S): BlockBackend;
  /**
   * Opens an I/O queue on this thread; without it, {@linkcode open}'s handle
   * serves behind a synchronous queue.
   */
  openQueue?(spec: S, thread: ThreadIo): IoQueue;
  /**
   * For a medium whose I/O queue makes its thread sleep in the kernel (where
   * `Atomics.notify` cannot wake it): how to make a wake signal for the
   * threads that serve it, on the engine's thread (see `src/sync/wake_signal.ts`).
   */
  wakeSignal?(spec: S): WakeSignalFactory | undefined;
}

/** The backend drivers, registered by their modules as they are imported. */
export const backendDrivers: PluginRegistry<BackendDriver> = new PluginRegistry("backend driver");

/**
 * Opens `spec` on this thread, whose driver must be loaded here (it is on
 * the thread that described the medium; a worker loads it first with
 * {@linkcode loadBackendDriver}).
 *
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` when the medium cannot be opened
 */
export function openBackend(spec: BackendSpec): BlockBackend {
  return backendDrivers.get(spec).open(spec);
}

/** Imports `spec`'s driver on this thread if it is not yet. */
export async function loadBackendDriver(spec: BackendSpec): Promise<void> {
  await backendDrivers.load(spec);
}

/**
 * Imports `spec`'s driver on this thread if it is not yet, and awaits what
 * the driver must do here before it opens `spec` (its `prepare`).
 */
export async function prepareBackend(spec: BackendSpec): Promise<void> {
  const driver = await backendDrivers.load(spec);
  await driver.prepare?.(spec);
}

/**
 * This thread's I/O queue on `spec`: the driver's own, or its synchronous
 * handle behind a synchronous queue.
 */
export function openIoQueue(spec: BackendSpec, thread: ThreadIo): IoQueue {
  const driver = backendDrivers.get(spec);
  return driver.openQueue?.(spec, thread) ??
    new SyncIoQueue(driver.open(spec), thread.capacity);
}

/** How to make a wake signal for the threads that serve `spec`, if its driver's queues need one. */
export function wakeSignalFor(spec: BackendSpec): WakeSignalFactory | undefined {
  return backendDrivers.get(spec).wakeSignal?.(spec);
}
