/**
 * Builds the npm package for Node users from the same sources Deno runs
 * (dnt's job, done with the pinned TypeScript compiler from the npm
 * registry, since dnt lives on JSR):
 *
 *     deno task build:npm
 *
 * writes `npm/dist/`: ESM JavaScript and `.d.ts` declarations for the
 * entry points (`mod.ts`, the browser-safe core, and the sub-path exports
 * `./cli`, `./file`, `./vhost-user`) and everything under `src/`, a `package.json` (name, version
 * and license from deno.json), the CLI's bin, and the README for Node users
 * (`docs/node.md`). `npm pack npm/dist` makes the tarball.
 *
 * Type errors are `deno check`'s business; this build only translates:
 * - `./x.ts` imports become `./x.js` (`rewriteRelativeImportExtensions`),
 *   in declarations too;
 * - `new URL("./x.ts", import.meta.url)` (a Worker's entry, a child
 *   script) becomes `./x.js`, so code that names a sibling module by URL
 *   works unchanged on both runtimes.
 *
 * The Node test run (`tests/node/run.ts`) compiles the test tree into the
 * same directory with {@linkcode compile}, so the tests import the very
 * files the package ships; `files` in package.json keeps them out of it.
 *
 * @module
 */

// The build's one tool, a development dependency pinned in package.json: the
// library itself depends on nothing.
import ts from "typescript";
import { PROGRAM } from "../src/cli/program.ts";

/** The pinned compiler, for the checks that type-check against the package. */
export { ts };

/** The checkout's root directory (with a trailing slash). */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** Where the package is built: the directory `npm pack` packs. */
export const PACKAGE_DIR: string = `${ROOT}npm/dist/`;

/** The TypeScript release that builds the package (pinned in the import above). */
export const TYPESCRIPT_VERSION: string = ts.version;

/** The oldest Node release the package supports. */
export const NODE_ENGINE = ">=20";

/** The package's entry points: sub-path export → source file at the checkout's root. */
export const ENTRY_POINTS: Readonly<Record<string, string>> = {
  ".": "mod.ts",
  "./cli": "cli.ts",
  "./file": "file.ts",
  "./nbd": "nbd.ts",
  "./vhost-user": "vhost_user.ts",
  "./qmp": "qmp.ts",
};

/** Package-relative path of the CLI's bin file. */
export const BIN_PATH = `bin/${PROGRAM}.js`;

/** What a compilation emits. */
export interface CompileOptions {
  /** Entry files (absolute paths); everything they import is compiled too. */
  readonly entries: readonly string[];
  /** Emit `.d.ts` declarations next to the JavaScript. */
  readonly declarations: boolean;
  /** Which outputs to write, by absolute source path (default: all). */
  readonly emits?: (sourcePath: string) => boolean;
}

/**
 * Compiles `entries` and what they import into {@linkcode PACKAGE_DIR},
 * keeping the checkout's layout (`src/x.ts` → `src/x.js`). Returns the
 * paths written.
 *
 * @throws Error listing the compiler's diagnostics (syntax, options)
 */
export function compile(options: CompileOptions): string[] {
  const compilerOptions: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    rewriteRelativeImportExtensions: true,
    allowImportingTsExtensions: true,
    // Deno type-checks these sources (`deno check`, with Deno's and Node's
    // types); the compiler here only translates them.
    noCheck: true,
    isolatedModules: true,
    verbatimModuleSyntax: true,
    declaration: options.declarations,
    strict: true,
    skipLibCheck: true,
    types: [],
    lib: ["lib.es2023.d.ts", "lib.dom.d.ts"],
    rootDir: ROOT,
    outDir: PACKAGE_DIR,
    newLine: ts.NewLineKind.LineFeed,
  };
  const program = ts.createProgram({ rootNames: [...options.entries], options: compilerOptions });
  const written: string[] = [];
  const result = program.emit(
    undefined,
    (fileName, text, _bom, _onError, sources) => {
      const source = sources?.[0]?.fileName;
      if (source !== undefined && options.emits && !options.emits(source)) return;
      Deno.mkdirSync(fileName.slice(0, fileName.lastIndexOf("/")), { recursive: true });
      Deno.writeTextFileSync(fileName, text);
      written.push(fileName);
    },
    undefined,
    false,
    { before: [rewriteTsUrls], afterDeclarations: [rewriteDeclarationSpecifiers] },
  );
  const problems = [...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics()]
    .concat(result.diagnostics)
    .filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (problems.length > 0 || result.emitSkipped) {
    throw new Error(
      `TypeScript ${ts.version} could not build:\n` +
        ts.formatDiagnostics(problems, {
          getCanonicalFileName: (name) => name,
          getCurrentDirectory: () => ROOT,
          getNewLine: () => "\n",
        }),
    );
  }
  return written;
}

/** A relative module path ending in `.ts` (not `.d.ts`), as written in an import or URL. */
function isRelativeTs(specifier: string): boolean {
  return /^\.\.?\//.test(specifier) && specifier.endsWith(".ts") && !specifier.endsWith(".d.ts");
}

function toJs(specifier: string): string {
  return specifier.slice(0, -".ts".length) + ".js";
}

/** `new URL("./x.ts", import.meta.url)` → `new URL("./x.js", import.meta.url)`. */
function rewriteTsUrls(context: ts.TransformationContext): ts.Transformer<ts.SourceFile> {
  const { factory } = context;
  const visit = (node: ts.Node): ts.Node => {
    if (
      ts.isNewExpression(node) && ts.isIdentifier(node.expression) &&
      node.expression.text === "URL" && node.arguments?.length === 2 &&
      ts.isStringLiteralLike(node.arguments[0]) && isRelativeTs(node.arguments[0].text) &&
      isImportMetaUrl(node.arguments[1])
    ) {
      return factory.updateNewExpression(node, node.expression, node.typeArguments, [
        factory.createStringLiteral(toJs(node.arguments[0].text)),
        node.arguments[1],
      ]);
    }
    return ts.visitEachChild(node, visit, context);
  };
  return (file) => ts.visitNode(file, visit) as ts.SourceFile;
}

