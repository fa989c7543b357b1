/**
 * The set-up message a blockif worker receives (structured-cloneable:
 * SharedArrayBuffers and plain data only), and how a worker turns it back
 * into live objects.
 *
 * @module
 */

import type { BackendSpec } from "../backend/backend.ts";
import { openBackend } from "../backend/open_backend.ts";
import { BlkState } from "../blk/blk_state.ts";
import type { InterruptHandle } from "../blk/engine.ts";
import type { GuestMemory, GuestMemoryHandle } from "../memory/guest_memory.ts";
import { MappedGuestMemory } from "../memory/mapped_memory.ts";
import { SharedGuestMemory } from "../memory/shared_memory.ts";
import { QueueStateBuffer } from "../virtio/queue_state.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import { type InterruptSink, TransportState } from "../virtio/transport_state.ts";
import { eventFdInterruptSink } from "../vhost_user/interrupts.ts";
import type { PoolDimensions } from "./pool_layout.ts";
import { RequestPool } from "./request_pool.ts";
import type { ServerParts, ServerSettings } from "./server.ts";

/** Everything a worker needs, as sent with postMessage: handles of the live objects, and the settings. */
export interface WorkerInit {
  readonly index: number;
  readonly memory: GuestMemoryHandle;
  readonly queues: readonly { readonly buffer: SharedArrayBuffer; readonly maxQueueSize: number }[];
  readonly pool: { readonly buffer: SharedArrayBuffer; readonly dimensions: PoolDimensions };
  readonly state: SharedArrayBuffer;
  readonly interrupts: InterruptHandle;
  readonly backend: BackendSpec;
  readonly settings: ServerSettings;
}

/** Messages a worker posts to the engine. */
export type WorkerMessage =
  | { readonly type: "ready"; readonly index: number }
  | { readonly type: "error"; readonly index: number; readonly message: string }
  | { readonly type: "closed"; readonly index: number };

/** Rebuilds guest memory from its handle on this thread. */
export function openGuestMemory(handle: GuestMemoryHandle): GuestMemory {
  switch (handle.kind) {
    case "shared":
      return SharedGuestMemory.fromHandle(handle);
    case "mapped":
      return MappedGuestMemory.fromHandle(handle);
  }
}

/** Rebuilds the interrupt sink from its handle on this thread. */
export function openInterruptSink(handle: InterruptHandle): InterruptSink {
  return handle.kind === "eventfd"
    ? eventFdInterruptSink(handle)
    : new TransportState(handle.buffer, handle.line);
}

/** Builds a worker's live objects (opening its own backend handle). */
export function openServerParts(init: WorkerInit): ServerParts {
  const memory = openGuestMemory(init.memory);
  return {
    memory,
    queues: init.queues.map((q) =>
      new SplitQueue(memory, new QueueStateBuffer(q.maxQueueSize, q.buffer))
    ),
    pool: new RequestPool(init.pool.dimensions, init.pool.buffer),
    state: new BlkState(init.state),
    interrupts: openInterruptSink(init.interrupts),
    backend: openBackend(init.backend),
    ...init.settings,
  };
}
