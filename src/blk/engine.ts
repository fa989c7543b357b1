/**
 * The executor seam: who takes chains off the ring and runs them. The device
 * hands an engine everything it needs as shared state; the in-process engine
 * (`inline_engine.ts`) runs requests on the calling thread, the blockif
 * engine (`src/blockif/`) on a group of Web Workers that devices may share.
 * Both run the same drain/start/finish code (`src/blockif/server.ts`) over
 * an I/O queue on the medium (`src/io/`).
 *
 * Guest memory is the device's at construction and may be replaced later
 * ({@linkcode RequestEngine.attachMemory}: a vhost-user memory-table change)
 * without restarting threads or reopening the medium. The medium may be
 * replaced too ({@linkcode RequestEngine.changeMedium}: a resize, a medium
 * inserted into or ejected from a `nodisk` drive) without restarting threads.
 *
 * @module
 */

import type { BackendSpec } from "../backend/backend.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { DoorbellHandle } from "../virtio/doorbell.ts";
import type { QueueStateBuffer } from "../virtio/queue_state.ts";
import type { InterruptHandle, InterruptSink } from "../virtio/transport_state.ts";
export type { InterruptHandle };
import type { BlkState } from "./blk_state.ts";
import type { MediumErrors } from "./medium_errors.ts";
import type { RequestLimits } from "./request.ts";

/** Everything an engine needs to serve a block device's queues. */
export interface EngineContext {
  /** Guest memory the rings and request buffers live in. */
  readonly memory: GuestMemory;
  /** Shared state of each queue. */
  readonly queues: readonly QueueStateBuffer[];
  /** Where interrupts and "needs reset" go. */
  readonly interrupts: InterruptSink;
  /** A structured-cloneable description of `interrupts` for other threads. */
  readonly interruptHandle: InterruptHandle;
  /** The write-cache state every write consults (CONFIG_WCE, §5.2.6.2). */
  readonly state: BlkState;
  /** The medium; each thread of the engine opens its own handle from it. */
  readonly backend: BackendSpec;
  /** Whether the device offered VIRTIO_BLK_F_RO: writes complete IOERR and write nothing. */
  readonly readOnly: boolean;
  /** Capacity, seg_max and DISCARD/WRITE_ZEROES limits every parsed request is checked against. */
  readonly limits: RequestLimits;
  /**
   * Hold a request back while an earlier overlapping one is in flight and
   * one of them changes the medium (false: ACRN's `no_bst_block`).
   */
  readonly orderOverlapping: boolean;
  /** Most descriptors one chain may have (sizes every DescriptorChain). */
  readonly maxChain: number;
  /** The 20 GET_ID bytes. */
  readonly serial: Uint8Array;
  /** Where the medium's failures are counted (every thread records into it). */
  readonly errors: MediumErrors;
  /** What log lines call the device (`virtio-blk device on disk.img`). */
  readonly name: string;
  /** Where a medium failure of a new kind is reported (default: console.error). */
  readonly log?: (message: string) => void;
}

/**
 * A new medium for an engine's threads: what they open from now on, and
 * what the requests they parse and start from now on are checked against.
 */
export interface MediumChange {
  /** The medium (a no-medium spec for an empty drive, `src/backend/no_medium.ts`). */
  readonly backend: BackendSpec;
  /** Writes complete IOERR (the device offered VIRTIO_BLK_F_RO, or the medium is read-only). */
  readonly readOnly: boolean;
  /** The device's capacity with this medium, in 512-byte sectors. */
  readonly capacity: number;
}

/** An executor of a device's requests. */
export interface RequestEngine {
  /** Resolves once the engine can serve (its threads started and opened the medium). */
  ready(): Promise<void>;
  /** The driver kicked queue `index`: take and run what it made available. */
  notify(index: number): void;
  /** The doorbell of queue `index`: ringing it from any thread is a kick. */
  doorbell(index: number): DoorbellHandle;
  /**
   * The queue was disabled (its generation already bumped): drop work not
   * started, and return only once no started request can still touch guest
   * memory.
   */
  quiesce(index: number): void;
  /**
   * {@linkcode quiesce} without blocking the calling thread: drops work not
   * started at once, and resolves once no started request can still touch
   * guest memory (never, while the medium hangs). The vhost-user back end
   * needs it: its control socket, signals and other connections are served
   * on the thread that waits. Engines without it are quiesced synchronously.
   */
  settle?(index: number): Promise<void>;
  /**
   * Serves the device over new guest memory from now on (a vhost-user
   * memory-table change). Every queue is disabled and quiesced when this is
   * called; threads keep running and the medium stays open.
   */
  attachMemory(memory: GuestMemory): Promise<void>;
  /**
   * Serves the device from `change.backend` from now on. Resolves once no
   * thread can start a request on the old medium or check one against the
   * old capacity any more: every request started on the old medium has
   * finished (a shrink can then cut the file), and requests parsed before
   * but started after are checked against the new capacity. Queues keep
   * running. Rejects when a thread cannot open the new medium (its
   * requests then fail IOERR until the next change). An engine without it
   * serves one medium for its life (the device refuses a change).
   */
  changeMedium?(change: MediumChange): Promise<void>;
  /** Stops serving and releases threads and file handles. */
  close(): Promise<void>;
}

/** Builds an engine for a device. */
export type EngineFactory = (context: EngineContext) => RequestEngine;
