/**
 * A descriptor chain as the device popped it: the head index and a copy of
 * every descriptor's address, length and direction, taken once from guest
 * memory (virtio 1.2 §2.7.5). Indirect tables are already flattened into it.
 * Nothing here is read from guest memory again, so a guest that rewrites its
 * descriptors after the pop cannot change what the device acts on.
 *
 * One instance is reused for every pop, so the hot path allocates nothing.
 *
 * @module
 */

/** The device-side copy of one popped descriptor chain. */
export class DescriptorChain {
  /** Head descriptor index (what goes back on the used ring). */
  head = 0;
  /** Number of buffers in the chain. */
  count = 0;
  /** Guest-physical address of each buffer (exact below 2^53, see `joinU64`). */
  readonly address: Float64Array;
  /** Length in bytes of each buffer. */
  readonly length: Uint32Array;
  /** 1 when the buffer is device-writable (VIRTQ_DESC_F_WRITE), else 0. */
  readonly writable: Uint8Array;

  /**
   * Makes room for chains of up to `capacity` buffers, allocated once.
   *
   * @param capacity the most buffers one chain may hold (see `SplitQueue.chainCapacity`)
   */
  constructor(readonly capacity: number) {
    this.address = new Float64Array(capacity);
    this.length = new Uint32Array(capacity);
    this.writable = new Uint8Array(capacity);
  }

  /** Forgets the previous chain and starts a new one at `head`. */
  reset(head: number): void {
    this.head = head;
    this.count = 0;
  }

  /** Appends a buffer; the walker guarantees the capacity is never exceeded. */
  push(address: number, length: number, writable: boolean): void {
    const i = this.count++;
    this.address[i] = address;
    this.length[i] = length;
    this.writable[i] = writable ? 1 : 0;
  }

  /** A plain-object picture of the chain, for tests and diagnostics. */
  describe(): { head: number; buffers: { address: number; length: number; writable: boolean }[] } {
    const buffers = [];
    for (let i = 0; i < this.count; i++) {
      buffers.push({
        address: this.address[i],
        length: this.length[i],
        writable: this.writable[i] === 1,
      });
    }
    return { head: this.head, buffers };
  }
}
