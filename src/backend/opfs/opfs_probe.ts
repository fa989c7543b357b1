/**
 * What an OPFS file and this browser allow, found out in a dedicated
 * worker (the only place a `FileSystemSyncAccessHandle` can be made): the
 * file's size, whether access handles have modes (Chromium 121+:
 * `"readwrite-unsafe"` lets every blockif thread hold its own handle;
 * without modes a handle is exclusive and the disk gets one I/O thread),
 * and whether `read`/`write` take views of a SharedArrayBuffer (guest
 * memory) as the File System standard's `AllowSharedBufferSource` says.
 * Browser-safe.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { parentChannel, siblingModule, startThread } from "../../runtime/thread.ts";
import { domErrorName, opfsFile, type SyncAccessHandle } from "./opfs_api.ts";

/** What a probe found. */
export interface OpfsProbe {
  /** The file's size in bytes. */
  readonly size: number;
  /** Whether access handles have modes (several handles on one file at once). */
  readonly modes: boolean;
  /** Whether `read`/`write` take views of a SharedArrayBuffer. */
  readonly sharedViews: boolean;
}

/** What the probe worker is asked. */
interface ProbeRequest {
  readonly path: string;
  readonly readOnly: boolean;
}

/** What it answers. */
type ProbeReply =
  | { readonly probe: OpfsProbe }
  | { readonly error: string; readonly code: VirtioBlkError["code"] };

/**
 * Opens a sync access handle on `path` on this thread (a dedicated worker)
 * in the mode the blockif threads would use, and closes it again.
 *
 * @throws {VirtioBlkError} `BAD_BACKING_FILE` when the file is missing or
 *   held by someone else; `UNSUPPORTED` where there are no access handles
 */
export async function openAccessHandle(
  path: string,
  mode: "read-only" | "readwrite-unsafe" | "readwrite",
): Promise<SyncAccessHandle> {
  const file = await opfsFile(path);
  if (typeof file.createSyncAccessHandle !== "function") {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `OPFS file ${path}: FileSystemSyncAccessHandle exists only in dedicated workers ` +
        `(an OPFS disk is served by the blockif worker engine)`,
    );
  }
  try {
    return await file.createSyncAccessHandle({ mode });
  } catch (error) {
    const name = domErrorName(error);
    throw new VirtioBlkError(
      "BAD_BACKING_FILE",
      name === "NoModificationAllowedError"
        ? `OPFS file ${path} is in use: another tab or worker holds an access handle on it`
        : `cannot open OPFS file ${path}: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

/** Probes `path` on this thread, a dedicated worker. */
export async function probeHere(path: string, readOnly: boolean): Promise<OpfsProbe> {
  const handle = await openAccessHandle(path, readOnly ? "read-only" : "readwrite-unsafe");
  try {
    let sharedViews = true;
    try {
      handle.read(new Uint8Array(new SharedArrayBuffer(8)), { at: 0 });
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      sharedViews = false;
    }
    return { size: handle.getSize(), modes: handle.mode !== undefined, sharedViews };
  } finally {
    handle.close();
  }
}

/** The probe worker's side: answers one request. */
export async function serveOpfsProbe(): Promise<void> {
  const parent = await parentChannel();
  parent.onMessage(async (message) => {
    const { path, readOnly } = message as ProbeRequest;
    let reply: ProbeReply;
    try {
      reply = { probe: await probeHere(path, readOnly) };
    } catch (error) {
      reply = {
        error: error instanceof Error ? error.message : String(error),
        code: error instanceof VirtioBlkError ? error.code : "BAD_BACKING_FILE",
      };
    }
    parent.postMessage(reply);
  });
}

/**
 * Probes the OPFS file at `path` from any thread (a page's main thread
 * included), in a worker of its own.
 *
 * @throws {VirtioBlkError} as {@linkcode openAccessHandle}
 */
export async function probeOpfsFile(path: string, readOnly: boolean): Promise<OpfsProbe> {
  const thread = await startThread(siblingModule(import.meta.url, "opfs_probe_worker"), "opfs");
  try {
    const reply = await new Promise<ProbeReply>((resolve, reject) => {
      thread.onMessage((message) => resolve(message as ProbeReply));
      thread.onError((error) => reject(error));
      thread.postMessage({ path, readOnly } satisfies ProbeRequest);
    });
    if ("error" in reply) throw new VirtioBlkError(reply.code, reply.error);
    return reply.probe;
  } finally {
    await thread.terminate();
  }
}
