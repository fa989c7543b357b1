/**
 * The part of the `Deno` namespace the test suites use, on Node 20, so the
 * same test files run against the npm package (`tests/node/run.ts` compiles
 * them and starts `node --import deno_shim.js --test …`). `Deno.test` maps
 * onto `node:test` (steps become subtests, `ignore` a skip, and the tests
 * `node_skips.ts` names are skipped with their reason); the file-system
 * calls map onto `node:fs` with Deno's error classes; `Deno.Command` onto
 * `node:child_process`, where `deno run [flags] script args` becomes
 * `node --import <this shim> script args`.
 *
 * Only tests use this: the package itself never touches `Deno` on Node. It
 * deliberately has no `FsFile` and no FFI, so `isDeno()` stays false and the
 * Deno-only code paths report UNSUPPORTED as they do for any Node user.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync, type StdioOptions } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Readable, Writable } from "node:stream";
import { test as nodeTest, type TestContext as NodeTestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { nodeSkipReason } from "./node_skips.ts";
import { skipWhen } from "../helpers/skip.ts";

// ---------------------------------------------------------------------------
// Errors: Deno's classes, thrown where Deno throws them.

class NotFound extends Error {
  override name = "NotFound";
}
class AlreadyExists extends Error {
  override name = "AlreadyExists";
}
class PermissionDenied extends Error {
  override name = "PermissionDenied";
}
class IsADirectory extends Error {
  override name = "IsADirectory";
}
class NotADirectory extends Error {
  override name = "NotADirectory";
}

const ERRNO_CLASSES: Record<string, new (message: string, options?: ErrorOptions) => Error> = {
  ENOENT: NotFound,
  EEXIST: AlreadyExists,
  EACCES: PermissionDenied,
  EPERM: PermissionDenied,
  EISDIR: IsADirectory,
  ENOTDIR: NotADirectory,
};

/** Runs `call`, turning a Node errno error into the Deno error class Deno would throw. */
function denoErrors<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw translated(error);
  }
}

/** A synchronous call as Deno's asynchronous twin: its result, or its error, later. */
function later<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(denoErrors(call));
  } catch (error) {
    return Promise.reject(error);
  }
}

async function denoErrorsAsync<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw translated(error);
  }
}

function translated(error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  const Class = typeof code === "string" ? ERRNO_CLASSES[code] : undefined;
  return Class ? new Class((error as Error).message, { cause: error }) : error;
}

// ---------------------------------------------------------------------------
// Files.

type PathLike = string | URL;

const path = (p: PathLike) => (p instanceof URL ? fileURLToPath(p) : p);

interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  size: number;
  mtime: Date;
  atime: Date;
  birthtime: Date;
  mode: number;
  dev: number;
  ino: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  blocks: number;
  isBlockDevice: boolean;
  isCharDevice: boolean;
  isFifo: boolean;
  isSocket: boolean;
}

function fileInfo(stats: fs.Stats): FileInfo {
  return {
    isFile: stats.isFile(),
    isDirectory: stats.isDirectory(),
    isSymlink: stats.isSymbolicLink(),
    size: stats.size,
    mtime: stats.mtime,
    atime: stats.atime,
    birthtime: stats.birthtime,
    mode: stats.mode,
    dev: stats.dev,
    ino: stats.ino,
    nlink: stats.nlink,
    uid: stats.uid,
    gid: stats.gid,
    rdev: stats.rdev,
    blksize: stats.blksize,
    blocks: stats.blocks,
    isBlockDevice: stats.isBlockDevice(),
    isCharDevice: stats.isCharacterDevice(),
    isFifo: stats.isFIFO(),
    isSocket: stats.isSocket(),
  };
}

interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

function dirEntries(dir: PathLike): DirEntry[] {
  return fs.readdirSync(path(dir), { withFileTypes: true }).map((entry) => ({
    name: entry.name,
    isFile: entry.isFile(),
    isDirectory: entry.isDirectory(),
    isSymlink: entry.isSymbolicLink(),
  }));
}

function removeSync(target: PathLike, options: { recursive?: boolean } = {}): void {
  const p = path(target);
  if (fs.lstatSync(p).isDirectory()) {
    if (options.recursive) fs.rmSync(p, { recursive: true });
    else fs.rmdirSync(p);
  } else {
    fs.unlinkSync(p);
  }
}