function isImportMetaUrl(node: ts.Expression): boolean {
  return ts.isPropertyAccessExpression(node) && node.name.text === "url" &&
    ts.isMetaProperty(node.expression) &&
    node.expression.keywordToken === ts.SyntaxKind.ImportKeyword;
}

/**
 * Declarations keep the sources' `./x.ts` specifiers; a consumer's compiler
 * resolves `./x.js` (next to `./x.d.ts`) without any special option.
 */
function rewriteDeclarationSpecifiers(
  context: ts.TransformationContext,
): ts.Transformer<ts.SourceFile | ts.Bundle> {
  const { factory } = context;
  const specifier = (node: ts.Expression | undefined) =>
    node !== undefined && ts.isStringLiteral(node) && isRelativeTs(node.text)
      ? factory.createStringLiteral(toJs(node.text))
      : node;
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isImportDeclaration(node)) {
      return factory.updateImportDeclaration(
        node,
        node.modifiers,
        node.importClause,
        specifier(node.moduleSpecifier)!,
        node.attributes,
      );
    }
    if (ts.isExportDeclaration(node)) {
      return factory.updateExportDeclaration(
        node,
        node.modifiers,
        node.isTypeOnly,
        node.exportClause,
        specifier(node.moduleSpecifier),
        node.attributes,
      );
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const literal = specifier(node.argument.literal as ts.Expression) as ts.StringLiteral;
      return factory.updateImportTypeNode(
        node,
        factory.updateLiteralTypeNode(node.argument, literal),
        node.attributes,
        node.qualifier,
        node.typeArguments?.map((argument) => ts.visitNode(argument, visit) as ts.TypeNode),
        node.isTypeOf,
      );
    }
    return ts.visitEachChild(node, visit, context);
  };
  return (node) => ts.visitNode(node, visit) as ts.SourceFile | ts.Bundle;
}

/** The `.ts` files under `dir` (absolute paths, sorted), without declarations. */
export function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...sourceFiles(path));
    else if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) {
      files.push(path);
    }
  }
  return files.sort();
}

/** The fields of deno.json the package takes over. */
interface DenoConfig {
  readonly name: string;
  readonly version: string;
  readonly license: string;
}

/** The package's `package.json`. */
export function packageJson(config: DenoConfig): Record<string, unknown> {
  return {
    name: config.name,
    version: config.version,
    description: "A virtio-blk device back end (legacy virtio-PCI, ACRN-style device model " +
      "and CLI) for Node and Deno: one code base, the device's queues in shared memory, " +
      "block I/O on worker threads.",
    license: config.license,
    type: "module",
    main: "./mod.js",
    types: "./mod.d.ts",
    exports: {
      ...Object.fromEntries(
        Object.entries(ENTRY_POINTS).map(([name, source]) => {
          const base = `./${source.replace(/\.ts$/, "")}`;
          return [name, { types: `${base}.d.ts`, import: `${base}.js` }];
        }),
      ),
      "./package.json": "./package.json",
    },
    bin: { [PROGRAM]: `./${BIN_PATH}` },
    files: [
      ...Object.values(ENTRY_POINTS).flatMap((source) => {
        const base = source.replace(/\.ts$/, "");
        return [`${base}.js`, `${base}.d.ts`];
      }),
      "src/",
      "bin/",
      "README.md",
      "LICENSE",
    ],
    engines: { node: NODE_ENGINE },
    keywords: ["virtio", "virtio-blk", "block-device", "acrn", "device-model", "vhost-user"],
  };
}

/** The bin: runs the same command line `deno run cli.ts` runs. */
const BIN_SOURCE = `#!/usr/bin/env node
// The ${PROGRAM} command (generated by scripts/build_npm.ts).
import { runCli } from "../src/cli/run.js";

await runCli();
`;

/**
 * Builds the package into {@linkcode PACKAGE_DIR} (removing what was there)
 * and returns its package.json.
 */
export function buildPackage(): Record<string, unknown> {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as DenoConfig;
  try {
    Deno.removeSync(PACKAGE_DIR, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return writePackage(config);
}

function writePackage(config: DenoConfig): Record<string, unknown> {
  // Every module under src/, not only what the entry points import: Worker
  // entries (blockif/worker.ts, guest/uos_worker.ts) and plug-in modules are
  // reached by URL, not import.
  compile({
    entries: [
      ...Object.values(ENTRY_POINTS).map((source) => `${ROOT}${source}`),
      ...sourceFiles(`${ROOT}src`),
    ],
    declarations: true,
  });
  const manifest = packageJson(config);
  Deno.writeTextFileSync(`${PACKAGE_DIR}package.json`, JSON.stringify(manifest, null, 2) + "\n");
  Deno.writeTextFileSync(`${PACKAGE_DIR}README.md`, Deno.readTextFileSync(`${ROOT}docs/node.md`));
  Deno.copyFileSync(`${ROOT}LICENSE`, `${PACKAGE_DIR}LICENSE`);
  Deno.mkdirSync(`${PACKAGE_DIR}bin`, { recursive: true });
  Deno.writeTextFileSync(`${PACKAGE_DIR}${BIN_PATH}`, BIN_SOURCE, { mode: 0o755 });
  return manifest;
}

if (import.meta.main) {
  const manifest = buildPackage();
  console.log(
    `built ${manifest.name}@${manifest.version} in ${PACKAGE_DIR} with TypeScript ${ts.version}`,
  );
}
