/**
 * The program's version, written in one place: `version` in deno.json. A
 * checkout has deno.json next to `src/`; the npm package has none, and its
 * package.json carries the same version (`scripts/build_npm.ts` copies it).
 *
 * @module
 */

import { readFileSync } from "node:fs";

/** The files next to `src/` that may carry the version, in the order they are tried. */
const MANIFESTS = ["deno.json", "package.json"];

/**
 * The version of this copy of the program (`0.1.0`), or `unknown` when no
 * manifest with a version can be read (sources loaded from a URL, or no
 * read permission).
 */
export function programVersion(): string {
  for (const name of MANIFESTS) {
    let manifest: unknown;
    try {
      manifest = JSON.parse(readFileSync(new URL(`../../${name}`, import.meta.url), "utf8"));
    } catch {
      continue;
    }
    const version = (manifest as { version?: unknown } | null)?.version;
    if (typeof version === "string") return version;
  }
  return "unknown";
}
