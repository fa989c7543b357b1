/**
 * Checking a server's answer to a `Range` request (RFC 9110 §14): the one
 * thing every way of asking (sync XHR, fetch on a helper thread, the first
 * request that sizes the image) agrees on. The server is not trusted: an
 * answer is used only when it is a 206 for exactly the bytes asked, of an
 * image of exactly the size described, and its body is exactly that long.
 * Browser-safe.
 *
 * @module
 */

/** A `Content-Range: bytes first-last/complete` header's numbers. */
export interface ContentRange {
  readonly first: number;
  readonly last: number;
  /** The whole representation's length, or undefined for `*`. */
  readonly complete: number | undefined;
}

/** Parses `bytes first-last/complete` (or `/*`); undefined for anything else. */
export function parseContentRange(header: string | null | undefined): ContentRange | undefined {
  const match = header == null ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (match === null) return undefined;
  const first = Number(match[1]), last = Number(match[2]);
  const complete = match[3] === "*" ? undefined : Number(match[3]);
  const numbers = [first, last, complete ?? 0];
  if (!numbers.every(Number.isSafeInteger) || last < first) return undefined;
  if (complete !== undefined && last >= complete) return undefined;
  return { first, last, complete };
}

/** The `Range` header value asking for `length` bytes at `offset` (length > 0). */
export function rangeHeader(offset: number, length: number): string {
  return `bytes=${offset}-${offset + length - 1}`;
}

/** What a range request asked for. */
export interface RangeAsked {
  readonly url: string;
  readonly offset: number;
  readonly length: number;
  /** The image's size as described: a different one means the image changed. */
  readonly imageSize: number;
}

/**
 * Why the answer (`status`, its `Content-Range` header) to the request
 * `asked` cannot be used, or undefined when it is the bytes asked for.
 */
export function rangeAnswerProblem(
  asked: RangeAsked,
  status: number,
  contentRange: string | null | undefined,
): string | undefined {
  const what = `${rangeHeader(asked.offset, asked.length)} of ${asked.url}`;
  if (status === 200) {
    return `${what}: the server ignored the Range header (HTTP 200, the whole image)`;
  }
  if (status !== 206) return `${what}: HTTP ${status}`;
  const range = parseContentRange(contentRange);
  if (range === undefined) {
    return `${what}: HTTP 206 without a usable Content-Range (${contentRange ?? "none"}; ` +
      `a server on another origin must expose it: Access-Control-Expose-Headers)`;
  }
  if (range.complete !== undefined && range.complete !== asked.imageSize) {
    return `${what}: the image is ${range.complete} bytes now, not ${asked.imageSize} ` +
      `(it changed on the server)`;
  }
  if (range.first !== asked.offset || range.last !== asked.offset + asked.length - 1) {
    return `${what}: the server sent bytes ${range.first}-${range.last} instead`;
  }
  return undefined;
}

/** Why a body of `received` bytes cannot be the answer to `asked`, or undefined. */
export function bodyLengthProblem(asked: RangeAsked, received: number): string | undefined {
  if (received === asked.length) return undefined;
  return `${rangeHeader(asked.offset, asked.length)} of ${asked.url}: ` +
    `${
      received > asked.length ? "more" : "fewer"
    } bytes than asked (${received} of ${asked.length})`;
}
