/**
 * How a kind of thing that threads open from a structured-cloneable handle
 * (a backend driver, a guest-memory kind, an interrupt sink) plugs in
 * without a closed `switch` in the code that opens it. The module that
 * implements a kind registers its opener under its own URL
 * (`import.meta.url`) when it is imported, and every handle of that kind
 * carries the URL. A thread that has imported the module opens the handle
 * at once; one that has not (a fresh worker) imports it first. So the
 * threads import only what the handles they are given need: the browser
 * build's workers never load a Node or Deno FFI module unless a handle
 * names one. Browser-safe.
 *
 * A bundle puts many modules in one file, whose URL they would all share:
 * the browser build (`scripts/build_browser.ts`) gives each module's
 * `import.meta.url` a fragment naming its source (`virtio-blk.js#src/…`),
 * so every plug-in keeps a name of its own, and a thread imports the file
 * the name is in (the URL without its fragment: with one, a browser would
 * evaluate the bundle a second time, with registries of its own).
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";

/** Something a plug-in module opens: its handle names the module. */
export interface PluginHandle {
  /** URL of the module that registered the opener (its `import.meta.url`). */
  readonly module: string;
}

/** The openers of one kind of thing, by module URL. */
export class PluginRegistry<T> {
  readonly #openers = new Map<string, T>();

  /**
   * An empty registry.
   *
   * @param kind what is registered, for messages (`"backend driver"`)
   */
  constructor(readonly kind: string) {}

  /** Registers `opener` for handles naming `module` (call with `import.meta.url`). */
  register(module: string, opener: T): void {
    this.#openers.set(module, opener);
  }

  /**
   * The opener for `handle`, if its module was imported on this thread.
   *
   * @throws {VirtioBlkError} `INVALID_CONFIG` when it was not (use {@linkcode load})
   */
  get(handle: PluginHandle): T {
    const opener = this.#openers.get(handle.module);
    if (opener === undefined) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `no ${this.kind} from ${handle.module} is loaded on this thread`,
      );
    }
    return opener;
  }

  /** The opener for `handle`, importing its module first if this thread has not. */
  async load(handle: PluginHandle): Promise<T> {
    if (!this.#openers.has(handle.module)) {
      try {
        await import(moduleFile(handle.module));
      } catch (cause) {
        throw new VirtioBlkError(
          "UNSUPPORTED",
          `cannot load the ${this.kind} ${handle.module}: ${cause}`,
          { cause },
        );
      }
    }
    return this.get(handle);
  }
}

/** The file a plug-in's module name is in: its URL without the fragment a bundle adds. */
export function moduleFile(module: string): string {
  const hash = module.indexOf("#");
  return hash < 0 ? module : module.slice(0, hash);
}
