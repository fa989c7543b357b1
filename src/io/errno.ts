/**
 * errno names and numbers (Linux), so a medium's failure keeps its cause
 * whichever way it was reported: a number from io_uring or a libc call, or
 * a name (`"ENOSPC"`) on a Deno or `node:fs` error. Browser-safe: plain data.
 *
 * @module
 */

/** The errno values media report, by name (Linux, all architectures we run on). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EDQUOT: 122,
  ENOMEDIUM: 123,
  ECANCELED: 125,
} as const;

const NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, value]) => [value, name]));

/** `"ENOSPC"` for 28; `"errno 200"` for a number without a name here. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * The errno a runtime error carries: the number of an error that has one
 * (`errno` field, negative in node:fs), else its `code` name's number, else
 * EIO (the medium failed and said no more).
 */
export function errnoOf(error: unknown): number {
  const fields = error as { errno?: unknown; code?: unknown; cause?: unknown } | null;
  if (typeof fields?.errno === "number" && fields.errno !== 0) return Math.abs(fields.errno);
  if (typeof fields?.code === "string" && fields.code in ERRNO) {
    return ERRNO[fields.code as keyof typeof ERRNO];
  }
  if (fields?.cause !== undefined && fields.cause !== error) return errnoOf(fields.cause);
  return ERRNO.EIO;
}