function makeTempDirSync(options: { prefix?: string; suffix?: string; dir?: string } = {}) {
  const made = fs.mkdtempSync(join(options.dir ?? tmpdir(), options.prefix ?? ""));
  if (!options.suffix) return made;
  fs.renameSync(made, made + options.suffix);
  return made + options.suffix;
}

interface OpenOptions {
  read?: boolean;
  write?: boolean;
  append?: boolean;
  truncate?: boolean;
  create?: boolean;
  createNew?: boolean;
  mode?: number;
}

function openFlags(options: OpenOptions): number {
  const c = fs.constants;
  const write = options.write || options.append;
  let flags = options.read && write ? c.O_RDWR : write ? c.O_WRONLY : c.O_RDONLY;
  if (options.append) flags |= c.O_APPEND;
  if (options.truncate) flags |= c.O_TRUNC;
  if (options.create) flags |= c.O_CREAT;
  if (options.createNew) flags |= c.O_CREAT | c.O_EXCL;
  return flags;
}

/**
 * The descriptor-level file the tests use: sequential reads and writes,
 * truncate, sync, close (no seek: Deno.FsFile is Deno-only on purpose).
 */
class ShimFile {
  #fd: number | undefined;

  constructor(fd: number) {
    this.#fd = fd;
  }

  get #open(): number {
    if (this.#fd === undefined) throw new Error("the file is closed (Deno.errors.BadResource)");
    return this.#fd;
  }

