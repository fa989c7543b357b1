/**
 * The messages between a blockif thread group and its threads
 * (structured-cloneable: SharedArrayBuffers and plain data only), and how a
 * thread turns a device's handles back into live objects.
 *
 * A thread gets one {@linkcode WorkerInit} (the pool and its own settings),
 * then control messages, each numbered with the CONTROL count the group
 * set when it posted it: a device to serve, new guest memory for one, or a
 * device to let go. Nothing per request goes through messages.
 *
 * @module
 */

import {
  type BackendSpec,
  openIoQueue,
  prepareBackend,
  type ThreadIo,
} from "../backend/backend.ts";
import { BlkState } from "../blk/blk_state.ts";
import { MediumErrors } from "../blk/medium_errors.ts";
import {
  type GuestMemory,
  type GuestMemoryHandle,
  guestMemoryKinds,
  openGuestMemory,
} from "../memory/guest_memory.ts";
import { QueueStateBuffer } from "../virtio/queue_state.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import {
  type InterruptHandle,
  interruptSinks,
  openInterruptSink,
} from "../virtio/transport_state.ts";
import type { PoolDimensions } from "./pool_layout.ts";
import type { DeviceSettings, ServedDevice, ThreadSettings } from "./server.ts";

/** A thread's set-up: the pool it serves and its own settings. */
export interface WorkerInit {
  readonly type: "init";
  readonly index: number;
  readonly pool: { readonly buffer: SharedArrayBuffer; readonly dimensions: PoolDimensions };
  /** The thread's settings (its log goes to the group as messages). */
  readonly settings: Omit<ThreadSettings, "log">;
  /** CONTROL when the thread was started: control messages before it are not its. */
  readonly control: number;
}

/** Handles of the shared state of a device's queues. */
export type QueueHandles = readonly {
  readonly buffer: SharedArrayBuffer;
  readonly maxQueueSize: number;
}[];

/** Everything a thread needs to serve a device, as handles. */
export interface DeviceHandles {
  /** The device's plain settings. */
  readonly settings: DeviceSettings;
  /** Its guest memory. */
  readonly memory: GuestMemoryHandle;
  /** The shared state of its queues. */
  readonly queues: QueueHandles;
  /** Its block state region ({@linkcode BlkState}). */
  readonly state: SharedArrayBuffer;
  /** How to reach its interrupt sink. */
  readonly interrupts: InterruptHandle;
  /** Its medium-error region ({@linkcode MediumErrors}). */
  readonly errors: SharedArrayBuffer;
  /** The medium, which the thread opens for itself; absent on a thread that only drains. */
  readonly backend?: BackendSpec;
}

/** A control message from the group; `control` is its number. */
export type ControlMessage =
  | {
    readonly type: "attach";
    readonly control: number;
    readonly device: number;
    readonly handles: DeviceHandles;
  }
  | {
    readonly type: "memory";
    readonly control: number;
    readonly device: number;
    readonly memory: GuestMemoryHandle;
  }
  | {
    readonly type: "medium";
    readonly control: number;
    readonly device: number;
    /** The medium the thread opens in place of the device's current one. */
    readonly backend: BackendSpec;
    /** The device's settings with it (read-only mode, capacity). */
    readonly settings: DeviceSettings;
  }
  | { readonly type: "detach"; readonly control: number; readonly device: number };

/** Messages a thread posts to its group. */
export type WorkerMessage =
  | { readonly type: "ready"; readonly index: number }
  /** A control message was handled (`error` when it failed: a medium that did not open). */
  | {
    readonly type: "done";
    readonly index: number;
    readonly control: number;
    readonly error?: string;
  }
  /** A medium failure worth telling the user about. */
  | { readonly type: "log"; readonly index: number; readonly message: string }
  | { readonly type: "closed"; readonly index: number };

/**
 * Imports, on this thread, the modules that open `handles` (the medium's
 * driver, the kinds of guest memory and interrupt sink), and lets the
 * medium's driver do what it must await before it opens the medium here
 * ({@linkcode prepareBackend}): a thread loads only what the devices it
 * serves need.
 */
export async function loadDeviceModules(handles: {
  readonly memory?: GuestMemoryHandle;
  readonly interrupts?: InterruptHandle;
  readonly backend?: BackendSpec;
}): Promise<void> {
  if (handles.memory) await guestMemoryKinds.load(handles.memory);
  if (handles.interrupts) await interruptSinks.load(handles.interrupts);
  if (handles.backend) await prepareBackend(handles.backend);
}

/** This thread's views of a device's queues over `memory`. */
export function openQueues(memory: GuestMemory, queues: QueueHandles): SplitQueue[] {
  return queues.map((q) => new SplitQueue(memory, new QueueStateBuffer(q.maxQueueSize, q.buffer)));
}

/**
 * Builds a device's live objects on this thread, opening its own handle on
 * the medium as an I/O queue for `thread` (the modules that open the
 * handles loaded: {@linkcode loadDeviceModules}).
 */
export function openServedDevice(handles: DeviceHandles, thread: ThreadIo): ServedDevice {
  const memory = openGuestMemory(handles.memory);
  const io = handles.backend && openIoQueue(handles.backend, thread);
  return {
    settings: handles.settings,
    memory,
    queues: openQueues(memory, handles.queues),
    state: new BlkState(handles.state),
    interrupts: openInterruptSink(handles.interrupts),
    errors: new MediumErrors(handles.errors),
    io,
  };
}

/** `device` over new guest memory (its queues viewed again; the medium stays open). */
export function withMemory(
  device: ServedDevice,
  memory: GuestMemoryHandle,
  queues: QueueHandles,
): ServedDevice {
  const opened = openGuestMemory(memory);
  return { ...device, memory: opened, queues: openQueues(opened, queues) };
}
