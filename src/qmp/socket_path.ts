/**
 * Making a Unix socket path free to listen on, through `node:net` (Deno and
 * Node): a socket nobody listens on (left by a process that was killed) is
 * replaced; a path a live server listens on is refused, since taking it
 * over would cut that server off from its clients without a word; any
 * other kind of file is refused and left alone.
 *
 * @module
 */

import * as fs from "node:fs";
import net from "node:net";
import { dirname } from "node:path";
import { VirtioBlkError } from "../errors.ts";

/**
 * Checks that `path` can be listened on without harm, without creating or
 * changing anything (the check a command line makes before it starts).
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG` naming why not
 */
export function checkSocketPath(path: string): void {
  let info: fs.Stats | undefined;
  try {
    info = fs.lstatSync(path);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") {
      throw new VirtioBlkError("INVALID_CONFIG", `cannot use socket path ${path}: ${error}`);
    }
  }
  if (info !== undefined && !info.isSocket()) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `socket path ${path} exists and is not a socket; refusing to replace it`,
    );
  }
  let directory: fs.Stats;
  try {
    directory = fs.statSync(dirname(path));
  } catch {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `socket path ${path}: no directory ${dirname(path)}`,
    );
  }
  if (!directory.isDirectory()) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `socket path ${path}: ${dirname(path)} is no directory`,
    );
  }
}

/**
 * {@linkcode checkSocketPath}, then removes a stale socket at `path` and
 * refuses one a live server answers on.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  checkSocketPath(path);
  if (!fs.existsSync(path)) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `socket path ${path}: address in use (another server is listening on it)`,
    );
  }
  fs.rmSync(path, { force: true });
}
