/**
 * Turning what the OS reports about a backing file into one
 * {@linkcode VirtioBlkError} that names the file and the problem. Deno's
 * errors and `node:fs` errors both carry the errno name in `code`.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";

/** The errno name (`"ENOENT"`, `"EIO"`, …) of a runtime error, if it has one. */
export function errnoName(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The runtime's message for `error`, which names the errno in words. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How a backing file is being opened, for the message. */
export type OpenPurpose = "read" | "write" | "direct";

const PURPOSE_WORDS: Record<OpenPurpose, string> = {
  read: "reading",
  write: "writing",
  direct: "O_DIRECT (nocache) access",
};

/**
 * The error for a backing file that cannot be opened for `purpose`:
 * `BAD_BACKING_FILE`, saying whether it is missing, not writable, or
 * without O_DIRECT support.
 */
export function openFailure(path: string, purpose: OpenPurpose, cause: unknown): VirtioBlkError {
  const errno = errnoName(cause);
  let problem: string;
  if (errno === "ENOENT" || errno === "ENOTDIR") {
    problem = `backing file ${path} does not exist`;
  } else if (
    purpose === "write" &&
    (errno === "EACCES" || errno === "EPERM" || errno === "EROFS" || errno === "ETXTBSY")
  ) {
    problem = `backing file ${path} is not writable (${errorText(cause)}); use ro to open it ` +
      `read-only`;
  } else if (purpose === "direct" && errno === "EINVAL") {
    problem = `backing file ${path} does not support O_DIRECT (nocache): ${errorText(cause)}`;
  } else {
    problem = `cannot open backing file ${path} for ${PURPOSE_WORDS[purpose]}: ${errorText(cause)}`;
  }
  return new VirtioBlkError("BAD_BACKING_FILE", problem, { cause });
}
