/**
 * The backend driver of lazy HTTP images (`http_spec.ts` describes one):
 * each thread that serves the image prepares its way to the server (sync
 * XHR in a browser's worker; a helper thread that fetches on Deno and
 * Node) and, for an OPFS overlay, its access handle, then opens a
 * {@linkcode HttpImageBackend} over them, the shared block cache and the
 * shared overlay map. It registers itself when imported. Browser-safe.
 *
 * @module
 */

import { backendDrivers, type BackendSpec } from "../backend.ts";
import type { BlockCacheHandle } from "./block_cache.ts";
import { FetchThreadReader } from "./fetch_channel.ts";
import { HttpImageBackend } from "./http_image.ts";
import { openOverlayStore, type OverlaySpec, prepareOverlay } from "./overlay.ts";
import { OVERLAY_SECTOR, OverlayMap } from "./overlay_map.ts";
import { hasSyncXhr, type RangeReader, type RangeSource, XhrRangeReader } from "./range_reader.ts";
import { VirtioBlkError } from "../../errors.ts";

/** A lazy HTTP image (see `http_spec.ts`). */
export interface HttpImageSpec extends BackendSpec {
  /** Tells this spec from other drivers' specs. */
  readonly kind: "http";
  /** The image's absolute URL. */
  readonly url: string;
  /** Longest one request may take, in milliseconds. */
  readonly timeoutMs: number;
  /** The block cache every thread shares, if any. */
  readonly cache?: BlockCacheHandle;
  /** Where writes go; without one the image is read-only. */
  readonly overlay?: OverlaySpec;
}

/** The URL HTTP image specs name as their driver. */
export const HTTP_DRIVER: string = import.meta.url;

/** Readers this thread made in `prepare`, by URL, waiting for `open`. */
const prepared = new Map<string, RangeReader[]>();

backendDrivers.register(HTTP_DRIVER, {
  async prepare(spec) {
    const image = spec as HttpImageSpec;
    const source: RangeSource = {
      url: image.url,
      imageSize: image.size,
      timeoutMs: image.timeoutMs,
    };
    const reader = hasSyncXhr()
      ? new XhrRangeReader(source)
      : await FetchThreadReader.start(source);
    try {
      if (image.overlay) await prepareOverlay(image.overlay);
    } catch (error) {
      reader.close();
      throw error;
    }
    prepared.set(image.url, [...prepared.get(image.url) ?? [], reader]);
  },
  open(spec) {
    const image = spec as HttpImageSpec;
    const reader = prepared.get(image.url)?.shift();
    if (reader === undefined) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `${image.url}: opened on a thread that did not prepare it (a lazy HTTP image is served ` +
          `by the blockif worker engine, whose threads do)`,
      );
    }
    try {
      const map = image.overlay && new OverlayMap(image.overlay.map, image.size / OVERLAY_SECTOR);
      return new HttpImageBackend({
        url: image.url,
        size: image.size,
        readOnly: image.readOnly,
        reader,
        cache: image.cache,
        overlay: image.overlay && map && { map, store: openOverlayStore(image.overlay, map) },
      });
    } catch (error) {
      reader.close();
      throw error;
    }
  },
});
