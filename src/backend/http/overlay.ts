/**
 * The copy-on-write overlay of a lazy image: where the guest's writes go
 * (the image on the server is never written), in memory or in an OPFS
 * file, with the map of written sectors (`overlay_map.ts`). A read takes
 * written sectors from here and the rest from the image. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import type { SyncAccessMode } from "../opfs/opfs_api.ts";
import { OpfsBackend, prepareAccessHandle, takePreparedHandle } from "../opfs/opfs_driver.ts";
import type { OverlayFileLayout } from "./overlay_file.ts";
import { MAP_PAGE_BYTES, type OverlayMap } from "./overlay_map.ts";

/** An overlay in memory: lost when the last thread lets it go. */
export interface MemoryOverlaySpec {
  /** Tells it from an OPFS overlay. */
  readonly kind: "memory";
  /** The map (`OverlayMap`). */
  readonly map: SharedArrayBuffer;
  /** The written sectors at their own offsets (pages are committed as they are written). */
  readonly data: SharedArrayBuffer;
}

/** An overlay in an OPFS file (`overlay_file.ts`): kept across visits. */
export interface OpfsOverlaySpec {
  /** Tells it from a memory overlay. */
  readonly kind: "opfs";
  /** The map (`OverlayMap`), loaded from the file when it was described. */
  readonly map: SharedArrayBuffer;
  /** The file's path in the OPFS. */
  readonly path: string;
  /** The mode threads open it in. */
  readonly mode: SyncAccessMode;
  /** Where the map and the data are in the file. */
  readonly layout: OverlayFileLayout;
}

/** Where a lazy image's writes go. */
export type OverlaySpec = MemoryOverlaySpec | OpfsOverlaySpec;

/** A thread's handle on an overlay's written sectors (offsets are the image's). */
export interface OverlayStore {
  read(offset: number, bytes: Uint8Array, at: number, length: number): void;
  write(offset: number, bytes: Uint8Array, at: number, length: number): void;
  /** Makes the written sectors, and the map that says so, stable. */
  flush(): void;
  close(): void;
}

/** What a thread must await before it opens `spec` (an OPFS file's access handle). */
export async function prepareOverlay(spec: OverlaySpec): Promise<void> {
  if (spec.kind === "opfs") await prepareAccessHandle(spec.path, spec.mode);
}

/** Opens this thread's store of `spec` (prepared with {@linkcode prepareOverlay}). */
export function openOverlayStore(spec: OverlaySpec, map: OverlayMap): OverlayStore {
  return spec.kind === "memory" ? new MemoryStore(spec) : new OpfsStore(spec, map);
}

class MemoryStore implements OverlayStore {
  readonly #data: Uint8Array;

  constructor(spec: MemoryOverlaySpec) {
    this.#data = new Uint8Array(spec.data);
  }

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    bytes.set(this.#data.subarray(offset, offset + length), at);
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#data.set(bytes.subarray(at, at + length), offset);
  }

  flush(): void {}

  close(): void {}
}

/** The overlay file through this thread's access handle (the whole file as one window). */
class OpfsStore implements OverlayStore {
  readonly #file: OpfsBackend;
  readonly #layout: OverlayFileLayout;
  readonly #map: OverlayMap;

  constructor(spec: OpfsOverlaySpec, map: OverlayMap) {
    this.#layout = spec.layout;
    this.#map = map;
    this.#file = new OpfsBackend(
      { path: spec.path, offset: 0, size: spec.layout.fileSize, readOnly: false },
      takePreparedHandle(spec.path),
    );
  }

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#file.read(this.#layout.dataOffset + offset, bytes, at, length);
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#file.write(this.#layout.dataOffset + offset, bytes, at, length);
  }

  flush(): void {
    const wroteMap = this.#map.flushDirty(
      () => this.#file.flush(),
      (page, bytes) =>
        this.#file.write(this.#layout.mapOffset + page * MAP_PAGE_BYTES, bytes, 0, bytes.length),
    );
    if (wroteMap) this.#file.flush();
  }

  close(): void {
    this.#file.close();
  }
}

/** The error of a write that is not whole sectors (virtio's never are: a bug if it happens). */
export function partialSectorWrite(offset: number, length: number): VirtioBlkError {
  return new VirtioBlkError(
    "IO_ERROR",
    `overlay write [${offset}, +${length}) is not whole 512-byte sectors`,
  );
}
