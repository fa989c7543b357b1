/**
 * The ways the blockif engine's threads reach a medium, so every
 * engine-level test runs against each (parameterised, not copied):
 *
 * - `threads`: each thread's synchronous calls (pread/pwrite) on its own
 *   handle, on the medium the test always used (a RAM disk or a file);
 * - `io_uring`: each thread's io_uring (ACRN's `aio=io_uring`), on a file
 *   (io_uring reaches files, not RAM disks); skipped, and named, where
 *   there is no io_uring (Node, another kernel, io_uring disabled).
 *
 * @module
 */

import type { BackendSpec } from "../../src/backend/backend.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { IoUring } from "../../src/io/io_uring/ring.ts";
import { ioUringUnavailable } from "../../src/io/io_uring/sys.ts";
import { type Skip, skipWhen } from "./skip.ts";

/** A medium made for one test, and its bytes as the host sees them now. */
export interface TestMedium extends Disposable {
  readonly backend: BackendSpec;
  /** The medium's bytes now (a RAM disk's live view, or a fresh read of the file). */
  bytes(): Uint8Array;
}

/** One way the engine reaches its medium. */
export interface IoVariant {
  /** `threads` or `io_uring`, for test names. */
  readonly name: string;
  /** Whether it can run here. */
  readonly skip: Skip;
  /** What to add to an `-s` spec (`,aio=io_uring`). */
  readonly slotOption: string;
  /** A medium of `bytes` (zeros) for this variant; `file` forces a file for `threads` too. */
  medium(bytes: number, options?: { file?: boolean }): TestMedium;
}

function ioUringMissing(): string | undefined {
  const unavailable = ioUringUnavailable();
  if (unavailable !== undefined) return unavailable;
  try {
    new IoUring(2).close();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function fileMedium(bytes: number, aio: "threads" | "io_uring"): TestMedium {
  const dir = Deno.makeTempDirSync({ prefix: `medium-${aio}-` });
  const path = `${dir}/disk.img`;
  using file = Deno.openSync(path, { write: true, create: true });
  file.truncateSync(bytes);
  return {
    backend: describeFile(path, { aio, io: aio === "threads" ? "node-fs" : undefined }),
    bytes: () => Deno.readFileSync(path),
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

/** Every way, in order: the engine's default first. */
export const IO_VARIANTS: readonly IoVariant[] = [
  {
    name: "threads",
    skip: { ignore: false, reason: undefined },
    slotOption: "",
    medium(bytes, options = {}) {
      if (options.file) return fileMedium(bytes, "threads");
      const backend = MemoryBackend.create(bytes);
      return { backend, bytes: () => new Uint8Array(backend.buffer), [Symbol.dispose]: () => {} };
    },
  },
  {
    name: "io_uring",
    skip: skipWhen("the engine tests over io_uring", ioUringMissing()),
    slotOption: ",aio=io_uring",
    medium: (bytes) => fileMedium(bytes, "io_uring"),
  },
];
