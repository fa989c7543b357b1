/**
 * The backend driver of regular files and block devices: each thread opens
 * its own descriptor, through `Deno.FsFile` or positional `node:fs` as the
 * spec says (`src/backend/file_spec.ts` describes the file once, on the
 * thread that configures the device). It registers itself when imported.
 *
 * @module
 */

import { threadUringContext, UringIoQueue } from "../io/io_uring/uring_io_queue.ts";
import { createEventFdWake } from "../io/io_uring/wake.ts";
import { SyncIoQueue } from "../io/sync_io_queue.ts";
import { backendDrivers, type BackendSpec } from "./backend.ts";
import { FsFileBackend } from "./fsfile_backend.ts";
import { NodeFsBackend } from "./node_fs_backend.ts";

/** A regular file or block device (see `src/backend/file_spec.ts`). */
export interface FileBackendSpec extends BackendSpec {
  /** Tells this spec from other drivers' specs. */
  readonly kind: "file";
  /** Path of the file or block device. */
  readonly path: string;
  /** Byte offset of the device's first byte in the file (`range=`). */
  readonly offset: number;
  /**
   * Whether `range=` chose the window (`offset`, `size`); absent or false:
   * the device shows the whole file, at the size it had when described.
   * A window is part of the medium's name.
   */
  readonly windowed?: boolean;
  /** Which I/O implementation each thread opens. */
  readonly io: "fsfile" | "node-fs";
  /** Open with O_DIRECT (`nocache`); needs aligned guest memory and offsets. */
  readonly direct: boolean;
  /**
   * Whether the path is a block device: DISCARD is BLKDISCARD there, not a
   * punched hole (absent: a regular file).
   */
  readonly blockDevice?: boolean;
  /**
   * How each thread reaches the file: `"threads"`, synchronous calls through
   * `io`; `"io_uring"`, a ring per thread with batched submissions straight
   * from guest memory (Deno on Linux; ACRN's `aio=io_uring`).
   */
  readonly aio: "threads" | "io_uring";
}

/** The URL file specs name as their driver. */
export const FILE_DRIVER: string = import.meta.url;

/** Whether `spec` describes a file or block device. */
export function isFileSpec(spec: BackendSpec): spec is FileBackendSpec {
  return spec.module === FILE_DRIVER;
}

backendDrivers.register(FILE_DRIVER, {
  open(spec) {
    const file = spec as FileBackendSpec;
    return file.io === "fsfile" ? new FsFileBackend(file) : new NodeFsBackend(file);
  },
  openQueue(spec, thread) {
    const file = spec as FileBackendSpec;
    if (file.aio !== "io_uring") return new SyncIoQueue(this.open(spec), thread.capacity);
    return new UringIoQueue(threadUringContext(thread), file);
  },
  wakeSignal(spec) {
    // Threads that sleep in their rings hear kicks through an eventfd.
    return (spec as FileBackendSpec).aio === "io_uring" ? createEventFdWake : undefined;
  },
});
