/**
 * Growing or shrinking a backing file while a device serves it (QMP's
 * `block_resize`). Only a whole regular file opened writable can change
 * size: a `range=` window is a fixed part of its file, a block device's size
 * is the device's own, and a read-only one must not be written, so each is
 * refused with a message that says which.
 *
 * The file changes size through `ftruncate` on a descriptor opened for
 * writing without O_CREAT or O_TRUNC (growing leaves a hole that reads as
 * zeros; shrinking drops the bytes past the new end).
 *
 * @module
 */

import * as fs from "node:fs";
import { VirtioBlkError } from "../errors.ts";
import type { BackendSpec } from "./backend.ts";
import { type FileBackendSpec, isFileSpec } from "./file_driver.ts";
import { errorText } from "./file_errors.ts";

/**
 * Checks that `medium` is a file that may be resized, and returns its spec.
 *
 * @throws {VirtioBlkError} `UNSUPPORTED` naming why it may not
 */
export function resizableFile(medium: BackendSpec): FileBackendSpec {
  if (!isFileSpec(medium)) {
    throw new VirtioBlkError("UNSUPPORTED", `${medium.name} is not a file: it cannot be resized`);
  }
  if (medium.windowed) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `${medium.name} is a range= window of its file: the window's size is fixed`,
    );
  }
  if (medium.readOnly) {
    throw new VirtioBlkError("UNSUPPORTED", `${medium.path} is read-only (ro): it is not resized`);
  }
  let info: fs.Stats;
  try {
    info = fs.statSync(medium.path);
  } catch (error) {
    throw new VirtioBlkError("IO_ERROR", `cannot stat ${medium.path}: ${errorText(error)}`, {
      cause: error,
    });
  }
  if (!info.isFile()) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `${medium.path} is a block device: its size is the device's own`,
    );
  }
  return medium;
}

/**
 * Sets the size of the file `spec` names to `bytes`.
 *
 * @throws {VirtioBlkError} `IO_ERROR` when the file system refuses (EFBIG, ENOSPC, EPERM, …)
 */
export function truncateFile(spec: FileBackendSpec, bytes: number): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(spec.path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    fs.ftruncateSync(fd, bytes);
  } catch (error) {
    throw new VirtioBlkError(
      "IO_ERROR",
      `cannot resize ${spec.path} to ${bytes} bytes: ${errorText(error)}`,
      { cause: error },
    );
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
