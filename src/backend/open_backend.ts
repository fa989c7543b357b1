/**
 * Opens the backend a {@linkcode BackendSpec} describes, on the calling
 * thread. Every executor thread calls this for itself.
 *
 * @module
 */

import type { BackendSpec, BlockBackend } from "./backend.ts";
import { FsFileBackend } from "./fsfile_backend.ts";
import { MemoryBackend } from "./memory_backend.ts";
import { NodeFsBackend } from "./node_fs_backend.ts";

/**
 * Opens `spec` on this thread. A file spec (from `describeFile`) opens a
 * new handle of the I/O kind it names; the caller closes it.
 *
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` if a file cannot be opened
 */
export function openBackend(spec: BackendSpec): BlockBackend {
  switch (spec.kind) {
    case "memory":
      return new MemoryBackend(spec);
    case "file":
      return spec.io === "fsfile" ? new FsFileBackend(spec) : new NodeFsBackend(spec);
  }
}

/** Bytes the device built on `spec` exposes. */
export function backendSize(spec: BackendSpec): number {
  return spec.kind === "memory" ? spec.buffer.byteLength : spec.size;
}
