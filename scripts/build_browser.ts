/**
 * Builds the browser build of the library and the web page:
 *
 *     deno task build:browser        (npm run build:browser)
 *
 * writes `web/dist/`: `virtio-blk.js`, one ES module bundled by esbuild
 * (from the npm registry, pinned in package.json) from `browser.ts`; a
 * worker entry point next to it for each kind of thread (`worker.js`,
 * `uos_worker.js`, …: each imports the bundle and runs its part, see
 * `THREAD_ENTRIES`), so every thread shares the bundle's one copy of each
 * module; and `app.js`, the page's script (`web/app.ts`), which loads the
 * bundle by URL. Source maps sit next to them.
 *
 * Two things make a bundle of these sources work:
 * - every module's `import.meta.url` gets a fragment naming its source
 *   (`virtio-blk.js#src/backend/memory_backend.ts`): plug-ins register
 *   under it (`src/runtime/plugins.ts`), and in one file they would all
 *   share one URL; a thread imports the file without the fragment;
 * - nothing in it reaches Node or Deno: esbuild builds for the browser
 *   platform (a `node:` import does not resolve), and the bundle is checked
 *   for the `Deno` global ({@linkcode runtimeGlobalsIn}).
 *
 * @module
 */

import * as esbuild from "esbuild";
import { relative } from "node:path";
import { THREAD_ENTRIES } from "../browser.ts";

/** The checkout's root directory (with a trailing slash). */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** Where the build goes (served as `/dist/` by `scripts/serve.ts`). */
export const BROWSER_DIR: string = `${ROOT}web/dist/`;

/** The bundle's file name. */
export const BUNDLE = "virtio-blk.js";

/**
 * The worker entry points, by file name without `.js`: the thread modules
 * the sources start by URL, next to the module that starts them
 * (`siblingModule`), which in the bundle is the bundle's own directory.
 * `browser.ts` exports what each runs under the same name.
 */
export const THREAD_ENTRY_NAMES: readonly string[] = Object.keys(THREAD_ENTRIES);

/**
 * Uses of the runtimes a browser lacks in bundled JavaScript: `Deno.`
 * globals and `node:` imports (static, dynamic or `require`).
 */
export function runtimeGlobalsIn(code: string): string[] {
  const found = new Set<string>();
  for (const match of code.matchAll(/(?<![\w.$])Deno\.\w+/g)) found.add(match[0]);
  for (
    const match of code.matchAll(/(?:from\s*|import\s*\(\s*|require\s*\(\s*)["'](node:[\w/]+)["']/g)
  ) {
    found.add(match[1]);
  }
  return [...found].sort();
}

/** esbuild plug-in: each module's `import.meta.url` names its source (see the module doc). */
const moduleNames: esbuild.Plugin = {
  name: "module-names",
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await Deno.readTextFile(args.path);
      const name = relative(ROOT, args.path);
      return {
        contents: source.replaceAll(
          "import.meta.url",
          `(import.meta.url + ${JSON.stringify(`#${name}`)})`,
        ),
        loader: "ts",
      };
    });
  },
};

/** What a build wrote. */
export interface BrowserBuild {
  /** Files written, relative to the output directory. */
  readonly files: readonly string[];
  /** Bytes of the bundle. */
  readonly bundleBytes: number;
  /** The modules bundled into it (esbuild's metafile: paths relative to the checkout). */
  readonly bundleInputs: readonly string[];
  /** What the bundle still imports at run time (esbuild's metafile; none should be `node:`). */
  readonly bundleImports: readonly string[];
}

/**
 * Builds into `outdir` (default {@linkcode BROWSER_DIR}), replacing what
 * was there.
 *
 * @throws Error with esbuild's messages when a module does not build (a
 *   `node:` import among them), or naming a runtime global the bundle uses
 */
export async function buildBrowser(outdir: string = BROWSER_DIR): Promise<BrowserBuild> {
  await Deno.remove(outdir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  try {
    const result = await esbuild.build({
      entryPoints: { [BUNDLE.replace(/\.js$/, "")]: `${ROOT}browser.ts`, app: `${ROOT}web/app.ts` },
      outdir,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      sourcemap: "linked",
      metafile: true,
      logLevel: "silent",
      plugins: [moduleNames],
    });
    const bundle = await Deno.readTextFile(`${outdir}${BUNDLE}`);
    const unsafe = runtimeGlobalsIn(bundle);
    if (unsafe.length > 0) {
      throw new Error(`the browser bundle uses what browsers lack: ${unsafe.join(", ")}`);
    }
    const files = Object.keys(result.metafile.outputs).map((file) => relative(outdir, file));
    const output = Object.entries(result.metafile.outputs).find(([file]) =>
      file.endsWith(`/${BUNDLE}`)
    )![1];
    for (const name of THREAD_ENTRY_NAMES) {
      await Deno.writeTextFile(
        `${outdir}${name}.js`,
        `// A worker entry point of the browser build (scripts/build_browser.ts).\n` +
          `import { THREAD_ENTRIES } from "./${BUNDLE}";\n\n` +
          `await THREAD_ENTRIES[${JSON.stringify(name)}]();\n`,
      );
      files.push(`${name}.js`);
    }
    return {
      files: files.sort(),
      bundleBytes: bundle.length,
      bundleInputs: Object.keys(output.inputs).map((file) => relative(ROOT, file)).sort(),
      bundleImports: output.imports.map((imported) => imported.path),
    };
  } finally {
    await esbuild.stop();
  }
}

if (import.meta.main) {
  const build = await buildBrowser();
  console.log(
    `built ${relative(ROOT, BROWSER_DIR)}: ${build.files.join(", ")} ` +
      `(${BUNDLE}: ${(build.bundleBytes / 1024).toFixed(0)} KiB)`,
  );
}
