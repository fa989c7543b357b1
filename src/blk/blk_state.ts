/**
 * The block device's shared words: the state of the write cache, which the
 * driver may toggle through config space (CONFIG_WCE) while I/O threads need
 * it for every write. This module owns the region's layout.
 *
 * @module
 */

/** Word indexes of the block device region. */
export const BlkWord = {
  /** The config-space `writeback` byte (1 = write-back), as the driver sees it. */
  WCE: 0,
  /**
   * 1 when writes may complete before they are stable: WCE is on and the
   * driver negotiated FLUSH, so it can ask for stability (virtio 1.2 §5.2.6.2).
   */
  WRITE_CACHE: 1,
  /** Words in the region. */
  COUNT: 2,
} as const;

/** The block device's shared words. */
export class BlkState {
  /** The region's words, indexed by `BlkWord`; read and written with Atomics. */
  readonly words: Int32Array;

  /**
   * Views a block device region, or makes a new one (write cache off).
   *
   * @param buffer an existing region to view, from another thread's
   *   {@linkcode BlkState.buffer} (default: a new one)
   * @throws {RangeError} when `buffer` is not the region's size
   */
  constructor(buffer?: SharedArrayBuffer) {
    const bytes = BlkWord.COUNT * Int32Array.BYTES_PER_ELEMENT;
    const sab = buffer ?? new SharedArrayBuffer(bytes);
    if (sab.byteLength !== bytes) {
      throw new RangeError(`block device region must be ${bytes} bytes, got ${sab.byteLength}`);
    }
    this.words = new Int32Array(sab);
  }

  /** The region, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Whether a completed write may still be in a volatile cache. */
  get writeCache(): boolean {
    return Atomics.load(this.words, BlkWord.WRITE_CACHE) === 1;
  }

  /**
   * The `writeback` byte the driver reads and writes through config space
   * (§5.2.4, CONFIG_WCE); it says write-back even when, without FLUSH
   * negotiated, writes are still made stable before they complete.
   */
  get wce(): boolean {
    return Atomics.load(this.words, BlkWord.WCE) === 1;
  }

  /** Sets the WCE byte and the effective cache mode. */
  set(wce: boolean, flushNegotiated: boolean): void {
    Atomics.store(this.words, BlkWord.WCE, wce ? 1 : 0);
    Atomics.store(this.words, BlkWord.WRITE_CACHE, wce && flushNegotiated ? 1 : 0);
  }
}
