/**
 * The device side of a split virtqueue (virtio 1.2 §2.7), knowing nothing of
 * the device it serves. It takes chains off the available ring into a
 * {@linkcode DescriptorChain}, returns them on the used ring, and decides
 * when the driver wants an interrupt. Every index and address the guest
 * controls is checked before use; a guest that corrupts the ring puts the
 * queue in a broken state (reported as a {@linkcode QueueFault}) that only a
 * reset clears.
 *
 * The state lives in a {@linkcode QueueStateBuffer}, so any number of
 * threads can build a `SplitQueue` over the same queue: one thread at a time
 * drains the available ring (AVAIL_LOCK) and one at a time publishes used
 * elements (USED_LOCK), and the two sides run concurrently.
 *
 * @module
 */

import { type GuestMemory, joinU64, type MemoryRegion } from "../memory/guest_memory.ts";
import { lock, tryLock, unlock } from "../sync/mutex.ts";
import type { DescriptorChain } from "./descriptor_chain.ts";
import {
  AvailRing,
  Descriptor,
  descriptorTableSize,
  PartAlignment,
  type RingAddresses,
  UsedRing,
} from "./ring_layout.ts";
import {
  AVAIL_F_NO_INTERRUPT,
  DESCRIPTOR_SIZE,
  DescriptorFlag,
  hasFeature,
  isValidQueueSize,
  RingFeature,
  USED_F_NO_NOTIFY,
} from "./spec.ts";
import { type QueueStateBuffer, QueueWord } from "./queue_state.ts";

/** Why a queue was declared broken. 0 means it is not. */
export const QueueFault = {
  NONE: 0,
  /** avail.idx ran more than N entries ahead of the device (§2.7.13.3). */
  AVAIL_INDEX_TOO_FAR: 1,
  /** A head index from the available ring is >= N. */
  HEAD_OUT_OF_RANGE: 2,
  /** A `next` field is >= N (or >= the indirect table's length). */
  NEXT_OUT_OF_RANGE: 3,
  /** A chain visits more descriptors than allowed: a loop or an over-long chain. */
  CHAIN_TOO_LONG: 4,
  /** VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3.1). */
  INDIRECT_NOT_NEGOTIATED: 5,
  /** INDIRECT together with NEXT (§2.7.5.3.1). */
  INDIRECT_WITH_NEXT: 6,
  /** An indirect table whose length is 0 or not a multiple of 16. */
  INDIRECT_BAD_LENGTH: 7,
  /** An INDIRECT descriptor inside an indirect table (§2.7.5.3.1). */
  INDIRECT_NESTED: 8,
  /** An indirect table that is not wholly inside guest memory. */
  INDIRECT_OUTSIDE_MEMORY: 9,
  /** A head submitted again while it is still in flight. */
  HEAD_IN_FLIGHT: 10,
} as const;

/** One of {@linkcode QueueFault}'s values. */
export type QueueFaultCode = typeof QueueFault[keyof typeof QueueFault];

/** Result of {@linkcode SplitQueue.pop}. */
export const Pop = {
  /** No more chains in this pass. */
  EMPTY: 0,
  /** A chain was copied into the caller's {@linkcode DescriptorChain}. */
  CHAIN: 1,
  /** The queue is broken (now or earlier); nothing more will be popped. */
  BROKEN: 2,
} as const;

/** One of {@linkcode Pop}'s values. */
export type PopResult = typeof Pop[keyof typeof Pop];

/** What the control plane hands to {@linkcode SplitQueue.activate}. */
export interface QueueConfig extends RingAddresses {
  /** Queue size N (power of two, at most the state region's maximum). */
  readonly size: number;
  /** The driver's accepted feature bits 0–31. */
  readonly features: number;
  /** Most descriptors in one chain (at least N is used). */
  readonly maxChain?: number;
  /**
   * Where the device resumes: the next available index to take and the next
   * used index to publish (vhost-user SET_VRING_BASE and the ring's used.idx).
   * Both default to 0, as after a reset.
   */
  readonly nextAvail?: number;
  /** The next used index to publish (see {@linkcode QueueConfig.nextAvail}); default 0. */
  readonly nextUsed?: number;
}

const TWO_POW_32 = 0x1_0000_0000;
const U16_MASK = 0xffff;

/** A view of one split virtqueue from one thread. */
export class SplitQueue {
  readonly #memory: GuestMemory;
  readonly #words: Int32Array;
  readonly #maxQueueSize: number;

