/**
 * The answer of a probe that found nothing it knows: a value, never an
 * exception, with the reason for diagnostics ("bad magic", "header CRC
 * mismatch").
 *
 * @module
 */

/** A probe found no signature of its kind. */
export interface Unrecognised {
  readonly kind: "unrecognised";
  /** Why: which check failed. */
  readonly reason: string;
}

/** Builds an {@linkcode Unrecognised} answer. */
export function unrecognised(reason: string): Unrecognised {
  return { kind: "unrecognised", reason };
}

/** Whether `value` is an {@linkcode Unrecognised} answer. */
export function isUnrecognised(value: { readonly kind: string }): value is Unrecognised {
  return value.kind === "unrecognised";
}
