/**
 * Which runtime this code runs on. Deno is detected by its user agent as
 * well as its namespace, because a Deno shim on Node (`@deno/shim-deno`)
 * installs a `Deno` global whose `FsFile` cannot seek or sync.
 *
 * @module
 */

/** Whether this code runs on Deno (the main thread or a Worker). */
export function isDeno(): boolean {
  return typeof navigator !== "undefined" &&
    typeof navigator.userAgent === "string" &&
    navigator.userAgent.startsWith("Deno/") &&
    typeof (globalThis as { Deno?: { FsFile?: unknown } }).Deno?.FsFile === "function";
}
