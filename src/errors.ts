/**
 * The project's one error type. Every error a user can cause (a bad option,
 * a missing file) or that the medium reports (EIO, ENOSPC, a short transfer)
 * is a {@linkcode VirtioBlkError} with a stable `code` and a message that
 * names the problem. Guest mistakes never become exceptions: they become a
 * status byte or a broken queue.
 *
 * @module
 */

/** Stable error codes. */
export type ErrorCode =
  /** A device or slot specification is malformed or impossible. */
  | "INVALID_CONFIG"
  /** The backing file cannot be used (missing, directory, wrong size, in use). */
  | "BAD_BACKING_FILE"
  /** The medium failed a read, write or sync. */
  | "IO_ERROR"
  /** A read or write transferred fewer bytes than asked (end of file). */
  | "SHORT_TRANSFER"
  /** The operation is not available on this runtime or platform. */
  | "UNSUPPORTED"
  /** The device or its engine was used after it was closed. */
  | "CLOSED";

/** An error with a stable code. */
export class VirtioBlkError extends Error {
  /**
   * Makes an error carrying `code`; the command line prints `message` as the
   * one line the user sees, without a stack trace.
   *
   * @param code what kind of problem
   * @param message one line naming the problem
   * @param options the underlying cause, if any
   */
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "VirtioBlkError";
  }
}
