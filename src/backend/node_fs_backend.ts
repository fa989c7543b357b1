/**
 * A file backend on `node:fs` positional I/O (`readSync`/`writeSync` with a
 * position: one pread64/pwrite64 each, straight into the guest-memory region
 * at an offset, no view and no copy). It runs on Node and on Deno. The
 * window, the loops over partial transfers and the errors are
 * {@linkcode FileBackend}'s.
 *
 * `direct` (`nocache`) adds O_DIRECT: the kernel then needs the memory
 * address, the file offset and the length aligned to the device's logical
 * block. Guest memory in a shared `WebAssembly.Memory` is page aligned, and
 * the device's offsets and lengths are whole sectors, so a sector-aligned
 * guest buffer works; a misaligned one fails with EINVAL, which surfaces as
 * an `IO_ERROR` (the request completes IOERR), never a crash.
 *
 * Durability: `flush()` is fdatasync. Write-through: the executor calls it
 * after each write, before completing the request; write-back: only FLUSH
 * does. fdatasync on any descriptor covers writes made through every
 * descriptor of the file (per inode), so one handle per worker is fine.
 * O_DIRECT bypasses the page cache but not the device's volatile cache, so
 * `flush()` is still needed with it.
 *
 * @module
 */

import * as fs from "node:fs";
import type { FileBackendSpec } from "./file_driver.ts";
import { FileBackend } from "./file_backend.ts";
import { openFailure } from "./file_errors.ts";
import { openFileSpace } from "./file_space.ts";
import type { SpaceCalls } from "../io/space.ts";

/** A backing file accessed through `node:fs` positional reads and writes. */
export class NodeFsBackend extends FileBackend {
  readonly #fd: number;
  readonly #blockDevice: boolean;

  /**
   * Opens `spec.path` on this thread: O_RDONLY for `ro`, else O_RDWR, plus
   * O_DIRECT for `direct`; never O_CREAT or O_TRUNC.
   *
   * @throws {VirtioBlkError} `BAD_BACKING_FILE` if it cannot be opened
   */
  constructor(spec: FileBackendSpec) {
    super(spec);
    this.#blockDevice = spec.blockDevice ?? false;
    const { O_RDONLY, O_RDWR, O_DIRECT } = fs.constants;
    const flags = (spec.readOnly ? O_RDONLY : O_RDWR) | (spec.direct ? O_DIRECT : 0);
    try {
      this.#fd = fs.openSync(spec.path, flags);
    } catch (error) {
      throw openFailure(
        spec.path,
        spec.direct ? "direct" : spec.readOnly ? "read" : "write",
        error,
      );
    }
  }

  protected readAt(bytes: Uint8Array, at: number, length: number, position: number): number {
    return fs.readSync(this.#fd, bytes, at, length, position);
  }

  protected writeAt(bytes: Uint8Array, at: number, length: number, position: number): number {
    return fs.writeSync(this.#fd, bytes, at, length, position);
  }

  protected syncData(): void {
    fs.fdatasyncSync(this.#fd);
  }

  /** fallocate and the block ioctls through FFI (Deno); none on Node. */
  protected override openSpace(): SpaceCalls | null {
    return openFileSpace(this.path, this.#blockDevice);
  }

  protected closeFile(): void {
    fs.closeSync(this.#fd);
  }
}
