/**
 * The device serial returned by GET_ID (virtio 1.2 §5.2.6: 20 bytes,
 * NUL-padded, no NUL when exactly 20 long).
 *
 * Without a `serial=` option the serial is derived the way ACRN's
 * virtio_block.c does it: the MD5 digest of the device's option string,
 * printed as `ACRN--XXXX-XXXX-XXXX` from its first six bytes. The same
 * command line therefore always gives the same serial. A device the library
 * makes has no option string: its serial comes from its medium's name (a
 * file's path and window, a RAM disk's own random name).
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { md5 } from "./md5.ts";
import { ID_BYTES } from "./spec.ts";

/**
 * The serial a device with option string `options` gets by default; a
 * device made without one (by the library) passes its medium's name
 * (each backend spec's `name`) instead.
 */
export function defaultSerial(options: string): string {
  const d = md5(options);
  const hex = (i: number) => d[i].toString(16).toUpperCase().padStart(2, "0");
  return `ACRN--${hex(0)}${hex(1)}-${hex(2)}${hex(3)}-${hex(4)}${hex(5)}`;
}

/**
 * The 20 GET_ID bytes for `serial`. Throws when it is longer than 20 bytes or
 * has characters outside printable ASCII.
 */
export function serialBytes(serial: string): Uint8Array {
  if (!/^[\x20-\x7e]*$/.test(serial)) {
    throw new VirtioBlkError("INVALID_CONFIG", `serial "${serial}" must be printable ASCII`);
  }
  if (serial.length > ID_BYTES) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `serial "${serial}" is ${serial.length} characters; at most ${ID_BYTES} fit`,
    );
  }
  const bytes = new Uint8Array(ID_BYTES);
  for (let i = 0; i < serial.length; i++) bytes[i] = serial.charCodeAt(i);
  return bytes;
}
