/**
 * What identifies a device's medium, as one line of text: messages name the
 * device by it, and a device with no `serial=` and no ACRN option string
 * (a library-made one) derives its default serial from it, so two disks of
 * one guest never share a serial (and a `/dev/disk/by-id` name).
 *
 * - A file is its absolute path, and the byte window when `range=` chose
 *   one: the same file gives the same name in every run, also after it is
 *   resized, and two windows of it give two names.
 * - A RAM disk has no path. Its identity is its buffer: a random name is
 *   drawn the first time a buffer is named and kept with it, so every RAM
 *   disk gets its own name, and devices made again over the same RAM disk
 *   (the same `MemoryBackendSpec`) get the same one. Randomness (not a
 *   counter) keeps RAM disks of two processes serving one guest apart.
 *
 * @module
 */

import type { BackendSpec } from "./backend.ts";

/** Random hexadecimal digits in a RAM disk's name (64 bits: no collision to expect). */
const RAM_DISK_ID_BYTES = 8;

/** The name drawn for each RAM disk buffer, kept as long as the buffer lives. */
const ramDiskIds = new WeakMap<SharedArrayBuffer, string>();

/** The one-line name of the medium `spec` describes (see the module documentation). */
export function mediumName(spec: BackendSpec): string {
  if (spec.kind === "file") {
    return spec.windowed
      ? `${spec.path} bytes ${spec.offset}-${spec.offset + spec.size}`
      : spec.path;
  }
  return `RAM disk ${ramDiskId(spec.buffer)}`;
}

function ramDiskId(buffer: SharedArrayBuffer): string {
  let id = ramDiskIds.get(buffer);
  if (id === undefined) {
    // WebCrypto's random source: the same on Deno, Node 20 and in browsers.
    const bytes = crypto.getRandomValues(new Uint8Array(RAM_DISK_ID_BYTES));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    ramDiskIds.set(buffer, id);
  }
  return id;
}
