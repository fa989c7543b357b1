/**
 * The benchmark's file: one file on the working disk (default 1 GiB),
 * created once with non-zero data (a sparse file would read holes), reused
 * when it is there with the right size, and read whole before measuring so
 * the page cache holds it and the comparison measures the software path,
 * not the disk.
 *
 * @module
 */

import {
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { VirtioBlkError } from "../../src/errors.ts";

/** Bytes read or written per call while creating and warming the file. */
const CHUNK = 1 << 20;

/** The benchmark file, ready. */
export interface BenchFile {
  readonly path: string;
  readonly size: number;
  /** Whether this run created it. */
  readonly created: boolean;
  /** The file system holding it, from /proc/self/mounts. */
  readonly fileSystem: FileSystemInfo;
  /** How long reading it whole (warming the page cache) took. */
  readonly warmSeconds: number;
}

/** Where a file lives. */
export interface FileSystemInfo {
  readonly type: string;
  readonly device: string;
  readonly mountPoint: string;
}

/**
 * Creates the file at `path` with `size` bytes of data unless it exists;
 * an existing file must be a regular file of exactly `size` bytes (it is
 * never truncated or extended). Then reads it whole to warm the page cache.
 * Throws a `VirtioBlkError` naming the problem.
 */
export function prepareBenchFile(
  path: string,
  size: number,
  log: (line: string) => void = () => {},
): BenchFile {
  if (!Number.isSafeInteger(size) || size < CHUNK || size % CHUNK !== 0) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `--size ${size}: the benchmark file must be a whole number of MiB, at least 1 MiB`,
    );
  }
  let created = false;
  if (existsSync(path)) {
    const stat = statSync(path);
    if (!stat.isFile()) {
      throw new VirtioBlkError("BAD_BACKING_FILE", `${path} exists and is not a regular file`);
    }
    if (stat.size !== size) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `${path} exists with ${stat.size} bytes, not ${size}: remove it or give --size ${stat.size}`,
      );
    }
  } else {
    log(`creating ${path} (${size >> 20} MiB)…`);
    createFile(path, size);
    created = true;
  }
  const fileSystem = fileSystemOf(path);
  if (fileSystem.type === "tmpfs" || fileSystem.type === "ramfs") {
    log(`note: ${path} is on ${fileSystem.type}, not a disk: the page cache plays no part`);
  }
  const started = performance.now();
  warm(path, size);
  return {
    path,
    size,
    created,
    fileSystem,
    warmSeconds: (performance.now() - started) / 1000,
  };
}

/** Writes `size` bytes of pseudo-random data, each 4 KiB block stamped with its offset. */
function createFile(path: string, size: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const chunk = new Uint8Array(CHUNK);
  for (let at = 0; at < CHUNK; at += 65536) crypto.getRandomValues(chunk.subarray(at, at + 65536));
  const view = new DataView(chunk.buffer);
  const fd = openSync(path, "wx");
  try {
    for (let offset = 0; offset < size; offset += CHUNK) {
      for (let block = 0; block < CHUNK; block += 4096) {
        view.setFloat64(block, offset + block, true);
      }
      let done = 0;
      while (done < CHUNK) done += writeSync(fd, chunk, done, CHUNK - done, offset + done);
    }
    fdatasyncSync(fd);
    closeSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw new VirtioBlkError("IO_ERROR", `cannot create ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Reads the whole file once, so its pages are in the page cache. */
function warm(path: string, size: number): void {
  const buffer = new Uint8Array(CHUNK);
  const fd = openSync(path, "r");
  try {
    for (let offset = 0; offset < size;) {
      const n = readSync(fd, buffer, 0, CHUNK, offset);
      if (n === 0) break;
      offset += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** Octal escapes (`\040` for a space) of /proc/self/mounts fields. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** The mount holding `path` (the longest mount point that contains it). */
export function fileSystemOf(path: string): FileSystemInfo {
  const real = realpathSync(path);
  let best: FileSystemInfo = { type: "unknown", device: "unknown", mountPoint: "/" };
  let bestLength = -1;
  for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [device, mount, type] = line.split(" ").map(unescapeMountField);
    if (mount === undefined || type === undefined) continue;
    const inside = mount === "/" || real === mount || real.startsWith(mount + "/");
    if (inside && mount.length > bestLength) {
      best = { type, device, mountPoint: mount };
      bestLength = mount.length;
    }
  }
  return best;
}

/**
 * Makes the file's dirty pages stable, so that one measurement's writes are
 * not written back during (and charged to) the next one.
 */
export function settleFile(path: string): void {
  const fd = openSync(path, "r+");
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
