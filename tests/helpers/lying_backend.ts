/**
 * A medium that lies about durability: a backend driver (it plugs in as
 * any medium does, so the blockif threads open it for themselves) whose
 * handles pass every call to the real medium but `flush()`, which returns
 * at once without making anything stable (no fdatasync). A device over it
 * acknowledges writes as durable (write-through completions, FLUSH) that are
 * not: the durability tests run it through their harness to show that the
 * harness catches a device that loses acknowledged writes. A test fixture
 * only: no production option turns flushing off.
 *
 * @module
 */

import {
  backendDrivers,
  type BackendSpec,
  type BlockBackend,
  openBackend,
} from "../../src/backend/backend.ts";
// A thread loads the module its spec names, this one: the media it wraps here are files,
// whose driver must then be loaded too.
import "../../src/backend/file_driver.ts";

/** A spec of this driver: the real medium's spec inside. */
export interface LyingSpec extends BackendSpec {
  readonly inner: BackendSpec;
}

/** `inner`'s medium (a file), with a flush that does nothing. */
export function lyingSpec(inner: BackendSpec): LyingSpec {
  return { ...inner, module: import.meta.url, inner };
}

/** A handle on the real medium whose flush is a no-op. */
class LyingBackend implements BlockBackend {
  constructor(readonly inner: BlockBackend) {}
  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  read(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.inner.read(offset, bytes, at, length);
  }
  write(offset: number, bytes: Uint8Array, at: number, length: number): void {
    this.inner.write(offset, bytes, at, length);
  }
  flush(): void {
    // The lie: nothing is made stable.
  }
  close(): void {
    this.inner.close();
  }
}

backendDrivers.register(import.meta.url, {
  open: (spec) => new LyingBackend(openBackend((spec as LyingSpec).inner)),
});
