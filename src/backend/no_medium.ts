/**
 * The medium of an empty drive: ACRN's `nodisk` (`-s 3,virtio-blk,nodisk`),
 * and what a drive holds after an eject. Its size is 0, so the device's
 * capacity is 0 and every read or write with data is out of range (IOERR,
 * before the medium is reached). virtio-blk has no "no medium" status
 * (virtio 1.2 §5.2.6: OK, IOERR, UNSUPP), so IOERR is the answer; a
 * zero-length transfer succeeds, and FLUSH succeeds (nothing was written
 * that could be unstable). Anything else that reaches it fails with
 * ENOMEDIUM, Linux's errno for a drive without a medium. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { ERRNO } from "../io/errno.ts";
import { backendDrivers, type BackendSpec, type BlockBackend } from "./backend.ts";

/** The spec of an empty drive. */
export interface NoMediumSpec extends BackendSpec {
  /** Tells this spec from other drivers' specs. */
  readonly kind: "none";
  /** No medium, no bytes: the guest sees capacity 0. */
  readonly size: 0;
}

/** The URL no-medium specs name as their driver. */
export const NO_MEDIUM_DRIVER: string = import.meta.url;

/**
 * Describes an empty drive. `readOnly` is the drive's own mode (`nodisk,ro`):
 * the device offers VIRTIO_BLK_F_RO from it, and a medium inserted later
 * keeps it unless told otherwise.
 */
export function noMedium(options: { readonly readOnly?: boolean } = {}): NoMediumSpec {
  return {
    module: NO_MEDIUM_DRIVER,
    kind: "none",
    name: "no medium",
    size: 0,
    readOnly: options.readOnly ?? false,
    // The capabilities of the drive, which its features come from: media
    // inserted later can flush (every driver here can).
    capabilities: { flush: true, discard: false, writeZeroes: false, handles: "shared" },
  };
}

/** Whether `spec` describes an empty drive. */
export function isNoMedium(spec: BackendSpec): spec is NoMediumSpec {
  return spec.module === NO_MEDIUM_DRIVER;
}

/** The handle of an empty drive. */
class NoMediumBackend implements BlockBackend {
  readonly size = 0;
  constructor(readonly readOnly: boolean) {}

  read(offset: number, _bytes: Uint8Array, _at: number, length: number): void {
    if (length > 0) throw noMediumError("read", offset);
  }

  write(offset: number, _bytes: Uint8Array, _at: number, length: number): void {
    if (length > 0) throw noMediumError("write", offset);
  }

  flush(): void {}

  close(): void {}
}

function noMediumError(op: string, offset: number): VirtioBlkError {
  const error = new VirtioBlkError("IO_ERROR", `${op} at byte ${offset}: no medium`);
  return Object.assign(error, { errno: ERRNO.ENOMEDIUM });
}

backendDrivers.register(NO_MEDIUM_DRIVER, {
  open: (spec) => new NoMediumBackend(spec.readOnly),
});
