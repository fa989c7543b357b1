/**
 * A disk in a memory file that a test sees live: the device opens it as a
 * file (through `/proc/self/fd/N`, so every thread opens its own handle on
 * the same file), and the test reads and writes its bytes through a shared
 * mapping of that file, as it would a RAM disk's buffer. Writes on either
 * side are the page cache's, so each sees the other's at once (no O_DIRECT).
 * Deno on Linux only.
 *
 * @module
 */

import type { BackendSpec } from "../../src/backend/backend.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { closeFd } from "../../src/vhost_user/libc.ts";
import { createMemoryFile, mapShared, unmap } from "../../src/vhost_user/mapping.ts";

/** A mapped memory-file medium. */
export interface MappedMedium extends Disposable {
  /** The medium as the device opens it. */
  readonly backend: BackendSpec;
  /** Its bytes, live. */
  readonly bytes: Uint8Array;
}

/** A `size`-byte memory file served through `aio` (threads or io_uring), mapped for the test. */
export function mappedMedium(
  size: number,
  options: { aio: "threads" | "io_uring"; readOnly?: boolean },
): MappedMedium {
  const fd = createMemoryFile("test-medium", size, { sealed: false });
  const mapping = mapShared(fd, size);
  const bytes = new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(mapping.address)!, size),
  );
  const backend = describeFile(`/proc/self/fd/${fd}`, {
    aio: options.aio,
    readOnly: options.readOnly,
  });
  return {
    backend,
    bytes,
    [Symbol.dispose]() {
      unmap(mapping);
      closeFd(fd);
    },
  };
}
