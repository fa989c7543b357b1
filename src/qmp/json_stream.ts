/**
 * Splits the byte stream of a QMP connection into JSON texts, as QEMU's
 * JSON streamer does: a client may send objects back to back, with or
 * without newlines between them (Python's `qemu.qmp` sends none), and one
 * object may arrive in many pieces.
 *
 * The stream is untrusted, so the splitter holds at most
 * {@linkcode JsonStreamLimits.maxBytes} of one text: a longer one is
 * reported once as too large and skipped to its end without being kept, and
 * so is one nested deeper than {@linkcode JsonStreamLimits.maxDepth}.
 * Anything that is not an object or array at the top level (a stray word, a
 * number, a closing bracket) is reported up to the next whitespace, so a
 * client's mistake costs it one error reply and the stream goes on.
 *
 * Only the structure is tracked here (brackets outside strings, string
 * quotes and escapes, all ASCII: a byte of a multi-byte UTF-8 character is
 * never one of them); `JSON.parse` judges each complete text.
 *
 * @module
 */

/** What the splitter holds back from one client. */
export interface JsonStreamLimits {
  /** Bytes one JSON text may have (QEMU allows 64 MiB; a QMP command needs a few hundred). */
  readonly maxBytes: number;
  /** Brackets one text may nest (QEMU: 1024). */
  readonly maxDepth: number;
}

/** The limits a QMP client gets by default. */
export const DEFAULT_JSON_LIMITS: JsonStreamLimits = { maxBytes: 64 << 10, maxDepth: 64 };

/** One piece of the stream: a complete JSON text, or why some bytes were dropped. */
export type JsonPiece =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "error"; readonly reason: string };

const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** Where the splitter is in the stream. */
const State = {
  /** Between texts. */
  IDLE: 0,
  /** Inside an object or array, outside a string. */
  NESTED: 1,
  /** Inside a string of an object or array. */
  STRING: 2,
  /** Just after a backslash inside a string. */
  ESCAPE: 3,
  /** In a top-level token that is not an object or array (reported at its end). */
  STRAY: 4,
  /** Inside a top-level string token. */
  STRAY_STRING: 5,
  /** Just after a backslash inside a top-level string token. */
  STRAY_ESCAPE: 6,
} as const;

/** A splitter of one connection's stream. */
export class JsonStreamSplitter {
  readonly #limits: JsonStreamLimits;
  readonly #decoder = new TextDecoder();
  #state: number = State.IDLE;
  #depth = 0;
  /** The text so far: chunks, and their length in bytes. */
  #chunks: Uint8Array[] = [];
  #length = 0;
  /** The text went over a limit: it is being skipped (its reason already reported). */
  #skipping = false;

  /** @param limits what one text may be (default {@linkcode DEFAULT_JSON_LIMITS}) */
  constructor(limits: JsonStreamLimits = DEFAULT_JSON_LIMITS) {
    this.#limits = limits;
  }

  /** Bytes held for the text in progress. */
  get buffered(): number {
    return this.#length;
  }

  /** Takes the next bytes of the stream; returns the pieces they completed, in order. */
  push(bytes: Uint8Array): JsonPiece[] {
    const pieces: JsonPiece[] = [];
    // Where the current text's bytes begin in `bytes` (-1: no text is open).
    let start = this.#state === State.IDLE ? -1 : 0;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      switch (this.#state) {
        case State.IDLE:
          if (isSpace(byte)) continue;
          start = i;
          if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
            this.#state = State.NESTED;
            this.#depth = 1;
          } else if (byte === QUOTE) {
            this.#state = State.STRAY_STRING;
          } else {
            this.#state = State.STRAY;
          }
          break;
        case State.NESTED:
          if (byte === QUOTE) this.#state = State.STRING;
          else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
            if (++this.#depth > this.#limits.maxDepth && !this.#skipping) {
              this.#skip();
              pieces.push({
                kind: "error",
                reason: `JSON nested deeper than ${this.#limits.maxDepth} levels`,
              });
            }
          } else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && --this.#depth === 0) {
            start = this.#end(bytes, start, i + 1, pieces);
          }
          break;
        case State.STRING:
          if (byte === BACKSLASH) this.#state = State.ESCAPE;
          else if (byte === QUOTE) this.#state = State.NESTED;
          break;
        case State.ESCAPE:
          this.#state = State.STRING;
          break;
        case State.STRAY:
          if (isSpace(byte) || byte === OPEN_BRACE || byte === OPEN_BRACKET) {
            start = this.#end(bytes, start, i, pieces);
            i--; // the byte begins what comes next
          }
          break;
        case State.STRAY_STRING:
          if (byte === BACKSLASH) this.#state = State.STRAY_ESCAPE;
          else if (byte === QUOTE) this.#state = State.STRAY;
          break;
        case State.STRAY_ESCAPE:
          this.#state = State.STRAY_STRING;
          break;
      }
    }
    if (start >= 0) this.#keep(bytes.subarray(start), pieces);
    return pieces;
  }

  /**
   * The text in progress ends at `bytes[end]` (exclusive): reports it (or
   * nothing, if it was skipped) and starts afresh. Returns -1 (no text has
   * begun in `bytes`).
   */
  #end(bytes: Uint8Array, start: number, end: number, pieces: JsonPiece[]): number {
    this.#keep(bytes.subarray(start, end), pieces);
    const stray = this.#state >= State.STRAY;
    if (!this.#skipping) {
      const text = this.#decoder.decode(concat(this.#chunks, this.#length));
      pieces.push(stray ? { kind: "error", reason: strayReason(text) } : { kind: "text", text });
    }
    this.#state = State.IDLE;
    this.#depth = 0;
    this.#chunks = [];
    this.#length = 0;
    this.#skipping = false;
    return -1;
  }

  /** Drops what is held of the text in progress and skips the rest of it. */
  #skip(): void {
    this.#skipping = true;
    this.#chunks = [];
    this.#length = 0;
  }

  /** Holds `part` of the text in progress, unless that takes it over the size limit. */
  #keep(part: Uint8Array, pieces: JsonPiece[]): void {
    if (this.#skipping || part.length === 0) return;
    if (this.#length + part.length > this.#limits.maxBytes) {
      this.#skip();
      pieces.push({
        kind: "error",
        reason: `JSON text longer than ${this.#limits.maxBytes} bytes`,
      });
      return;
    }
    // A copy: the caller's buffer is reused.
    this.#chunks.push(part.slice());
    this.#length += part.length;
  }
}

/** Why a top-level token that is not an object is refused, in QEMU's words where it has them. */
function strayReason(text: string): string {
  try {
    JSON.parse(text);
    return "QMP input must be a JSON object";
  } catch {
    const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
    return `JSON parse error, invalid token ${JSON.stringify(shown)}`;
  }
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const all = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}
