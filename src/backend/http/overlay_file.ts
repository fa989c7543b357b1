/**
 * An OPFS file that keeps a lazy image's copy-on-write overlay across
 * visits: which image it belongs to, its map, and the written sectors at
 * their own offsets. This module owns the file's layout:
 *
 * ```
 * 0                 header: one line of JSON naming the image (URL, size), NUL-padded
 * 4096              the map: one bit per 512-byte sector (overlay_map.ts), whole 4 KiB pages
 * 4096 + map bytes  the data: sector s at data + 512·s (a sparse file: unwritten sectors take no room)
 * ```
 *
 * Made and checked on the thread that describes the image (a page's main
 * thread may: this uses `createWritable` and `getFile`, not access
 * handles); the blockif threads then read and write it through their
 * handles. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { opfsFile } from "../opfs/opfs_api.ts";
import { opfsFileExists } from "../opfs/opfs_files.ts";
import { MAP_PAGE_BYTES, mapPages, OVERLAY_SECTOR, type OverlayMap } from "./overlay_map.ts";

/** Bytes of the header. */
const HEADER_BYTES = 4096;
/** What the header's `format` says. */
const FORMAT = "virtio-blk copy-on-write overlay";
const VERSION = 1;

/** Where things are in an overlay file. */
export interface OverlayFileLayout {
  /** Byte offset of the map. */
  readonly mapOffset: number;
  /** Byte offset of sector 0's data. */
  readonly dataOffset: number;
  /** The file's size. */
  readonly fileSize: number;
}

/** The layout of the overlay file of an image of `imageSize` bytes. */
export function overlayLayout(imageSize: number): OverlayFileLayout {
  const mapBytes = mapPages(imageSize / OVERLAY_SECTOR) * MAP_PAGE_BYTES;
  const dataOffset = HEADER_BYTES + mapBytes;
  return { mapOffset: HEADER_BYTES, dataOffset, fileSize: dataOffset + imageSize };
}

/** The image an overlay belongs to. */
export interface OverlayImage {
  readonly url: string;
  readonly size: number;
}

/**
 * Opens the overlay file at `path` for `image`: makes it if there is none,
 * else checks it belongs to `image` and loads its map into `map` (the
 * sectors an earlier visit wrote). Returns its layout.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` when the file is the overlay of
 *   another image, or not an overlay (it is left as it is)
 */
export async function openOverlayFile(
  path: string,
  image: OverlayImage,
  map: OverlayMap,
): Promise<OverlayFileLayout> {
  const layout = overlayLayout(image.size);
  const header = new TextEncoder().encode(
    JSON.stringify({ format: FORMAT, version: VERSION, image: image.url, size: image.size }) +
      "\n",
  );
  if (header.length > HEADER_BYTES) {
    throw new VirtioBlkError("INVALID_CONFIG", `image URL too long for an overlay header`);
  }
  if (!(await opfsFileExists(path))) {
    const writable = await (await opfsFile(path, true)).createWritable();
    await writable.write(header);
    await writable.truncate(layout.fileSize);
    await writable.close();
    return layout;
  }
  const file = await (await opfsFile(path)).getFile();
  const found = parseHeader(new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer()));
  if (found === undefined) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `OPFS file ${path} is not a copy-on-write overlay (remove it or name another overlay)`,
    );
  }
  if (found.url !== image.url || found.size !== image.size) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `OPFS overlay ${path} belongs to ${found.url} (${found.size} bytes), not ${image.url} ` +
        `(${image.size} bytes): remove it or name another overlay`,
    );
  }
  if (file.size !== layout.fileSize) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `OPFS overlay ${path} is ${file.size} bytes, not ${layout.fileSize}: it is damaged ` +
        `(remove it or name another overlay)`,
    );
  }
  const stored = new Uint8Array(
    await file.slice(layout.mapOffset, layout.dataOffset).arrayBuffer(),
  );
  map.bytes.set(stored.subarray(0, map.bytes.length));
  return layout;
}

function parseHeader(bytes: Uint8Array): OverlayImage | undefined {
  const end = bytes.indexOf(0x0a);
  if (end < 0) return undefined;
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, end)));
    if (header?.format !== FORMAT || header.version !== VERSION) return undefined;
    if (typeof header.image !== "string" || !Number.isSafeInteger(header.size)) return undefined;
    return { url: header.image, size: header.size };
  } catch {
    return undefined;
  }
}
