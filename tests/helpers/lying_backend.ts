/**
 * A medium that lies about durability: every call goes to the real
 * backend but `flush()`, which returns at once without making anything
 * stable (no fdatasync). A device over it acknowledges writes as durable
 * (write-through completions, FLUSH) that are not: the durability tests
 * run it through their harness to show that the harness catches a device
 * that loses acknowledged writes. A test fixture only: no production option
 * turns flushing off.
 *
 * @module
 */

import type { BlockBackend } from "../../src/backend/backend.ts";

/** `inner` with a flush that does nothing. */
export class LyingBackend implements BlockBackend {
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