  // Cached per generation by #refresh(); valid while #generation matches.
  #generation = -1;
  #size = 0;
  #maxChain = 0;
  #indirect = false;
  #eventIdx = false;
  #desc: MemoryRegion | undefined;
  #descOffset = 0;
  #avail: MemoryRegion | undefined;
  #availOffset = 0;
  #used: MemoryRegion | undefined;
  #usedOffset = 0;

  // The avail.idx read at the start of the current drain pass.
  #availSnapshot = 0;

  // The descriptor #readDescriptor copied last.
  #descriptorAddress = 0;
  #descriptorLength = 0;
  #descriptorFlags = 0;
  #descriptorNext = 0;

  /**
   * Views a queue from this thread. It holds no ring of its own: the ring
   * addresses, size and features come from `state`, set by
   * {@linkcode SplitQueue.activate} on any thread's view.
   *
   * @param memory the guest memory the ring lives in
   * @param state the queue's shared state
   */
  constructor(memory: GuestMemory, state: QueueStateBuffer) {
    this.#memory = memory;
    this.#words = state.words;
    this.#maxQueueSize = state.maxQueueSize;
  }

  /** Largest chain this queue's state allows, to size a {@linkcode DescriptorChain}. */
  static chainCapacity(config: { size: number; maxChain?: number }): number {
    return Math.max(config.size, config.maxChain ?? 0);
  }

  // ---------------------------------------------------------------------------
  // Control plane: called by the transport when the driver configures the queue.

  /**
   * Validates a ring configuration and, if every part is aligned and lies
   * wholly in guest memory, makes the queue ready. Returns false (and leaves
   * the queue disabled) otherwise.
   */
  activate(config: QueueConfig): boolean {
    const { size } = config;
    if (!isValidQueueSize(size) || size > this.#maxQueueSize) return false;
    const parts: [number, number, number][] = [
      [config.desc, descriptorTableSize(size), PartAlignment.DESC],
      [config.avail, AvailRing.size(size), PartAlignment.AVAIL],
      [config.used, UsedRing.size(size), PartAlignment.USED],
    ];
    for (const [gpa, length, alignment] of parts) {
      if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % alignment !== 0) return false;
      const region = this.#memory.regionFor(gpa, length);
      if (region === undefined || (gpa - region.gpa) % alignment !== 0) return false;
    }
    const w = this.#words;
    lock(w, QueueWord.AVAIL_LOCK);
    lock(w, QueueWord.USED_LOCK);
    Atomics.store(w, QueueWord.SIZE, size);
    storeAddress(w, QueueWord.DESC_LOW, config.desc);
    storeAddress(w, QueueWord.AVAIL_LOW, config.avail);
    storeAddress(w, QueueWord.USED_LOW, config.used);
    Atomics.store(w, QueueWord.FEATURES, config.features | 0);
    Atomics.store(w, QueueWord.MAX_CHAIN, SplitQueue.chainCapacity(config));
    this.#clearProgress();
    Atomics.store(w, QueueWord.NEXT_AVAIL, (config.nextAvail ?? 0) & U16_MASK);
    Atomics.store(w, QueueWord.NEXT_USED, (config.nextUsed ?? 0) & U16_MASK);
    Atomics.add(w, QueueWord.GENERATION, 1);
    Atomics.store(w, QueueWord.READY, 1);
    unlock(w, QueueWord.USED_LOCK);
    unlock(w, QueueWord.AVAIL_LOCK);
    return true;
  }

  /**
   * Stops the queue: no chain is popped and no used element is published for
   * work taken before this call (its generation is now stale). Waits for a
   * drain pass or publish in progress on another thread to finish. Returns
   * the next available index the device would have taken (what vhost-user's
   * GET_VRING_BASE reports).
   */
  disable(): number {
    const w = this.#words;
    lock(w, QueueWord.AVAIL_LOCK);
    lock(w, QueueWord.USED_LOCK);
    const nextAvail = Atomics.load(w, QueueWord.NEXT_AVAIL);
    Atomics.store(w, QueueWord.READY, 0);
    Atomics.add(w, QueueWord.GENERATION, 1);
    this.#clearProgress();
    unlock(w, QueueWord.USED_LOCK);
    unlock(w, QueueWord.AVAIL_LOCK);
    return nextAvail;
  }

