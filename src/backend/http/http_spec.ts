/**
 * Describing a lazy HTTP image: a disk image on any web server that
 * honours `Range` requests, read a block at a time as the guest needs it
 * (like v86's asynchronous disk images, but synchronous for the blockif
 * threads), read-only unless writes go to a copy-on-write overlay in
 * memory or in an OPFS file. Describing asks the server for the image's
 * size (one byte, to see that it honours Range) and sets up the shared
 * block cache and overlay; it works on any thread of a browser, Deno or
 * Node. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { opfsPathParts } from "../opfs/opfs_api.ts";
import { probeOpfsFile } from "../opfs/opfs_probe.ts";
import { BlockCache } from "./block_cache.ts";
import { HTTP_DRIVER, type HttpImageSpec } from "./http_driver.ts";
import type { OverlaySpec } from "./overlay.ts";
import { openOverlayFile } from "./overlay_file.ts";
import { OVERLAY_SECTOR, OverlayMap } from "./overlay_map.ts";
import { parseContentRange } from "./range_response.ts";

/** Default size of the block cache every thread shares. */
export const DEFAULT_CACHE_BYTES = 16 << 20;
/** Default cache block: what one miss fetches (and reads ahead). */
export const DEFAULT_BLOCK_BYTES = 64 << 10;
/** Default limit of one request. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** How a lazy image is served. */
export interface HttpImageOptions {
  /**
   * Where the guest's writes go: `"memory"` (lost when the device closes),
   * or an OPFS file (`{ opfs: "overlays/debian.cow" }`, made if missing,
   * kept across visits, refused if it belongs to another image). Without
   * one the device is read-only.
   */
  readonly overlay?: "memory" | { readonly opfs: string };
  /** Read-only even with an overlay (`ro`). */
  readonly readOnly?: boolean;
  /** Bytes of the shared block cache (default 16 MiB; 0: none, each read asks the server). */
  readonly cacheBytes?: number;
  /** Bytes per cache block, a power of two from 512 (default 64 KiB). */
  readonly blockBytes?: number;
  /** Longest one request may take, in milliseconds (default 30 s). */
  readonly timeoutMs?: number;
}

/**
 * Asks the server at `url` for the image's size and describes the device
 * built on it.
 *
 * @param url the image's URL (relative URLs resolve against the page's)
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` when the server cannot be
 *   reached, does not have the image, does not honour Range, or the image
 *   is not whole 512-byte sectors; `INVALID_CONFIG` for a bad option or an
 *   OPFS overlay of another image
 *
 * @example
 * ```ts
 * const backend = await describeHttpImage("https://example.org/debian.img", { overlay: "memory" });
 * ```
 */
export async function describeHttpImage(
  url: string,
  options: HttpImageOptions = {},
): Promise<HttpImageSpec> {
  const absolute = absoluteUrl(url);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `timeout ${timeoutMs} ms must be a positive integer`,
    );
  }
  const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
  const blockBytes = options.blockBytes ?? DEFAULT_BLOCK_BYTES;
  const cache = cacheBytes === 0 ? undefined : BlockCache.create(cacheBytes, blockBytes);
  const size = await imageSize(absolute, timeoutMs);
  if (size % OVERLAY_SECTOR !== 0) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `size of ${absolute} (${size} bytes) is not a multiple of ${OVERLAY_SECTOR} bytes`,
    );
  }
  if (size / blockBytes >= 2 ** 31) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `${absolute} has more than 2^31 blocks of ${blockBytes} bytes: use larger cache blocks`,
    );
  }
  const overlay = options.overlay === undefined
    ? undefined
    : await describeOverlay(options.overlay, absolute, size);
  const handles = overlay?.kind === "opfs" && overlay.mode === "readwrite"
    ? "exclusive" as const
    : "per-thread" as const;
  return {
    module: HTTP_DRIVER,
    kind: "http",
    name: absolute,
    url: absolute,
    size,
    readOnly: overlay === undefined || (options.readOnly ?? false),
    timeoutMs,
    ...(cache ? { cache } : {}),
    ...(overlay ? { overlay } : {}),
    // Nothing volatile to flush but an OPFS overlay's writes.
    capabilities: { flush: true, discard: false, writeZeroes: false, handles },
  };
}

/** `url` resolved against the page's address where there is one. */
function absoluteUrl(url: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    const parsed = new URL(url, base);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new TypeError("scheme");
    return parsed.href;
  } catch {
    throw new VirtioBlkError("INVALID_CONFIG", `image URL ${url} is not an http: or https: URL`);
  }
}

/** The image's size, from the answer to a one-byte Range request. */
async function imageSize(url: string, timeoutMs: number): Promise<number> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Range: "bytes=0-0" },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `cannot reach ${url}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
  await response.body?.cancel();
  if (response.status === 416) {
    throw new VirtioBlkError("BAD_BACKING_FILE", `${url} is empty (HTTP 416 for its first byte)`);
  }
  if (response.status === 200) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `${url}: the server does not honour Range requests (HTTP 200 for bytes=0-0)`,
    );
  }
  if (response.status !== 206) {
    throw new VirtioBlkError("BAD_BACKING_FILE", `${url}: HTTP ${response.status}`);
  }
  const header = response.headers.get("Content-Range");
  const range = parseContentRange(header);
  if (range === undefined || range.complete === undefined || range.first !== 0) {
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      `${url}: the answer to bytes=0-0 does not give the image's size (Content-Range: ` +
        `${header ?? "none"}; a server on another origin must expose it: ` +
        `Access-Control-Expose-Headers)`,
    );
  }
  return range.complete;
}

async function describeOverlay(
  overlay: NonNullable<HttpImageOptions["overlay"]>,
  url: string,
  size: number,
): Promise<OverlaySpec> {
  const sectors = size / OVERLAY_SECTOR;
  const map = OverlayMap.create(sectors);
  if (overlay === "memory") {
    let data: SharedArrayBuffer;
    try {
      data = new SharedArrayBuffer(size);
    } catch (error) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `a memory overlay of ${size} bytes cannot be had here (${error}); use an OPFS overlay`,
        { cause: error },
      );
    }
    return { kind: "memory", map, data };
  }
  if (typeof overlay?.opfs !== "string") {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `overlay must be "memory" or { opfs: "<path>" }, not ${JSON.stringify(overlay)}`,
    );
  }
  const path = opfsPathParts(overlay.opfs).join("/");
  const layout = await openOverlayFile(path, { url, size }, new OverlayMap(map, sectors));
  const probe = await probeOpfsFile(path, false);
  if (!probe.sharedViews) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `OPFS overlay ${path}: this browser's FileSystemSyncAccessHandle refuses views of a ` +
        `SharedArrayBuffer`,
    );
  }
  return {
    kind: "opfs",
    map,
    path,
    mode: probe.modes ? "readwrite-unsafe" : "readwrite",
    layout,
  };
}
