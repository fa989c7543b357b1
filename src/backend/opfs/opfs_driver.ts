/**
 * The backend driver of OPFS files (the browser's Origin Private File
 * System): each blockif thread opens its own `FileSystemSyncAccessHandle`
 * and reads and writes at an offset straight into guest memory (the
 * handle takes views of the SharedArrayBuffer; `opfs_probe.ts` checked
 * when the disk was described), `flush()` makes writes stable (FLUSH, and
 * every write in write-through mode). The window, the loops over partial
 * transfers and the errors are {@linkcode FileBackend}'s, as for files.
 *
 * Access handles are made by a promise but backends open synchronously, so
 * each thread makes its handle in the driver's `prepare` (the blockif
 * workers await it before they open the medium) and `open` takes it.
 * Several threads hold the file at once through `"readwrite-unsafe"`
 * handles (`"read-only"` with `ro`); in a browser without handle modes the
 * spec says `"exclusive"` and the engine runs one I/O thread. It registers
 * itself when imported. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { backendDrivers, type BackendSpec } from "../backend.ts";
import { FileBackend, type FileWindow } from "../file_backend.ts";
import type { SyncAccessHandle, SyncAccessMode } from "./opfs_api.ts";
import { openAccessHandle } from "./opfs_probe.ts";

/** An OPFS file as a medium (see `opfs_spec.ts`). */
export interface OpfsBackendSpec extends BackendSpec {
  /** Tells this spec from other drivers' specs. */
  readonly kind: "opfs";
  /** The file's path in the origin's OPFS (`disks/debian.img`). */
  readonly path: string;
  /** Byte offset of the device's first byte in the file (`range=`). */
  readonly offset: number;
  /** Whether `range=` chose the window (`offset`, `size`). */
  readonly windowed?: boolean;
  /** The mode each thread opens its handle in. */
  readonly mode: SyncAccessMode;
}

/** The URL OPFS specs name as their driver. */
export const OPFS_DRIVER: string = import.meta.url;

/** Handles this thread made in `prepare`, by path, waiting for `open`. */
const prepared = new Map<string, SyncAccessHandle[]>();

/**
 * Makes this thread's access handle on the OPFS file at `path` (a dedicated
 * worker's `prepare` of a medium on it) for {@linkcode takePreparedHandle}.
 */
export async function prepareAccessHandle(path: string, mode: SyncAccessMode): Promise<void> {
  const handle = await openAccessHandle(path, mode);
  prepared.set(path, [...prepared.get(path) ?? [], handle]);
}

/**
 * A handle {@linkcode prepareAccessHandle} made on this thread for `path`.
 *
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` when there is none (the
 *   thread did not prepare: it is not a blockif worker)
 */
export function takePreparedHandle(path: string): SyncAccessHandle {
  const handle = prepared.get(path)?.shift();
  if (handle === undefined) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `OPFS file ${path}: opened on a thread that did not prepare it (an OPFS file is ` +
        `served by the blockif worker engine, whose threads do)`,
    );
  }
  return handle;
}

/** A window of an OPFS file through this thread's access handle. */
export class OpfsBackend extends FileBackend {
  /** What the sync is called in messages: the access handle's `flush`. */
  protected override readonly syncName: string = "flush";
  readonly #handle: SyncAccessHandle;

  /** Serves `window` of an OPFS file through `handle`, this thread's access handle on it. */
  constructor(window: FileWindow, handle: SyncAccessHandle) {
    super({ ...window, path: `OPFS file ${window.path}` });
    this.#handle = handle;
  }

  /** `read` at `position` straight into `bytes` (guest memory). */
  protected readAt(bytes: Uint8Array, at: number, length: number, position: number): number {
    return this.#handle.read(bytes.subarray(at, at + length), { at: position });
  }

  /** `write` at `position` straight from `bytes` (guest memory). */
  protected writeAt(bytes: Uint8Array, at: number, length: number, position: number): number {
    return this.#handle.write(bytes.subarray(at, at + length), { at: position });
  }

  /** `flush()`: FLUSH, and each write in write-through mode. */
  protected syncData(): void {
    this.#handle.flush();
  }

  /** Lets the access handle go, so others may open the file. */
  protected closeFile(): void {
    this.#handle.close();
  }
}

backendDrivers.register(OPFS_DRIVER, {
  async prepare(spec) {
    const opfs = spec as OpfsBackendSpec;
    await prepareAccessHandle(opfs.path, opfs.mode);
  },
  open(spec) {
    const opfs = spec as OpfsBackendSpec;
    const handle = takePreparedHandle(opfs.path);
    try {
      return new OpfsBackend(opfs, handle);
    } catch (error) {
      handle.close();
      throw error;
    }
  },
});
