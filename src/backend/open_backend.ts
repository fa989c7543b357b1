/**
 * Opens the backend a {@linkcode BackendSpec} describes, on the calling
 * thread. Every executor thread calls this for itself.
 *
 * @module
 */

import type { BackendSpec, BlockBackend } from "./backend.ts";
import { MemoryBackend } from "./memory_backend.ts";

/** Opens `spec` on this thread. */
export function openBackend(spec: BackendSpec): BlockBackend {
  switch (spec.kind) {
    case "memory":
      return new MemoryBackend(spec);
    case "file":
      throw new Error("file backends arrive with the blockif engine");
  }
}

/** Bytes the device built on `spec` exposes. */
export function backendSize(spec: BackendSpec): number {
  return spec.kind === "memory" ? spec.buffer.byteLength : spec.size;
}
