/**
 * Numbers people type and read: fio-style sizes and durations in options
 * (`4k`, `64M`, `10s`), lsblk-style sizes (`1G`, `512M`, `1.5G`), fio-style
 * rates (`IOPS=45.2k`, `BW=176MiB/s`), and text from a disk made safe to print.
 *
 * @module
 */

const BINARY_EXPONENT: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/**
 * Parses a byte count the way fio does with its default `kb_base=1024`: a
 * number with an optional k/m/g/t/p suffix, optionally followed by `i`
 * and/or `b` (`4k`, `4K`, `4KiB`, `4kb`, `64M`, `4096`, `512b`). Returns
 * undefined when the text is not such a size or is not a whole number of bytes.
 */
export function parseSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b?)\s*$/i.exec(text);
  if (match === null) return undefined;
  const value = Number(match[1]) * 1024 ** BINARY_EXPONENT[match[2].toLowerCase()];
  return Number.isSafeInteger(value) ? value : undefined;
}

const DURATION_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  "": 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration as fio's `runtime` does: seconds by default, or with a
 * unit `us`, `ms`, `s`, `m`, `h`, `d` (`10`, `10s`, `500ms`, `2m`). Returns
 * milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|)\s*$/i.exec(text);
  if (match === null) return undefined;
  const ms = Number(match[1]) * DURATION_MS[match[2].toLowerCase()];
  return Number.isFinite(ms) ? ms : undefined;
}

const SIZE_LETTERS = "BKMGTPE";

/**
 * A byte count the way lsblk prints sizes: powers of 1024 with a one-letter
 * suffix and at most one decimal, rounded half up, without a trailing `.0`
 * (`0B`, `1000B`, `4K`, `512M`, `1G`, `1.5G`).
 */
export function humanSize(bytes: number): string {
  let exponent = 0;
  while (exponent < SIZE_LETTERS.length - 1 && bytes >= 1024 ** (exponent + 1)) exponent++;
  const unit = 1024 ** exponent;
  let whole = Math.floor(bytes / unit);
  let tenth = Math.round(((bytes - whole * unit) / unit) * 10);
  if (tenth === 10) {
    whole++;
    tenth = 0;
  }
  return `${whole}${tenth === 0 ? "" : "." + tenth}${SIZE_LETTERS[exponent]}`;
}

/**
 * A count the way fio prints IOPS: plain below 10 000, else with a k/M/G
 * suffix and one decimal below 100 (`950`, `9999`, `12.3k`, `123k`, `1.2M`).
 */
export function formatCount(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value < 10_000) return String(Math.round(value));
  const suffixes = ["k", "M", "G", "T"];
  let scaled = value / 1000;
  let i = 0;
  while (scaled >= 10_000 && i < suffixes.length - 1) {
    scaled /= 1000;
    i++;
  }
  const oneDecimal = scaled.toFixed(1);
  return (Number(oneDecimal) < 100 ? oneDecimal : String(Math.round(scaled))) + suffixes[i];
}

/**
 * A byte quantity with binary units and three significant digits, whole
 * numbers without decimals (`4KiB`, `176MiB`, `1.50GiB`, `12.3MiB`).
 */
export function formatBinary(bytes: number): string {
  return scaled(bytes, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]);
}

/** {@linkcode formatBinary} with decimal units (`185MB`, `1.61GB`), as fio prints in parentheses. */
export function formatDecimal(bytes: number): string {
  return scaled(bytes, 1000, ["B", "kB", "MB", "GB", "TB", "PB"]);
}

function scaled(value: number, base: number, units: readonly string[]): string {
  if (!Number.isFinite(value)) return String(value);
  let i = 0;
  let v = value;
  while (v >= base && i < units.length - 1) {
    v /= base;
    i++;
  }
  // Three significant digits, judged after rounding (9.999 is "10.0", not "10.00").
  let text = v.toFixed(i === 0 || Number.isInteger(v) ? 0 : 2);
  if (Number(text) >= 10 && text.includes(".")) text = v.toFixed(1);
  if (Number(text) >= 100 && text.includes(".")) text = v.toFixed(0);
  return text + units[i];
}

/**
 * Text read from a disk (labels, partition names) made safe for a terminal:
 * control characters (ESC included), line separators and bidirectional
 * overrides become `\x..` / `\u....` escapes.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
    },
  );
}
