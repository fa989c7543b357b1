/**
 * Managing disk images in the origin's OPFS from a page: a blank disk, a
 * copy of an image the person picked, the disks an earlier visit left, and
 * removing one. These run on any thread (a page's main thread included):
 * they write through `createWritable`, whose data lands when it is closed,
 * never while a blockif thread holds the file. Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import {
  domErrorName,
  type OpfsDirectoryHandle,
  opfsFile,
  opfsPathParts,
  opfsRoot,
  type OpfsWritable,
} from "./opfs_api.ts";

/** A file in the OPFS. */
export interface OpfsEntry {
  /** Its path (`disks/debian.img`). */
  readonly path: string;
  /** Its size in bytes. */
  readonly size: number;
}

/** Whether the OPFS holds a file at `path`. */
export async function opfsFileExists(path: string): Promise<boolean> {
  try {
    await opfsFile(path);
    return true;
  } catch (error) {
    if (error instanceof VirtioBlkError && error.code === "BAD_BACKING_FILE") return false;
    throw error;
  }
}

/**
 * Creates a zero-filled disk of `size` bytes (a positive multiple of 512)
 * at `path`.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a bad size or path, or a
 *   file that is already there (nothing is changed)
 */
export async function createOpfsDisk(path: string, size: number): Promise<void> {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `disk size ${size} must be a positive multiple of 512 bytes`,
    );
  }
  await writeNew(path, async (writable) => await writable.truncate(size));
}

/**
 * Copies `image` (a `File` the person picked, any `Blob`) to a new file at
 * `path`, reporting the bytes copied so far.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` for a bad path or a file that is
 *   already there (nothing is changed)
 */
export async function copyIntoOpfs(
  path: string,
  image: Blob,
  onProgress: (copied: number, total: number) => void = () => {},
): Promise<void> {
  await writeNew(path, async (writable) => {
    const reader = image.stream().getReader();
    let copied = 0;
    onProgress(0, image.size);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await writable.write(value);
      copied += value.byteLength;
      onProgress(copied, image.size);
    }
  });
}

/** The files under `directory` (default: the whole OPFS), with their sizes, sorted by path. */
export async function listOpfsFiles(directory = ""): Promise<OpfsEntry[]> {
  let handle = await opfsRoot();
  const prefix = directory === "" ? [] : opfsPathParts(directory);
  try {
    for (const name of prefix) handle = await handle.getDirectoryHandle(name);
  } catch (error) {
    if (domErrorName(error) === "NotFoundError") return [];
    throw error;
  }
  const found: OpfsEntry[] = [];
  await walk(handle, prefix, found);
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** Removes the file at `path` (nothing when there is none). */
export async function removeOpfsFile(path: string): Promise<void> {
  const parts = opfsPathParts(path);
  let directory = await opfsRoot();
  try {
    for (const name of parts.slice(0, -1)) directory = await directory.getDirectoryHandle(name);
    await directory.removeEntry(parts.at(-1)!);
  } catch (error) {
    if (domErrorName(error) !== "NotFoundError") throw error;
  }
}

async function walk(directory: OpfsDirectoryHandle, prefix: string[], found: OpfsEntry[]) {
  for await (const [name, entry] of directory.entries()) {
    if (entry.kind === "directory") await walk(entry, [...prefix, name], found);
    else found.push({ path: [...prefix, name].join("/"), size: (await entry.getFile()).size });
  }
}

/**
 * Makes a new file at `path` and fills it through `fill`; a fill that fails
 * leaves no file behind.
 */
async function writeNew(
  path: string,
  fill: (writable: OpfsWritable) => Promise<void>,
): Promise<void> {
  if (await opfsFileExists(path)) {
    throw new VirtioBlkError("INVALID_CONFIG", `OPFS file ${path} already exists`);
  }
  const file = await opfsFile(path, true);
  const writable = await file.createWritable();
  try {
    await fill(writable);
    await writable.close();
  } catch (error) {
    await writable.abort().catch(() => {});
    await removeOpfsFile(path);
    throw error;
  }
}
