/**
 * The parts of the Origin Private File System (WHATWG File System) the OPFS
 * medium uses, typed here because Deno's type library has no DOM, and how
 * a path names a file in it. `FileSystemSyncAccessHandle` exists only in
 * dedicated workers; the directory and file handles everywhere a page is.
 * Browser-safe (and harmless where there is no OPFS: every entry point
 * says what is missing).
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";

/**
 * How a sync access handle shares its file (Chromium 121+): `"readwrite"`
 * takes it whole; `"read-only"` and `"readwrite-unsafe"` let several
 * handles (one per blockif thread) have it at once.
 */
export type SyncAccessMode = "readwrite" | "read-only" | "readwrite-unsafe";

/** A synchronous handle on an OPFS file (dedicated workers only). */
export interface SyncAccessHandle {
  /** Reads into `buffer` from file offset `at`; returns the bytes read (0 at end of file). */
  read(buffer: ArrayBufferView, options: { at: number }): number;
  /** Writes `buffer` at file offset `at`; returns the bytes written. */
  write(buffer: ArrayBufferView, options: { at: number }): number;
  /** Makes written bytes stable. */
  flush(): void;
  getSize(): number;
  truncate(size: number): void;
  close(): void;
  /** The mode it was opened in; absent where the browser has no modes (then it is exclusive). */
  readonly mode?: SyncAccessMode;
}

/** An OPFS file. */
export interface OpfsFileHandle {
  readonly kind: "file";
  readonly name: string;
  getFile(): Promise<Blob>;
  /** Dedicated workers only. */
  createSyncAccessHandle?(options?: { mode?: SyncAccessMode }): Promise<SyncAccessHandle>;
  createWritable(options?: { keepExistingData?: boolean }): Promise<OpfsWritable>;
}

/** A writable stream on an OPFS file (its data lands when it is closed). */
export interface OpfsWritable {
  write(
    data: BufferSource | Blob | { type: "write"; position: number; data: BufferSource },
  ): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** An OPFS directory. */
export interface OpfsDirectoryHandle {
  readonly kind: "directory";
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
  entries(): AsyncIterable<[string, OpfsFileHandle | OpfsDirectoryHandle]>;
}

/** Why this context has no OPFS, or undefined when it has one. */
export function opfsUnavailable(): string | undefined {
  const storage = (globalThis.navigator as { storage?: { getDirectory?: unknown } } | undefined)
    ?.storage;
  if (typeof storage?.getDirectory !== "function") {
    return "this context has no Origin Private File System (navigator.storage.getDirectory): " +
      "it needs a browser, and a secure context (https: or localhost)";
  }
  return undefined;
}

/** The origin's OPFS root directory. */
export async function opfsRoot(): Promise<OpfsDirectoryHandle> {
  const missing = opfsUnavailable();
  if (missing !== undefined) throw new VirtioBlkError("UNSUPPORTED", missing);
  const storage = (navigator as unknown as {
    storage: { getDirectory(): Promise<OpfsDirectoryHandle> };
  }).storage;
  return await storage.getDirectory();
}

/**
 * The parts of an OPFS path (`disks/debian.img`): names separated by `/`,
 * none empty, `.` or `..`.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a path that names no file
 */
export function opfsPathParts(path: string): string[] {
  const parts = path.replace(/^\/+/, "").split("/");
  if (parts.some((part) => part === "" || part === "." || part === "..")) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `OPFS path ${
        JSON.stringify(path)
      } must be names separated by "/" (no empty, "." or ".." parts)`,
    );
  }
  return parts;
}

/**
 * The OPFS file at `path`, its directories made first when `create` is set.
 *
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` when it does not exist (or a
 *   directory is in the way); `UNSUPPORTED` without OPFS
 */
export async function opfsFile(path: string, create = false): Promise<OpfsFileHandle> {
  const parts = opfsPathParts(path);
  try {
    let directory = await opfsRoot();
    for (const name of parts.slice(0, -1)) {
      directory = await directory.getDirectoryHandle(name, { create });
    }
    return await directory.getFileHandle(parts.at(-1)!, { create });
  } catch (error) {
    if (error instanceof VirtioBlkError) throw error;
    const name = (error as { name?: string }).name;
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      name === "NotFoundError"
        ? `OPFS file ${path} does not exist`
        : `cannot open OPFS file ${path}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

/** A thrown DOMException's name (`"NoModificationAllowedError"`), if it has one. */
export function domErrorName(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === "string" ? name : undefined;
}