  readSync(buffer: Uint8Array): number | null {
    const n = fs.readSync(this.#open, buffer, 0, buffer.length, null);
    return n === 0 && buffer.length > 0 ? null : n;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return Promise.resolve(this.readSync(buffer));
  }

  writeSync(bytes: Uint8Array): number {
    return fs.writeSync(this.#open, bytes);
  }

  write(bytes: Uint8Array): Promise<number> {
    return Promise.resolve(this.writeSync(bytes));
  }

  truncateSync(length = 0): void {
    fs.ftruncateSync(this.#open, length);
  }

  truncate(length = 0): Promise<void> {
    return Promise.resolve(this.truncateSync(length));
  }

  syncSync(): void {
    fs.fsyncSync(this.#open);
  }

  sync(): Promise<void> {
    return Promise.resolve(this.syncSync());
  }

  statSync(): FileInfo {
    return fileInfo(fs.fstatSync(this.#open));
  }

  close(): void {
    fs.closeSync(this.#open);
    this.#fd = undefined;
  }

  [Symbol.dispose](): void {
    if (this.#fd !== undefined) this.close();
  }
}

function openSync(p: PathLike, options: OpenOptions = { read: true }): ShimFile {
  return new ShimFile(denoErrors(() => fs.openSync(path(p), openFlags(options), options.mode)));
}

// ---------------------------------------------------------------------------
// Unix-domain listeners: Deno.listen binds synchronously; node:net cannot,
// so a short-lived Node process binds the socket (its file outlives it).

function listenUnix(options: { transport: string; path?: string }): { close(): void } {
  if (options.transport !== "unix" || options.path === undefined) {
    throw new Error(`Deno.listen: only { transport: "unix", path } is shimmed on Node`);
  }
  const socketPath = options.path;
  const bound = spawnSync(process.execPath, [
    "-e",
    `require("node:net").createServer().listen(${JSON.stringify(socketPath)}, () => ` +
    `process.exit(0))`,
  ]);
  if (bound.status !== 0 || !fs.statSync(socketPath).isSocket()) {
    throw new Error(`Deno.listen: could not bind ${socketPath}: ${bound.stderr}`);
  }
  return { close: () => fs.rmSync(socketPath, { force: true }) };
}

// ---------------------------------------------------------------------------
// Subprocesses.

type Stdio = "piped" | "inherit" | "null";

interface CommandOptions {
  args?: string[];
  cwd?: string | URL;
  env?: Record<string, string>;
  clearEnv?: boolean;
  stdin?: Stdio;
  stdout?: Stdio;
  stderr?: Stdio;
}

interface CommandStatus {
  success: boolean;
  code: number;
  signal: NodeJS.Signals | null;
}

interface CommandOutput extends CommandStatus {
  stdout: Uint8Array;
  stderr: Uint8Array;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function status(code: number | null, signal: NodeJS.Signals | null): CommandStatus {
  const exit = code ?? 128 + (signal ? SIGNAL_NUMBERS[signal] ?? 0 : 0);
  return { success: exit === 0 && signal === null, code: exit, signal };
}

const nodeStdio = (value: Stdio | undefined, fallback: Stdio) => {
  const chosen = value ?? fallback;
  return chosen === "piped" ? "pipe" : chosen === "null" ? "ignore" : "inherit";
};

const SHIM_URL = import.meta.url;

/**
 * What to run for `command args`: `deno run [flags] script args…` becomes
 * `node --import <shim> script args…` (the script is the compiled `.js`
 * one); other `deno` subcommands have no Node equivalent.
 */
function translate(command: string, args: readonly string[]): [string, string[]] {
  if (command !== process.execPath) return [command, [...args]];
  if (args[0] !== "run") {
    throw new Error(`deno ${args[0]} cannot run on Node (the Node test shim maps only deno run)`);
  }
  let at = 1;
  while (at < args.length && args[at].startsWith("-")) at++;
  const script = args[at];
  if (script === undefined) throw new Error("deno run without a script");
  const js = script.endsWith(".ts") ? script.slice(0, -".ts".length) + ".js" : script;
  return [process.execPath, ["--import", SHIM_URL, js, ...args.slice(at + 1)]];
}

class ShimChildProcess {
  readonly pid: number | undefined;
  readonly status: Promise<CommandStatus>;
  readonly #child: ChildProcess;
  readonly #stdout: ReadableStream<Uint8Array> | null;
  readonly #stderr: ReadableStream<Uint8Array> | null;
  readonly #stdin: WritableStream<Uint8Array> | null;

  constructor(child: ChildProcess) {
    this.#child = child;
    this.pid = child.pid;
    this.#stdout = child.stdout ? Readable.toWeb(child.stdout) as ReadableStream<Uint8Array> : null;
    this.#stderr = child.stderr ? Readable.toWeb(child.stderr) as ReadableStream<Uint8Array> : null;
    this.#stdin = child.stdin ? Writable.toWeb(child.stdin) as WritableStream<Uint8Array> : null;
    this.status = new Promise((resolve, reject) => {
      child.once("error", (error) => reject(translated(error)));
      child.once("close", (code, signal) => resolve(status(code, signal)));
    });
  }

  get stdout(): ReadableStream<Uint8Array> {
    if (!this.#stdout) throw new TypeError("stdout is not piped");
    return this.#stdout;
  }

  get stderr(): ReadableStream<Uint8Array> {
    if (!this.#stderr) throw new TypeError("stderr is not piped");
    return this.#stderr;
  }

  get stdin(): WritableStream<Uint8Array> {
    if (!this.#stdin) throw new TypeError("stdin is not piped");
    return this.#stdin;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    this.#child.kill(signal);
  }

  async output(): Promise<CommandOutput> {
    const collect = (stream: ReadableStream<Uint8Array> | null) =>
      stream
        ? new Response(stream).arrayBuffer().then((b) => new Uint8Array(b))
        : Promise.resolve(new Uint8Array());
    const [stdout, stderr] = await Promise.all([collect(this.#stdout), collect(this.#stderr)]);
    return { ...(await this.status), stdout, stderr };
  }

  ref(): void {
    this.#child.ref();
  }

  unref(): void {
    this.#child.unref();
  }
}

class Command {
  readonly #command: string;
  readonly #args: string[];
  readonly #options: CommandOptions;

  constructor(command: string | URL, options: CommandOptions = {}) {
    [this.#command, this.#args] = translate(path(command), options.args ?? []);
    this.#options = options;
  }

  /** Node's spawn options, with Deno's defaults: everything inherited for spawn(), output piped otherwise. */
  #spawnOptions(forOutput: boolean) {
    const o = this.#options;
    const stdio = [
      nodeStdio(o.stdin, forOutput ? "null" : "inherit"),
      nodeStdio(o.stdout, forOutput ? "piped" : "inherit"),
      nodeStdio(o.stderr, forOutput ? "piped" : "inherit"),
    ] as StdioOptions;
    return {
      cwd: o.cwd === undefined ? undefined : path(o.cwd),
      env: o.clearEnv ? { ...o.env } : { ...process.env, ...o.env },
      stdio,
    };
  }

  spawn(): ShimChildProcess {
    return new ShimChildProcess(spawn(this.#command, this.#args, this.#spawnOptions(false)));
  }

  output(): Promise<CommandOutput> {
    return new ShimChildProcess(spawn(this.#command, this.#args, this.#spawnOptions(true)))
      .output();
  }

  outputSync(): CommandOutput {
    const result = spawnSync(this.#command, this.#args, {
      ...this.#spawnOptions(true),
      maxBuffer: 1 << 30,
    });
    if (result.error) throw translated(result.error);
    return {
      ...status(result.status, result.signal),
      stdout: new Uint8Array(result.stdout ?? []),
      stderr: new Uint8Array(result.stderr ?? []),
    };
  }
}

// ---------------------------------------------------------------------------
// Deno.test on node:test.

interface StepDefinition {
  name: string;
  fn: (t: DenoTestContext) => void | Promise<void>;
  ignore?: boolean;
  only?: boolean;
}

interface DenoTestContext {
  name: string;
  origin: string;
  parent?: DenoTestContext;
  step(
    nameOrDefinition: string | StepDefinition | StepDefinition["fn"],
    fn?: StepDefinition["fn"],
  ): Promise<boolean>;
}

/** Deno.test's and t.step's overloads, as one definition. */
function definition(
  first: string | StepDefinition | StepDefinition["fn"],
  second?: Partial<StepDefinition> | StepDefinition["fn"],
  third?: StepDefinition["fn"],
): StepDefinition {
  if (typeof first === "function") return { name: first.name, fn: first };
  if (typeof first === "string") {
    if (typeof second === "function") return { name: first, fn: second };
    return { ...second, name: first, fn: third ?? second!.fn! };
  }
  return typeof second === "function" ? { ...first, fn: second } : first;
}

const origin = () => process.argv[1] ?? "";

function context(t: NodeTestContext, name: string, parent?: DenoTestContext): DenoTestContext {
  const self: DenoTestContext = {
    name,
    origin: origin(),
    parent,
    async step(first, fn) {
      const step = definition(first, fn);
      let passed = true;
      await t.test(step.name, { skip: step.ignore ?? false }, async (inner) => {
        try {
          await step.fn(context(inner, step.name, self));
        } catch (error) {
          passed = false;
          throw error;
        }
      });
      return passed;
    },
  };
  return self;
}

function denoTest(
  first: string | StepDefinition | StepDefinition["fn"],
  second?: Partial<StepDefinition> | StepDefinition["fn"],
  third?: StepDefinition["fn"],
): void {
  const test = definition(first, second, third);
  const nodeReason = test.ignore ? undefined : nodeSkipReason(origin(), test.name);
  // Named in the test command's summary, like every other skip.
  if (nodeReason !== undefined) {
    const file = origin().replace(/^.*\/(tests\/)/, "$1").replace(/\.js$/, ".ts");
    skipWhen(`${file} on Node`, nodeReason);
  }
  const skip = test.ignore ? true : nodeReason ?? false;
  nodeTest(test.name, { skip, only: test.only }, (t) => test.fn(context(t, test.name)));
}

// ---------------------------------------------------------------------------
// The namespace.

const encoder = new TextEncoder();

const shim = {
  test: Object.assign(denoTest, {
    ignore: (...args: Parameters<typeof denoTest>) => {
      const test = definition(...args);
      denoTest({ ...test, ignore: true });
    },
    only: (...args: Parameters<typeof denoTest>) => {
      const test = definition(...args);
      denoTest({ ...test, only: true });
    },
  }),
  errors: { NotFound, AlreadyExists, PermissionDenied, IsADirectory, NotADirectory },
  get args() {
    return process.argv.slice(2);
  },
  env: {
    get: (key: string) => process.env[key],
    set: (key: string, value: string) => void (process.env[key] = value),
    has: (key: string) => key in process.env,
    delete: (key: string) => void delete process.env[key],
    toObject: () => ({ ...process.env }),
  },
  execPath: () => process.execPath,
  cwd: () => process.cwd(),
  chdir: (dir: PathLike) => process.chdir(path(dir)),
  exit: (code?: number) => process.exit(code),
  kill: (pid: number, signal: NodeJS.Signals = "SIGTERM") => void process.kill(pid, signal),
  stdout: {
    writeSync: (bytes: Uint8Array) => fs.writeSync(1, bytes),
    write: (bytes: Uint8Array) => Promise.resolve(fs.writeSync(1, bytes)),
  },
  stderr: {
    writeSync: (bytes: Uint8Array) => fs.writeSync(2, bytes),
    write: (bytes: Uint8Array) => Promise.resolve(fs.writeSync(2, bytes)),
  },
  Command,
  listen: listenUnix,
  openSync,
  open: (p: PathLike, options?: OpenOptions) => Promise.resolve(openSync(p, options)),
  makeTempDirSync: (options?: Parameters<typeof makeTempDirSync>[0]) =>
    denoErrors(() => makeTempDirSync(options)),
  makeTempDir: (options?: Parameters<typeof makeTempDirSync>[0]) =>
    later(() => makeTempDirSync(options)),
  mkdirSync: (p: PathLike, options?: { recursive?: boolean; mode?: number }) =>
    void denoErrors(() => fs.mkdirSync(path(p), options)),
  mkdir: (p: PathLike, options?: { recursive?: boolean; mode?: number }) =>
    later(() => void fs.mkdirSync(path(p), options)),
  readFileSync: (p: PathLike) => new Uint8Array(denoErrors(() => fs.readFileSync(path(p)))),
  readFile: (p: PathLike) =>
    denoErrorsAsync(async () => new Uint8Array(await fs.promises.readFile(path(p)))),
  readTextFileSync: (p: PathLike) => denoErrors(() => fs.readFileSync(path(p), "utf8")),
  readTextFile: (p: PathLike) => denoErrorsAsync(() => fs.promises.readFile(path(p), "utf8")),
  writeFileSync: (p: PathLike, data: Uint8Array, options: { mode?: number } = {}) =>
    denoErrors(() => fs.writeFileSync(path(p), data, options)),
  writeFile: (p: PathLike, data: Uint8Array, options: { mode?: number } = {}) =>
    denoErrorsAsync(() => fs.promises.writeFile(path(p), data, options)),
  writeTextFileSync: (p: PathLike, text: string) =>
    denoErrors(() => fs.writeFileSync(path(p), encoder.encode(text))),
  writeTextFile: (p: PathLike, text: string) =>
    denoErrorsAsync(() => fs.promises.writeFile(path(p), text)),
  removeSync: (p: PathLike, options?: { recursive?: boolean }) =>
    denoErrors(() => removeSync(p, options)),
  remove: (p: PathLike, options?: { recursive?: boolean }) => later(() => removeSync(p, options)),
  statSync: (p: PathLike) => fileInfo(denoErrors(() => fs.statSync(path(p)))),
  stat: (p: PathLike) => denoErrorsAsync(async () => fileInfo(await fs.promises.stat(path(p)))),
  lstatSync: (p: PathLike) => fileInfo(denoErrors(() => fs.lstatSync(path(p)))),
  lstat: (p: PathLike) => denoErrorsAsync(async () => fileInfo(await fs.promises.lstat(path(p)))),
  readDirSync: (p: PathLike) => denoErrors(() => dirEntries(p)),
  readDir: (p: PathLike) => {
    const entries = denoErrors(() => dirEntries(p));
    return (async function* () {
      yield* entries;
    })();
  },
  readLinkSync: (p: PathLike) => denoErrors(() => fs.readlinkSync(path(p))),
  readLink: (p: PathLike) => denoErrorsAsync(() => fs.promises.readlink(path(p))),
  symlinkSync: (target: PathLike, link: PathLike) =>
    denoErrors(() => fs.symlinkSync(path(target), path(link))),
  symlink: (target: PathLike, link: PathLike) =>
    denoErrorsAsync(() => fs.promises.symlink(path(target), path(link))),
  truncateSync: (p: PathLike, length = 0) => denoErrors(() => fs.truncateSync(path(p), length)),
  truncate: (p: PathLike, length = 0) =>
    denoErrorsAsync(() => fs.promises.truncate(path(p), length)),
  realPathSync: (p: PathLike) => denoErrors(() => fs.realpathSync(path(p))),
  chmodSync: (p: PathLike, mode: number) => denoErrors(() => fs.chmodSync(path(p), mode)),
  copyFileSync: (from: PathLike, to: PathLike) =>
    denoErrors(() => fs.copyFileSync(path(from), path(to))),
};

const global = globalThis as { Deno?: unknown };
if (global.Deno !== undefined) {
  throw new Error("deno_shim: a Deno namespace already exists (this shim is for Node only)");
}
global.Deno = shim;
