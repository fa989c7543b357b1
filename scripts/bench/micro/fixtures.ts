/**
 * Guest memory prepared for the micro-benchmarks the way the tests prepare
 * it (tests/helpers/raw_guest.ts): a legacy split ring written field by
 * field by a {@linkcode GuestRing}, {@linkcode BATCH} virtio-blk requests in
 * legacy framing (header, data, status), direct or through indirect tables,
 * and the real device-side {@linkcode SplitQueue} over it.
 *
 * @module
 */

import { REQUEST_HEADER_SIZE, RequestHeader, RequestType } from "../../../src/blk/spec.ts";
import { SharedGuestMemory } from "../../../src/memory/shared_memory.ts";
import { DescriptorChain } from "../../../src/virtio/descriptor_chain.ts";
import { QueueStateBuffer } from "../../../src/virtio/queue_state.ts";
import { legacyRingAddresses, legacyRingSize } from "../../../src/virtio/ring_layout.ts";
import { DESCRIPTOR_SIZE, featureBit, RingFeature } from "../../../src/virtio/spec.ts";
import { Pop, SplitQueue } from "../../../src/virtio/split_queue.ts";
import { type ChainBuffer, GuestRing } from "../../../tests/helpers/raw_guest.ts";

/** Requests per benchmark iteration (ACRN's pool size; below the queue size). */
export const BATCH = 64;
/** Queue size N. */
export const QUEUE_SIZE = 256;
/** Disk capacity the requests are checked against, in sectors (1 GiB). */
export const CAPACITY_SECTORS = 2 * 1024 * 1024;

const RING = 0x1000;

/** What the requests look like. */
export interface RequestShape {
  /** RequestType.IN or OUT. */
  readonly type: number;
  /** Data segments per request and bytes per segment. */
  readonly segments: number;
  readonly segmentBytes: number;
  /** Chains through indirect tables. */
  readonly indirect: boolean;
}

/** A ready queue with {@linkcode BATCH} requests written but not yet offered. */
export interface QueueFixture {
  readonly memory: SharedGuestMemory;
  readonly ring: GuestRing;
  readonly queue: SplitQueue;
  readonly chain: DescriptorChain;
  readonly heads: readonly number[];
}

/**
 * Builds guest memory, a queue of {@linkcode QUEUE_SIZE} activated with
 * INDIRECT_DESC (and EVENT_IDX when `eventIdx`), and `BATCH` requests of
 * `shape` at distinct sectors.
 */
export function queueFixture(shape: RequestShape, eventIdx = false): QueueFixture {
  const memory = SharedGuestMemory.allocate(16 << 20);
  const ring = GuestRing.legacy(memory, RING, QUEUE_SIZE);
  const state = new QueueStateBuffer(QUEUE_SIZE);
  const queue = new SplitQueue(memory, state);
  const features = featureBit(RingFeature.INDIRECT_DESC) |
    (eventIdx ? featureBit(RingFeature.EVENT_IDX) : 0);
  const config = { size: QUEUE_SIZE, features, ...legacyRingAddresses(RING, QUEUE_SIZE) };
  if (!queue.activate(config)) throw new Error("the benchmark ring does not activate");
  const chain = new DescriptorChain(SplitQueue.chainCapacity(config));

  const view = new DataView(memory.buffer);
  let free = RING + legacyRingSize(QUEUE_SIZE);
  const alloc = (bytes: number, alignment = 16) => {
    free = Math.ceil(free / alignment) * alignment;
    const at = free;
    free += bytes;
    return at;
  };
  const perChain = shape.segments + 2;
  const heads: number[] = [];
  for (let r = 0; r < BATCH; r++) {
    const header = alloc(REQUEST_HEADER_SIZE);
    view.setUint32(header + RequestHeader.TYPE, shape.type, true);
    view.setBigUint64(header + RequestHeader.SECTOR, BigInt(r * 2048), true);
    const write = shape.type === RequestType.IN;
    const buffers: ChainBuffer[] = [{ addr: header, len: REQUEST_HEADER_SIZE }];
    for (let s = 0; s < shape.segments; s++) {
      buffers.push({ addr: alloc(shape.segmentBytes, 512), len: shape.segmentBytes, write });
    }
    buffers.push({ addr: alloc(1), len: 1, write: true });
    heads.push(
      shape.indirect
        ? ring.indirectChain(r, alloc(DESCRIPTOR_SIZE * buffers.length), buffers)
        : ring.chain(buffers, Array.from({ length: perChain }, (_, i) => r * perChain + i)),
    );
  }
  if (!shape.indirect && BATCH * perChain > QUEUE_SIZE) {
    throw new Error(`${BATCH} direct chains of ${perChain} descriptors overflow the ring`);
  }
  return { memory, ring, queue, chain, heads };
}

/** The guest offers every request of the fixture. */
export function offerAll(f: QueueFixture): void {
  f.ring.offer(...f.heads);
}

/** The device pops every offered chain (one drain pass); `each` sees every chain. */
export function popAll(f: QueueFixture, each?: (chain: DescriptorChain) => void): number {
  let popped = 0;
  if (!f.queue.beginDrain()) throw new Error("the queue cannot be drained");
  while (f.queue.pop(f.chain) === Pop.CHAIN) {
    each?.(f.chain);
    popped++;
  }
  f.queue.endDrain();
  return popped;
}

/** The device returns every request on the used ring, as completeRequest does one at a time. */
export function publishAll(f: QueueFixture): number {
  let interrupts = 0;
  for (const head of f.heads) {
    const generation = f.queue.lockUsed();
    f.queue.publish(head, 1, generation);
    if (f.queue.needsInterrupt()) interrupts++;
    f.queue.unlockUsed();
  }
  return interrupts;
}
