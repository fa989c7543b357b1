/**
 * A lazy HTTP image as a thread's synchronous {@linkcode BlockBackend}: a
 * read takes the sectors the guest wrote from the copy-on-write overlay (if
 * there is one) and the rest from the image, through the shared block
 * cache and, for what is not cached, `Range` requests that fetch whole
 * cache blocks (several missing blocks in a row at once). Writes go to the
 * overlay, never to the server; without an overlay the medium is read-only.
 * Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import type { BlockBackend } from "../backend.ts";
import { BlockCache, type BlockCacheHandle } from "./block_cache.ts";
import { FETCH_CHUNK_BYTES } from "./fetch_channel.ts";
import { type OverlayStore, partialSectorWrite } from "./overlay.ts";
import { OVERLAY_SECTOR, type OverlayMap } from "./overlay_map.ts";
import type { RangeReader } from "./range_reader.ts";

/** What the backend reads from and writes to. */
export interface HttpImageParts {
  /** The image's URL, for messages. */
  readonly url: string;
  /** Bytes of the image (the device's size). */
  readonly size: number;
  readonly readOnly: boolean;
  /** This thread's way to the server. */
  readonly reader: RangeReader;
  /** The shared block cache, if any. */
  readonly cache?: BlockCacheHandle;
  /** The overlay's map and this thread's store, if the image has one. */
  readonly overlay?: { readonly map: OverlayMap; readonly store: OverlayStore };
}

/** A lazy HTTP image on one thread. */
export class HttpImageBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly #url: string;
  readonly #reader: RangeReader;
  readonly #cache: BlockCache | undefined;
  readonly #overlay: HttpImageParts["overlay"];
  /** Where fetched runs of blocks land before they are cached and copied out. */
  readonly #scratch: Uint8Array;
  #closed = false;

  constructor(parts: HttpImageParts) {
    this.size = parts.size;
    this.readOnly = parts.readOnly;
    this.#url = parts.url;
    this.#reader = parts.reader;
    this.#cache = parts.cache && new BlockCache(parts.cache);
    this.#overlay = parts.overlay;
    this.#scratch = new Uint8Array(
      this.#cache ? Math.max(this.#cache.blockBytes, FETCH_CHUNK_BYTES) : 0,
    );
  }

  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.#check("read", offset, length);
    const overlay = this.#overlay;
    if (overlay === undefined) {
      this.#readImage(offset, bytes, at, length);
      return;
    }
    // Runs of sectors that are all written (from the overlay) or all not (from the image).
    for (let done = 0; done < length;) {
      const sector = (offset + done) / OVERLAY_SECTOR;
      const run = overlay.map.run(sector, Math.ceil((length - done) / OVERLAY_SECTOR));
      const bytesInRun = Math.min(run * OVERLAY_SECTOR, length - done);
      if (overlay.map.has(sector)) overlay.store.read(offset + done, bytes, at + done, bytesInRun);
      else this.#readImage(offset + done, bytes, at + done, bytesInRun);
      done += bytesInRun;
    }
  }

  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    const overlay = this.#overlay;
    if (this.readOnly || overlay === undefined) {
      throw new VirtioBlkError("IO_ERROR", `write to ${this.#url}, which is read-only`);
    }
    this.#check("write", offset, length);
    if (offset % OVERLAY_SECTOR !== 0 || length % OVERLAY_SECTOR !== 0) {
      throw partialSectorWrite(offset, length);
    }
    overlay.store.write(offset, bytes, at, length);
    overlay.map.mark(offset / OVERLAY_SECTOR, length / OVERLAY_SECTOR);
  }

  flush(): void {
    this.#overlay?.store.flush();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.close();
    this.#overlay?.store.close();
  }

  /** Image bytes `[offset, offset + length)`, through the cache when there is one. */
  #readImage(offset: number, bytes: Uint8Array, at: number, length: number): void {
    const cache = this.#cache;
    if (cache === undefined) {
      this.#reader.read(offset, length, bytes, at);
      return;
    }
    const blockBytes = cache.blockBytes;
    const end = offset + length;
    for (let position = offset; position < end;) {
      const block = Math.floor(position / blockBytes);
      const blockStart = block * blockBytes;
      const within = position - blockStart;
      const wanted = Math.min(blockBytes - within, end - position);
      if (cache.copyOut(block, within, wanted, bytes, at + (position - offset))) {
        position += wanted;
        continue;
      }
      // Fetch this block and the missing ones after it that the read needs, in one request.
      const most = Math.max(1, Math.floor(this.#scratch.length / blockBytes));
      let blocks = 1;
      while (
        blocks < most && blockStart + blocks * blockBytes < end && !cache.has(block + blocks)
      ) {
        blocks++;
      }
      const fetched = Math.min(blocks * blockBytes, this.size - blockStart);
      this.#reader.read(blockStart, fetched, this.#scratch, 0);
      for (let i = 0; i * blockBytes < fetched; i++) {
        cache.store(
          block + i,
          this.#scratch,
          i * blockBytes,
          Math.min(blockBytes, fetched - i * blockBytes),
        );
      }
      const copied = Math.min(end, blockStart + fetched) - position;
      bytes.set(this.#scratch.subarray(within, within + copied), at + (position - offset));
      position += copied;
    }
  }

  #check(op: string, offset: number, length: number): void {
    if (this.#closed) throw new VirtioBlkError("CLOSED", `backend of ${this.#url} is closed`);
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset > this.size || length > this.size - offset
    ) {
      throw new VirtioBlkError(
        "SHORT_TRANSFER",
        `${op} [${offset}, +${length}) lies beyond the ${this.size} bytes of ${this.#url}`,
      );
    }
  }
}
