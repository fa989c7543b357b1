/**
 * Real files, mounts and loop devices for the file-backend tests, each a
 * `Disposable` so a failing test still cleans up, plus the checks those
 * tests share (a file's bytes and mtime unchanged, an error's code and
 * message).
 */

import type { FileIo } from "../../src/backend/file_spec.ts";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { VirtioBlkError } from "../../src/errors.ts";
import type { ErrorCode } from "../../src/errors.ts";

export { pattern } from "../helpers/harness.ts";

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Both file I/O kinds; every backend test runs for each. */
export const IO_KINDS: readonly FileIo[] = ["fsfile", "node-fs"];

/** A temporary directory, removed with everything in it on dispose. */
export class TempDir implements Disposable {
  readonly path: string = Deno.makeTempDirSync({ prefix: "virtio_blk_backend_" });

  /** Creates `name` holding `bytes` (or `bytes` zero bytes) and returns its path. */
  file(name: string, bytes: Uint8Array | number): string {
    const path = `${this.path}/${name}`;
    Deno.writeFileSync(path, typeof bytes === "number" ? new Uint8Array(bytes) : bytes);
    return path;
  }

  /** Names in the directory, sorted. */
  list(): string[] {
    return [...Deno.readDirSync(this.path)].map((entry) => entry.name).sort();
  }

  [Symbol.dispose](): void {
    Deno.removeSync(this.path, { recursive: true });
  }
}

/** A file's bytes and modification time (nanoseconds). */
export interface Snapshot {
  readonly bytes: Uint8Array;
  readonly mtimeNs: bigint;
}

/**
 * Sets `path`'s times to 2001 (so any write would move mtime to now) and
 * returns its contents and mtime.
 */
export function snapshot(path: string): Snapshot {
  const past = new Date("2001-01-01T00:00:00Z");
  fs.utimesSync(path, past, past);
  return { bytes: Deno.readFileSync(path), mtimeNs: fs.statSync(path, { bigint: true }).mtimeNs };
}

/** Asserts that `path` still has the bytes and mtime of `before`. */
export function assertUnchanged(path: string, before: Snapshot): void {
  assert.equal(fs.statSync(path, { bigint: true }).mtimeNs, before.mtimeNs, `mtime of ${path}`);
  assert.ok(equalBytes(Deno.readFileSync(path), before.bytes), `bytes of ${path} changed`);
}

/** Byte equality without a per-byte diff (files are large). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/** A matcher for `assert.throws`: a VirtioBlkError with `code` whose message matches. */
export function blkError(code: ErrorCode, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof VirtioBlkError, `expected a VirtioBlkError, got ${error}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };
}

function run(command: string, args: string[]): { ok: boolean; stdout: string; stderr: string } {
  try {
    const output = new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .outputSync();
    const decoder = new TextDecoder();
    return {
      ok: output.success,
      stdout: decoder.decode(output.stdout).trim(),
      stderr: decoder.decode(output.stderr).trim(),
    };
  } catch (error) {
    return { ok: false, stdout: "", stderr: String(error) };
  }
}

function runOrThrow(command: string, args: string[]): string {
  const result = run(command, args);
  if (!result.ok) throw new Error(`${command} ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** A tmpfs mounted on a new temporary directory; unmounted and removed on dispose. */
export class TmpfsMount implements Disposable {
  readonly path: string;

  /** Mounts a tmpfs of `sizeBytes` (needs root). */
  constructor(sizeBytes: number) {
    this.path = Deno.makeTempDirSync({ prefix: "virtio_blk_tmpfs_" });
    try {
      runOrThrow("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", this.path]);
    } catch (error) {
      Deno.removeSync(this.path);
      throw error;
    }
  }

  /**
   * Creates a sparse file of `bytes` named `name` in the mount (no block
   * allocated yet: on a mount smaller than `bytes`, writes to it run out
   * of room part way); returns its path.
   */
  sparseFile(name: string, bytes: number): string {
    const path = `${this.path}/${name}`;
    using file = Deno.openSync(path, { write: true, create: true });
    file.truncateSync(bytes);
    return path;
  }

  /** Makes the mount read-only. */
  remountReadOnly(): void {
    runOrThrow("mount", ["-o", "remount,ro", this.path]);
  }

  [Symbol.dispose](): void {
    runOrThrow("umount", [this.path]);
    Deno.removeSync(this.path);
  }
}

/** A loop device over a file (`losetup`); detached on dispose. */
export class LoopDevice implements Disposable {
  readonly path: string;
  #partitions = false;

