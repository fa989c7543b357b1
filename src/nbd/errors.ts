/**
 * How NBD failures reach callers. Three kinds, kept apart:
 *
 * - The export cannot be used (the server is not reachable, refuses the
 *   export, requires TLS, breaks the handshake, offers a size that is not
 *   a multiple of 512): a {@linkcode VirtioBlkError} `BAD_BACKING_FILE`
 *   from `connect`, one line naming the URI and the problem.
 * - A request failed: a negative errno result (`-EIO`, `-ENOSPC`, …) for
 *   completion callbacks, an {@linkcode NbdRequestError} carrying it for
 *   the promise API. The server's error values are mapped to this
 *   machine's errno ({@linkcode errnoFromServer}); the client's own
 *   failures use {@linkcode ClientErrno}.
 * - The connection failed (dropped, silent past the request timeout, or
 *   broken by a reply that violates the protocol): every request in flight
 *   on it fails, and the reason is one line for the client's log.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { ERRNO, errnoName } from "../io/errno.ts";
import { MAX_STRING, NbdErrno } from "./protocol.ts";

/** The errno values requests fail with when the client, not the server, decides. */
export const ClientErrno = {
  /** The connection was lost, or its replies broke the protocol, while the request was in flight. */
  CONNECTION: ERRNO.ECONNRESET,
  /** No reply (or no connection to send it on) within the request timeout. */
  TIMEOUT: ERRNO.ETIMEDOUT,
  /** The client was closed before the request could be sent. */
  CLOSED: ERRNO.ENOTCONN,
  /** The request is malformed: beyond the export's end, misaligned, vector too short. */
  INVALID: ERRNO.EINVAL,
  /** The export does not offer the operation (TRIM, WRITE_ZEROES, FLUSH). */
  UNSUPPORTED: ERRNO.EOPNOTSUPP,
  /** A write to a read-only export. */
  READ_ONLY: ERRNO.EROFS,
  /** The caller abandoned every request (`NbdClient.abort`). */
  CANCELLED: ERRNO.ECANCELED,
} as const;

/** ESHUTDOWN: the server is shutting down (an NBD error value; not in the general errno table). */
export const ESHUTDOWN: number = NbdErrno.ESHUTDOWN;

const SERVER_ERRNO = new Set<number>(Object.values(NbdErrno));

/**
 * The errno for a reply's error value: the values proto.md defines are
 * Linux's numbers already; any other value counts as EINVAL ("Error values":
 * the client SHOULD treat an unexpected error value as if it had been
 * NBD_EINVAL).
 */
export function errnoFromServer(value: number): number {
  return SERVER_ERRNO.has(value) ? value : NbdErrno.EINVAL;
}

/** `"ESHUTDOWN"` too, which the general table lacks. */
export function nbdErrnoName(errno: number): string {
  return errno === ESHUTDOWN ? "ESHUTDOWN" : errnoName(errno);
}

/** A request that failed, for the promise API: `errno` is what a completion callback gets negated. */
export class NbdRequestError extends VirtioBlkError {
  /** The positive errno (`errnoOf` reads it): a completion callback's result is its negation. */
  readonly errno: number;

  /**
   * An `IO_ERROR` carrying `errno`.
   *
   * @param errno the positive errno
   * @param message one line: the request, the errno, and the server's or client's reason
   */
  constructor(errno: number, message: string) {
    super("IO_ERROR", message);
    this.errno = errno;
    this.name = "NbdRequestError";
  }
}

/** The export cannot be used: `uri: problem`. */
export function exportError(uri: string, problem: string, cause?: unknown): VirtioBlkError {
  return new VirtioBlkError("BAD_BACKING_FILE", `${uri}: ${problem}`, { cause });
}

/**
 * A message the server sent (an error reply's or chunk's text) as one line
 * for a log or an error: UTF-8 (invalid bytes replaced), at most
 * {@linkcode MAX_STRING} bytes of it, control characters (line breaks
 * included) as spaces, so a server cannot forge log lines.
 */
export function serverMessage(bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes.subarray(0, MAX_STRING));
  let line = "";
  for (const char of text) {
    const code = char.codePointAt(0)!;
    line += code < 0x20 || code === 0x7f ? " " : char;
  }
  return line.replace(/ {2,}/g, " ").trim();
}
