/** JSON's type of a parsed value, with arrays and null told apart from objects. */
export function jsonType(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}
