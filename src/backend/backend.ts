/**
 * The block backend interface: what an executor needs from the medium. All
 * calls are synchronous because they run on I/O threads (or on the device
 * thread for the in-process executor); each thread opens its own backend
 * from a {@linkcode BackendSpec}, so handles are never shared across threads.
 *
 * Data moves straight between the medium and a guest-memory view: `bytes`
 * is the whole region's Uint8Array and `at` the offset in it, so no view is
 * made per request.
 *
 * @module
 */

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
  /** Releases the handle. */
  close(): void;
}

/** A structured-cloneable description from which any thread opens a backend. */
export type BackendSpec =
  | MemoryBackendSpec
  | FileBackendSpec;

/** A RAM disk in a SharedArrayBuffer. */
export interface MemoryBackendSpec {
  /** Tells this spec from a {@linkcode FileBackendSpec}. */
  readonly kind: "memory";
  /** The disk's bytes; every thread that opens the spec sees the same memory. */
  readonly buffer: SharedArrayBuffer;
  /** Whether writes are refused (the device then offers VIRTIO_BLK_F_RO). */
  readonly readOnly: boolean;
}

/** A regular file or block device (see `src/backend/file_spec.ts`). */
export interface FileBackendSpec {
  /** Tells this spec from a {@linkcode MemoryBackendSpec}. */
  readonly kind: "file";
  /** Path of the file or block device. */
  readonly path: string;
  /** Byte offset of the device's first byte in the file (`range=`). */
  readonly offset: number;
  /** Bytes the device exposes. */
  readonly size: number;
  /**
   * Whether `range=` chose the window (`offset`, `size`); absent or false:
   * the device shows the whole file, at the size it had when described.
   * A window is part of the medium's name (`src/backend/medium_name.ts`).
   */
  readonly windowed?: boolean;
  /** `ro`: opened read-only, writes refused (the device then offers VIRTIO_BLK_F_RO). */
  readonly readOnly: boolean;
  /** Which I/O implementation each thread opens. */
  readonly io: "fsfile" | "node-fs";
  /** Open with O_DIRECT (`nocache`); needs aligned guest memory and offsets. */
  readonly direct: boolean;
}