  /** Attaches `file` to a free loop device (needs root), read-only if asked. */
  constructor(file: string, options: { readOnly?: boolean } = {}) {
    this.path = runOrThrow("losetup", [
      ...(options.readOnly ? ["--read-only"] : []),
      "--find",
      "--show",
      file,
    ]);
  }

  /**
   * Creates the partition devices of the file's partition table with
   * `partx --add` (BLKPG: the kernel need not parse partition tables itself)
   * and returns the path of partition `number`.
   */
  addPartitions(number: number): string {
    runOrThrow("partx", ["--add", this.path]);
    this.#partitions = true;
    return this.partition(number);
  }

  /** The path of partition `number` once its device exists (after {@linkcode addPartitions}). */
  partition(number: number): string {
    const partition = `${this.path}p${number}`;
    // devtmpfs makes the node when the kernel adds the device; allow it a moment.
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; !exists(partition) && waited < 2000; waited += 10) {
      Atomics.wait(pause, 0, 0, 10);
    }
    if (!exists(partition)) throw new Error(`${partition} did not appear after partx --add`);
    return partition;
  }

  [Symbol.dispose](): void {
    if (this.#partitions) runOrThrow("partx", ["--delete", this.path]);
    runOrThrow("losetup", ["--detach", this.path]);
  }
}

/**
 * An MBR partition table with one Linux partition of `sectors` 512-byte
 * sectors starting at sector `start`, written into the first sector of `disk`.
 */
export function writeMbr(disk: Uint8Array, start: number, sectors: number): void {
  disk.fill(0, 446, 510); // four entries: this one and three unused
  const entry = new DataView(disk.buffer, disk.byteOffset + 446, 16);
  entry.setUint8(4, 0x83); // partition type: Linux
  entry.setUint32(8, start, true);
  entry.setUint32(12, sectors, true);
  disk[510] = 0x55;
  disk[511] = 0xaa;
}

/**
 * Why a privileged fixture cannot be made here, or `undefined` if it can:
 * tries it once (for `Deno.test`'s `ignore`).
 */
export function unavailable(make: () => Disposable): string | undefined {
  try {
    make()[Symbol.dispose]();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Why loop devices cannot be used here, or `undefined`. */
export function loopDevicesUnavailable(): string | undefined {
  using dir = new TempDir();
  const file = dir.file("probe.img", 64 * KiB);
  const reason = unavailable(() => new LoopDevice(file));
  return reason === undefined ? undefined : `losetup failed: ${reason}`;
}

/** Why partition devices of a loop device cannot be used here, or `undefined`. */
export function partitionsUnavailable(): string | undefined {
  const loop = loopDevicesUnavailable();
  if (loop !== undefined) return loop;
  using dir = new TempDir();
  const disk = new Uint8Array(2 * MiB);
  writeMbr(disk, 2048, 2048);
  const file = dir.file("probe.img", disk);
  const reason = unavailable(() => {
    const device = new LoopDevice(file);
    try {
      device.addPartitions(1);
    } catch (error) {
      device[Symbol.dispose]();
      throw error;
    }
    return device;
  });
  return reason === undefined ? undefined : `partition devices failed: ${reason}`;
}

/** Why tmpfs cannot be mounted here, or `undefined`. */
export function tmpfsUnavailable(): string | undefined {
  const reason = unavailable(() => new TmpfsMount(MiB));
  return reason === undefined ? undefined : `mounting a tmpfs failed: ${reason}`;
}

/** Descriptors this process has open on `path` (from /proc/self/fd). */
export function openDescriptors(path: string): number[] {
  const fds: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === path) fds.push(Number(entry.name));
    } catch {
      // The descriptor readDir itself used is gone by now.
    }
  }
  return fds;
}

/** The open flags of descriptor `fd` (from /proc/self/fdinfo). */
export function descriptorFlags(fd: number): number {
  const info = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  const flags = info.match(/^flags:\s+([0-7]+)$/m);
  assert.ok(flags, `no flags in fdinfo of ${fd}`);
  return parseInt(flags[1], 8);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Linux's O_ACCMODE: the bits of the open flags that hold O_RDONLY / O_WRONLY / O_RDWR. */
const O_ACCMODE = 3;

/** The access mode (O_RDONLY, O_WRONLY or O_RDWR) descriptor `fd` was opened with. */
export function accessMode(fd: number): number {
  return descriptorFlags(fd) & O_ACCMODE;
}
