/**
 * The library's core (`mod.ts`) loads in a web page: no module it reaches
 * through static or literal dynamic imports uses Node (`node:` imports) or
 * Deno (the `Deno` global). What does (files, vhost-user, the CLI, io_uring)
 * is behind its own sub-path export, and reaches threads only when a
 * handle names its module (`src/runtime/plugins.ts`). The sub-path exports
 * deno.json declares each resolve to a file that exists.
 */

import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Relative modules a source imports: static imports and exports, and literal dynamic imports. */
function importsOf(source: string): string[] {
  const specifiers: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of source.matchAll(pattern)) specifiers.push(match[1]);
  }
  return specifiers;
}

/** The source without comments and string contents that could mention `Deno.` in prose. */
function code(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
}

/** Every module `entry` reaches, with what makes it not browser-safe. */
function reach(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    const source = Deno.readTextFileSync(file);
    const problems: string[] = [];
    for (const specifier of importsOf(source)) {
      if (specifier.startsWith("node:")) problems.push(`imports ${specifier}`);
      else if (specifier.startsWith(".")) queue.push(join(dirname(file), specifier));
      else problems.push(`imports the package ${specifier}`);
    }
    if (/(?<![\w.])Deno\./.test(code(source))) problems.push("uses the Deno global");
    seen.set(file, problems);
  }
  return seen;
}

Deno.test("browser-safe core: nothing mod.ts reaches imports node: modules or uses Deno", () => {
  const graph = reach(join(ROOT, "mod.ts"));
  const unsafe = [...graph].filter(([, problems]) => problems.length > 0)
    .map(([file, problems]) => `${relative(ROOT, file)}: ${problems.join(", ")}`);
  assert.deepEqual(unsafe, []);
  // The check itself finds what it looks for.
  const cli = [...reach(join(ROOT, "cli.ts"))].filter(([, problems]) => problems.length > 0);
  assert.ok(cli.length > 0, "the CLI uses node: modules, and the check sees it");
});

Deno.test("sub-path exports: each entry of deno.json exists, and mod.ts is the default", () => {
  const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  assert.equal(config.exports["."], "./mod.ts");
  for (const [name, path] of Object.entries(config.exports as Record<string, string>)) {
    assert.ok(Deno.statSync(join(ROOT, path)).isFile, `${name} → ${path}`);
  }
});
