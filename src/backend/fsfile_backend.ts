/**
 * A file backend on `Deno.FsFile` (Deno only): lseek + read/write on one
 * handle per thread, fdatasync for `flush()`. The window, the loops over
 * partial transfers and the errors are {@linkcode FileBackend}'s.
 *
 * `FsFile.readSync`/`writeSync` take no buffer offset, so each call passes a
 * view of the guest-memory region (`subarray`, no copy: the syscall reads
 * into the shared memory itself); the `node:fs` backend avoids even the view.
 *
 * Durability: `flush()` is fdatasync. Write-through: the executor calls it
 * after each write, before completing the request; write-back: only FLUSH
 * does. fdatasync on any descriptor covers writes made through every
 * descriptor of the file (per inode), so one handle per worker is fine.
 *
 * @module
 */

import type { FileBackendSpec } from "./file_driver.ts";
import { FileBackend } from "./file_backend.ts";
import { openFailure } from "./file_errors.ts";
import { openFileSpace } from "./file_space.ts";
import type { SpaceCalls } from "../io/space.ts";

/** A backing file accessed through `Deno.FsFile`. */
export class FsFileBackend extends FileBackend {
  readonly #file: Deno.FsFile;
  readonly #blockDevice: boolean;

  /**
   * Opens `spec.path` on this thread: read-only for `ro`, else read/write;
   * never creates or truncates.
   *
   * @throws {VirtioBlkError} `BAD_BACKING_FILE` if it cannot be opened
   */
  constructor(spec: FileBackendSpec) {
    super(spec);
    this.#blockDevice = spec.blockDevice ?? false;
    const write = !spec.readOnly;
    try {
      this.#file = Deno.openSync(spec.path, { read: true, write, create: false, truncate: false });
    } catch (error) {
      throw openFailure(spec.path, write ? "write" : "read", error);
    }
  }

  protected readAt(bytes: Uint8Array, at: number, length: number, position: number): number {
    this.#file.seekSync(position, Deno.SeekMode.Start);
    return this.#file.readSync(view(bytes, at, length)) ?? 0;
  }

  protected writeAt(bytes: Uint8Array, at: number, length: number, position: number): number {
    this.#file.seekSync(position, Deno.SeekMode.Start);
    return this.#file.writeSync(view(bytes, at, length));
  }

  protected syncData(): void {
    this.#file.syncDataSync();
  }

  /** fallocate and the block ioctls through FFI (Deno); none on Node. */
  protected override openSpace(): SpaceCalls | null {
    return openFileSpace(this.path, this.#blockDevice);
  }

  protected closeFile(): void {
    this.#file.close();
  }
}

/** `bytes[at, at + length)`, without a new view when that is all of `bytes`. */
function view(bytes: Uint8Array, at: number, length: number): Uint8Array {
  return at === 0 && length === bytes.length ? bytes : bytes.subarray(at, at + length);
}