  /**
   * Stops taking chains off the available ring until the next activation or
   * disable, without abandoning any: chains already taken still complete
   * (watch {@linkcode inFlight}). Waits for a drain pass in progress on
   * another thread to finish, so every chain taken is counted in flight
   * when this returns.
   */
  pause(): void {
    const w = this.#words;
    lock(w, QueueWord.AVAIL_LOCK);
    Atomics.store(w, QueueWord.PAUSED, 1);
    unlock(w, QueueWord.AVAIL_LOCK);
  }

  #clearProgress(): void {
    const w = this.#words;
    Atomics.store(w, QueueWord.NEXT_AVAIL, 0);
    Atomics.store(w, QueueWord.NEXT_USED, 0);
    Atomics.store(w, QueueWord.SIGNALLED_USED, 0);
    Atomics.store(w, QueueWord.SIGNALLED_VALID, 0);
    Atomics.store(w, QueueWord.BROKEN, QueueFault.NONE);
    Atomics.store(w, QueueWord.IN_FLIGHT, 0);
    Atomics.store(w, QueueWord.PAUSED, 0);
    for (let i = 0; i < this.#maxQueueSize; i++) Atomics.store(w, QueueWord.HEADS + i, 0);
  }

  /** Whether the queue is configured and may be served. */
  get ready(): boolean {
    return Atomics.load(this.#words, QueueWord.READY) === 1;
  }

  /** Queue size N of the current configuration (0 when never configured). */
  get size(): number {
    return Atomics.load(this.#words, QueueWord.SIZE);
  }

  /** The current generation; work tagged with an older one is abandoned. */
  get generation(): number {
    return Atomics.load(this.#words, QueueWord.GENERATION);
  }

  /** Why the queue is broken, or {@linkcode QueueFault.NONE}. */
  get fault(): QueueFaultCode {
    return Atomics.load(this.#words, QueueWord.BROKEN) as QueueFaultCode;
  }

  /** Chains popped and not yet returned. */
  get inFlight(): number {
    return Atomics.load(this.#words, QueueWord.IN_FLIGHT);
  }

  get #paused(): boolean {
    return Atomics.load(this.#words, QueueWord.PAUSED) === 1;
  }

  // ---------------------------------------------------------------------------
  // Available side: one drainer at a time.

  /**
   * Starts a drain pass: takes AVAIL_LOCK (waiting for it when `wait`,
   * else giving up at once if another thread drains), reads avail.idx once,
   * and asks the driver not to notify while the device drains. Returns false,
   * holding no lock, when the lock was busy, or the queue is not ready, is
   * paused or is broken; a corrupted avail.idx breaks the queue here.
   *
   * A thread that gives up because another one drains needs no retry: the
   * drainer looks at the ring again after {@linkcode endDrain} (see
   * {@linkcode hasAvailable}).
   */
  beginDrain(wait = true): boolean {
    if (wait) lock(this.#words, QueueWord.AVAIL_LOCK);
    else if (!tryLock(this.#words, QueueWord.AVAIL_LOCK)) return false;
    if (!this.#refresh() || this.fault !== QueueFault.NONE || this.#paused) {
      unlock(this.#words, QueueWord.AVAIL_LOCK);
      return false;
    }
    this.#availSnapshot = this.#readAvailIdx();
    const nextAvail = Atomics.load(this.#words, QueueWord.NEXT_AVAIL);
    if (((this.#availSnapshot - nextAvail) & U16_MASK) > this.#size) {
      this.#markBroken(QueueFault.AVAIL_INDEX_TOO_FAR);
      unlock(this.#words, QueueWord.AVAIL_LOCK);
      return false;
    }
    this.#setNotification(false);
    return true;
  }

  /**
   * Whether the driver has made chains available that no drain pass has
   * taken yet. Takes no lock: a drainer calls it after {@linkcode endDrain}
   * and drains again when it is true, so a kick that arrived while it held
   * the lock (and was ignored by a thread that could not take it) is served.
   */
  get hasAvailable(): boolean {
    if (!this.#refresh() || this.fault !== QueueFault.NONE || this.#paused) return false;
    return this.#readAvailIdx() !== (Atomics.load(this.#words, QueueWord.NEXT_AVAIL) & U16_MASK);
  }

  /**
   * Pops the next chain of this pass into `chain` (only between
   * {@linkcode beginDrain} and {@linkcode endDrain}).
   */
  pop(chain: DescriptorChain): PopResult {
    const w = this.#words;
    if (this.fault !== QueueFault.NONE) return Pop.BROKEN;
    const nextAvail = Atomics.load(w, QueueWord.NEXT_AVAIL);
    if ((nextAvail & U16_MASK) === this.#availSnapshot) return Pop.EMPTY;
    const avail = this.#avail!;
    const slot = this.#availOffset + AvailRing.RING + 2 * (nextAvail & (this.#size - 1));
    const head = Atomics.load(avail.u16, slot >>> 1);
    Atomics.store(w, QueueWord.NEXT_AVAIL, (nextAvail + 1) & U16_MASK);
    if (head >= this.#size) return this.#markBroken(QueueFault.HEAD_OUT_OF_RANGE);
    const fault = this.#walk(head, chain);
    if (fault !== QueueFault.NONE) return this.#markBroken(fault);
    if (Atomics.compareExchange(w, QueueWord.HEADS + head, 0, 1) !== 0) {
      return this.#markBroken(QueueFault.HEAD_IN_FLIGHT);
    }
    Atomics.add(w, QueueWord.IN_FLIGHT, 1);
    return Pop.CHAIN;
  }

  /**
   * Ends a drain pass: lets the driver notify again (virtio 1.2 §2.7.10) and
   * releases AVAIL_LOCK. The caller then checks {@linkcode hasAvailable}
   * (unless it stopped because it could take no more, in which case whoever
   * frees capacity drains again).
   */
  endDrain(): void {
    if (this.fault === QueueFault.NONE) this.#setNotification(true);
    unlock(this.#words, QueueWord.AVAIL_LOCK);
  }

  // ---------------------------------------------------------------------------
  // Used side: one publisher at a time, between lockUsed and unlockUsed.

  /** Takes USED_LOCK. Returns the current generation. */
  lockUsed(): number {
    lock(this.#words, QueueWord.USED_LOCK);
    return this.generation;
  }

  /** Releases USED_LOCK. */
  unlockUsed(): void {
    unlock(this.#words, QueueWord.USED_LOCK);
  }

  /**
   * Returns a popped chain on the used ring: writes the element's len, then
   * its id, then publishes used.idx (virtio 1.2 §2.7.8, §2.7.14). Returns
   * false, touching nothing, when `generation` is stale (the queue was reset
   * or reconfigured since the pop). Caller holds USED_LOCK.
   */
  publish(head: number, length: number, generation: number): boolean {
    const w = this.#words;
    if (generation !== this.generation || !this.#refresh()) return false;
    if (
      head < 0 || head >= this.#size ||
      Atomics.compareExchange(w, QueueWord.HEADS + head, 1, 0) !== 1
    ) {
      // Only a chain this queue popped may be returned (bug class 14).
      throw new Error(`internal error: head ${head} returned but not in flight`);
    }
    const used = this.#used!;
    const nextUsed = Atomics.load(w, QueueWord.NEXT_USED);
    const element = this.#usedOffset + UsedRing.RING +
      UsedRing.ELEMENT_SIZE * (nextUsed & (this.#size - 1));
    Atomics.store(used.u32, (element + UsedRing.ELEMENT_LEN) >>> 2, length);
    Atomics.store(used.u32, (element + UsedRing.ELEMENT_ID) >>> 2, head);
    const newUsed = (nextUsed + 1) & U16_MASK;
    Atomics.store(w, QueueWord.NEXT_USED, newUsed);
    Atomics.store(used.u16, (this.#usedOffset + UsedRing.IDX) >>> 1, newUsed);
    Atomics.sub(w, QueueWord.IN_FLIGHT, 1);
    return true;
  }

  /**
   * Whether the driver wants an interrupt for what was published since the
   * last interrupt: avail.flags NO_INTERRUPT without EVENT_IDX, used_event
   * with it (virtio 1.2 §2.7.10). Caller holds USED_LOCK and has published.
   */
  needsInterrupt(): boolean {
    if (!this.#refresh()) return false;
    const avail = this.#avail!;
    if (!this.#eventIdx) {
      const flags = Atomics.load(avail.u16, (this.#availOffset + AvailRing.FLAGS) >>> 1);
      return (flags & AVAIL_F_NO_INTERRUPT) === 0;
    }
    const w = this.#words;
    const newUsed = Atomics.load(w, QueueWord.NEXT_USED);
    const oldUsed = Atomics.exchange(w, QueueWord.SIGNALLED_USED, newUsed);
    const valid = Atomics.exchange(w, QueueWord.SIGNALLED_VALID, 1) === 1;
    const usedEvent = Atomics.load(
      avail.u16,
      (this.#availOffset + AvailRing.usedEvent(this.#size)) >>> 1,
    );
    return !valid || needEvent(usedEvent, newUsed, oldUsed);
  }

  // ---------------------------------------------------------------------------

  #markBroken(fault: QueueFaultCode): PopResult {
    Atomics.compareExchange(this.#words, QueueWord.BROKEN, QueueFault.NONE, fault);
    return Pop.BROKEN;
  }

  /** Re-reads the configuration if it changed. Returns whether the queue is ready. */
  #refresh(): boolean {
    const w = this.#words;
    const generation = Atomics.load(w, QueueWord.GENERATION);
    if (generation === this.#generation) return this.#desc !== undefined;
    this.#desc = this.#avail = this.#used = undefined;
    // Not ready is not cached: activate() bumps GENERATION before it sets
    // READY, so a view that looks in between must look again, or it would
    // ignore the queue for the whole generation.
    if (Atomics.load(w, QueueWord.READY) !== 1) return false;
    this.#generation = generation;
    const size = Atomics.load(w, QueueWord.SIZE);
    const features = Atomics.load(w, QueueWord.FEATURES);
    const desc = loadAddress(w, QueueWord.DESC_LOW);
    const avail = loadAddress(w, QueueWord.AVAIL_LOW);
    const used = loadAddress(w, QueueWord.USED_LOW);
    const descRegion = this.#memory.regionFor(desc, descriptorTableSize(size));
    const availRegion = this.#memory.regionFor(avail, AvailRing.size(size));
    const usedRegion = this.#memory.regionFor(used, UsedRing.size(size));
    if (!descRegion || !availRegion || !usedRegion) return false;
    this.#size = size;
    this.#maxChain = Atomics.load(w, QueueWord.MAX_CHAIN);
    this.#indirect = hasFeature(features, RingFeature.INDIRECT_DESC);
    this.#eventIdx = hasFeature(features, RingFeature.EVENT_IDX);
    this.#desc = descRegion;
    this.#descOffset = desc - descRegion.gpa;
    this.#avail = availRegion;
    this.#availOffset = avail - availRegion.gpa;
    this.#used = usedRegion;
    this.#usedOffset = used - usedRegion.gpa;
    return true;
  }

  #readAvailIdx(): number {
    return Atomics.load(this.#avail!.u16, (this.#availOffset + AvailRing.IDX) >>> 1);
  }

  /**
   * Enables or suppresses driver notifications: used.flags NO_NOTIFY without
   * EVENT_IDX; with it, avail_event is set to the next index the device wants
   * to hear about when enabling and left alone when suppressing.
   */
  #setNotification(enable: boolean): void {
    const used = this.#used!;
    if (this.#eventIdx) {
      if (enable) {
        const at = (this.#usedOffset + UsedRing.availEvent(this.#size)) >>> 1;
        Atomics.store(used.u16, at, Atomics.load(this.#words, QueueWord.NEXT_AVAIL) & U16_MASK);
      }
      return;
    }
    const at = (this.#usedOffset + UsedRing.FLAGS) >>> 1;
    Atomics.store(used.u16, at, enable ? 0 : USED_F_NO_NOTIFY);
  }

  /**
   * Copies the descriptor at byte `at` of `region` into the #descriptor*
   * fields: one read of each guest field. The descriptor table is 16-byte
   * aligned (checked at activation); an indirect table need not be, so an
   * unaligned one is read byte by byte.
   */
  #readDescriptor(region: MemoryRegion, at: number): void {
    if ((at & 3) === 0) {
      const word = at >>> 2;
      const u32 = region.u32;
      this.#descriptorAddress = joinU64(u32[word], u32[word + 1]);
      this.#descriptorLength = u32[word + 2];
      const flagsAndNext = u32[word + 3];
      this.#descriptorFlags = flagsAndNext & U16_MASK;
      this.#descriptorNext = flagsAndNext >>> 16;
      return;
    }
    const bytes = region.bytes;
    this.#descriptorAddress = joinU64(readU32(bytes, at + Descriptor.ADDR), readU32(bytes, at + 4));
    this.#descriptorLength = readU32(bytes, at + Descriptor.LEN);
    this.#descriptorFlags = readU16(bytes, at + Descriptor.FLAGS);
    this.#descriptorNext = readU16(bytes, at + Descriptor.NEXT);
  }

  /** Walks the chain at `head`, copying each descriptor once (§2.7.5.3). */
  #walk(head: number, chain: DescriptorChain): QueueFaultCode {
    const size = this.#size;
    const maxChain = this.#maxChain;
    const desc = this.#desc!;
    chain.reset(head);
    let index = head;
    for (let visited = 0;; visited++) {
      if (visited >= size) return QueueFault.CHAIN_TOO_LONG;
      this.#readDescriptor(desc, this.#descOffset + DESCRIPTOR_SIZE * index);
      const address = this.#descriptorAddress;
      const length = this.#descriptorLength;
      const flags = this.#descriptorFlags;
      const next = this.#descriptorNext;
      if (flags & DescriptorFlag.INDIRECT) {
        if (!this.#indirect) return QueueFault.INDIRECT_NOT_NEGOTIATED;
        if (flags & DescriptorFlag.NEXT) return QueueFault.INDIRECT_WITH_NEXT;
        return this.#walkIndirect(address, length, chain, maxChain);
      }
      if (chain.count >= maxChain) return QueueFault.CHAIN_TOO_LONG;
      chain.push(address, length, (flags & DescriptorFlag.WRITE) !== 0);
      if (!(flags & DescriptorFlag.NEXT)) return QueueFault.NONE;
      if (next >= size) return QueueFault.NEXT_OUT_OF_RANGE;
      index = next;
    }
  }

  /** Walks an indirect table, appending its descriptors to `chain` (§2.7.5.3). */
  #walkIndirect(
    tableAddress: number,
    tableLength: number,
    chain: DescriptorChain,
    maxChain: number,
  ): QueueFaultCode {
    if (tableLength === 0 || tableLength % DESCRIPTOR_SIZE !== 0) {
      return QueueFault.INDIRECT_BAD_LENGTH;
    }
    const entries = tableLength / DESCRIPTOR_SIZE;
    // No chain may be longer than maxChain, so neither may a table (§2.7.5.3.1).
    if (entries > maxChain) return QueueFault.CHAIN_TOO_LONG;
    const table = this.#memory.regionFor(tableAddress, tableLength);
    if (table === undefined) return QueueFault.INDIRECT_OUTSIDE_MEMORY;
    const base = tableAddress - table.gpa;
    let index = 0;
    for (let visited = 0;; visited++) {
      if (visited >= entries) return QueueFault.CHAIN_TOO_LONG;
      this.#readDescriptor(table, base + DESCRIPTOR_SIZE * index);
      const address = this.#descriptorAddress;
      const length = this.#descriptorLength;
      const flags = this.#descriptorFlags;
      const next = this.#descriptorNext;
      if (flags & DescriptorFlag.INDIRECT) return QueueFault.INDIRECT_NESTED;
      if (chain.count >= maxChain) return QueueFault.CHAIN_TOO_LONG;
      chain.push(address, length, (flags & DescriptorFlag.WRITE) !== 0);
      if (!(flags & DescriptorFlag.NEXT)) return QueueFault.NONE;
      if (next >= entries) return QueueFault.NEXT_OUT_OF_RANGE;
      index = next;
    }
  }
}

/** vring_need_event (virtio 1.2 §2.7.10): did used.idx pass `event` going from `old` to `next`? */
export function needEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & U16_MASK) < ((next - old) & U16_MASK);
}

function storeAddress(words: Int32Array, lowWord: number, address: number): void {
  Atomics.store(words, lowWord, address % TWO_POW_32 | 0);
  Atomics.store(words, lowWord + 1, Math.floor(address / TWO_POW_32) | 0);
}

function loadAddress(words: Int32Array, lowWord: number): number {
  return joinU64(Atomics.load(words, lowWord), Atomics.load(words, lowWord + 1));
}

/** Little-endian u32 at any byte offset (indirect tables need not be aligned). */
function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | bytes[at + 3] << 24) >>> 0;
}

function readU16(bytes: Uint8Array, at: number): number {
  return bytes[at] | bytes[at + 1] << 8;
}
