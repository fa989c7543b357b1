/**
 * A hand-driven guest for tests that must say exactly what is in guest
 * memory: descriptors, indirect tables, available-ring entries and indexes
 * are written one field at a time (including values no real driver would
 * write), used elements are read back raw, and guest memory can be
 * snapshotted and compared byte for byte.
 *
 * {@linkcode GuestRing} is the ring part alone (usable over a bare
 * {@linkcode SplitQueue}); {@linkcode RawGuest} adds a virtio-blk PCI
 * function, its registers and an allocator for request buffers. Every ring
 * offset comes from `src/virtio/ring_layout.ts`.
 */

import assert from "node:assert/strict";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { type MappedMedium, mappedMedium } from "./mapped_medium.ts";
import type { BlkDeviceOptions } from "../../src/blk/device.ts";
import { createVirtioBlkPci, type VirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { REQUEST_HEADER_SIZE, RequestHeader } from "../../src/blk/spec.ts";
import { GuestAllocator } from "../../src/guest/allocator.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { LegacyRegister } from "../../src/virtio/legacy_pci.ts";
import {
  AvailRing,
  Descriptor,
  LEGACY_PFN_SHIFT,
  LEGACY_QUEUE_ALIGN,
  legacyRingAddresses,
  legacyRingSize,
  type RingAddresses,
  UsedRing,
} from "../../src/virtio/ring_layout.ts";
import {
  DESCRIPTOR_SIZE,
  DescriptorFlag,
  DeviceStatus,
  featureBit,
  RingFeature,
} from "../../src/virtio/spec.ts";
import type { SplitQueue } from "../../src/virtio/split_queue.ts";

/** One descriptor as the guest writes it. `addr` may be a bigint to reach past 2^53. */
export interface Desc {
  readonly addr: number | bigint;
  readonly len: number;
  readonly flags?: number;
  readonly next?: number;
}

/** A buffer of a chain: where, how long, and whether the device may write it. */
export interface ChainBuffer {
  readonly addr: number | bigint;
  readonly len: number;
  readonly write?: boolean;
}

/** One used-ring element. */
export interface UsedElement {
  readonly id: number;
  readonly len: number;
}

/** A byte range `[start, start + length)` of guest memory. */
export interface Range {
  readonly start: number;
  readonly length: number;
}

const U16_MASK = 0xffff;

/** Writes `value` (a number below 2^53 or a bigint) as a little-endian u64. */
function setU64(view: DataView, at: number, value: number | bigint): void {
  view.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true);
}

/** The guest's side of one split ring in guest memory (legacy layout). */
export class GuestRing {
  readonly view: DataView;
  readonly bytes: Uint8Array;

  /**
   * @param memory the guest memory (its one region starts at GPA 0)
   * @param ring where the descriptor table and the two rings are
   * @param size queue size N
   */
  constructor(
    readonly memory: SharedGuestMemory,
    readonly ring: RingAddresses,
    readonly size: number,
  ) {
    this.view = new DataView(memory.buffer);
    this.bytes = new Uint8Array(memory.buffer);
  }

  /** A ring at page-aligned `base`, zeroed, in the legacy layout. */
  static legacy(memory: SharedGuestMemory, base: number, size: number): GuestRing {
    new Uint8Array(memory.buffer).fill(0, base, base + legacyRingSize(size));
    return new GuestRing(memory, legacyRingAddresses(base, size), size);
  }

  /** Writes one descriptor at `address` (a slot of the ring's table or of an indirect table). */
  writeDescriptorAt(address: number, d: Desc): void {
    setU64(this.view, address + Descriptor.ADDR, d.addr);
    this.view.setUint32(address + Descriptor.LEN, d.len >>> 0, true);
    this.view.setUint16(address + Descriptor.FLAGS, d.flags ?? 0, true);
    this.view.setUint16(address + Descriptor.NEXT, d.next ?? 0, true);
  }

  /** Writes descriptor `index` of the ring's descriptor table. */
  setDesc(index: number, d: Desc): void {
    this.writeDescriptorAt(this.ring.desc + DESCRIPTOR_SIZE * index, d);
  }

  /** Writes `descs` as a table starting at `address` (an indirect table). */
  writeTable(address: number, descs: readonly Desc[]): void {
    descs.forEach((d, i) => this.writeDescriptorAt(address + DESCRIPTOR_SIZE * i, d));
  }

  /**
   * Writes `buffers` as one chain in the descriptor table at `indexes`
   * (one index per buffer), linked with NEXT. Returns the head.
   */
  chain(buffers: readonly ChainBuffer[], indexes: readonly number[]): number {
    assert.equal(indexes.length, buffers.length, "one descriptor index per buffer");
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      this.setDesc(indexes[i], {
        addr: b.addr,
        len: b.len,
        flags: (b.write ? DescriptorFlag.WRITE : 0) | (last ? 0 : DescriptorFlag.NEXT),
        next: last ? 0 : indexes[i + 1],
      });
    });
    return indexes[0];
  }

  /**
   * Writes `buffers` as an indirect table at `table` and descriptor `head`
   * pointing at it. Returns the head.
   */
  indirectChain(head: number, table: number, buffers: readonly ChainBuffer[]): number {
    this.writeTable(
      table,
      buffers.map((b, i) => {
        const last = i === buffers.length - 1;
        return {
          addr: b.addr,
          len: b.len,
          flags: (b.write ? DescriptorFlag.WRITE : 0) | (last ? 0 : DescriptorFlag.NEXT),
          next: last ? 0 : i + 1,
        };
      }),
    );
    this.setDesc(head, {
      addr: table,
      len: DESCRIPTOR_SIZE * buffers.length,
      flags: DescriptorFlag.INDIRECT,
    });
    return head;
  }

  // --- available ring (written by the guest) ---

  get availIdx(): number {
    return this.view.getUint16(this.ring.avail + AvailRing.IDX, true);
  }

  set availIdx(value: number) {
    this.view.setUint16(this.ring.avail + AvailRing.IDX, value & U16_MASK, true);
  }

  get availFlags(): number {
    return this.view.getUint16(this.ring.avail + AvailRing.FLAGS, true);
  }

  set availFlags(value: number) {
    this.view.setUint16(this.ring.avail + AvailRing.FLAGS, value, true);
  }

  /** used_event (EVENT_IDX): the used index at which the guest wants an interrupt. */
  get usedEvent(): number {
    return this.view.getUint16(this.ring.avail + AvailRing.usedEvent(this.size), true);
  }

  set usedEvent(value: number) {
    this.view.setUint16(this.ring.avail + AvailRing.usedEvent(this.size), value & U16_MASK, true);
  }

  /** Writes `head` into ring slot `slot` (taken modulo N). */
  setAvailEntry(slot: number, head: number): void {
    const at = this.ring.avail + AvailRing.RING + 2 * (slot & (this.size - 1));
    this.view.setUint16(at, head & U16_MASK, true);
  }

  /** Reads ring slot `slot` (taken modulo N). */
  availEntry(slot: number): number {
    return this.view.getUint16(
      this.ring.avail + AvailRing.RING + 2 * (slot & (this.size - 1)),
      true,
    );
  }

  /** Appends `heads` at avail.idx and publishes the new index. */
  offer(...heads: number[]): void {
    let idx = this.availIdx;
    for (const head of heads) this.setAvailEntry(idx++, head);
    this.availIdx = idx;
  }

  // --- used ring (written by the device) ---

  get usedIdx(): number {
    return this.view.getUint16(this.ring.used + UsedRing.IDX, true);
  }

  get usedFlags(): number {
    return this.view.getUint16(this.ring.used + UsedRing.FLAGS, true);
  }

  /** avail_event (EVENT_IDX): the avail index at which the device wants a kick. */
  get availEvent(): number {
    return this.view.getUint16(this.ring.used + UsedRing.availEvent(this.size), true);
  }

  set availEvent(value: number) {
    this.view.setUint16(this.ring.used + UsedRing.availEvent(this.size), value & U16_MASK, true);
  }

  /** Used element at ring position `i` (taken modulo N). */
  used(i: number): UsedElement {
    const at = this.ring.used + UsedRing.RING + UsedRing.ELEMENT_SIZE * (i & (this.size - 1));
    return {
      id: this.view.getUint32(at + UsedRing.ELEMENT_ID, true),
      len: this.view.getUint32(at + UsedRing.ELEMENT_LEN, true),
    };
  }

  /** The used elements published from index `from` up to used.idx. */
  usedSince(from: number): UsedElement[] {
    const out = [];
    for (let i = from; (i & U16_MASK) !== this.usedIdx; i++) out.push(this.used(i));
    return out;
  }

  /** The bytes of the used ring, avail_event included. */
  get usedRange(): Range {
    return { start: this.ring.used, length: UsedRing.size(this.size) };
  }

  // --- memory ---

  /** A copy of all of guest memory. */
  snapshot(): Uint8Array {
    return this.bytes.slice();
  }

  /** The ranges of bytes that differ from `before`, merged when adjacent. */
  changes(before: Uint8Array): Range[] {
    const ranges: Range[] = [];
    const now = this.bytes;
    let start = -1;
    for (let i = 0; i <= now.length; i++) {
      const differs = i < now.length && now[i] !== before[i];
      if (differs && start < 0) start = i;
      if (!differs && start >= 0) {
        ranges.push({ start, length: i - start });
        start = -1;
      }
    }
    return ranges;
  }

  /**
   * Asserts that guest memory equals `before` everywhere outside `allowed`
   * (byte for byte), and returns the changed ranges.
   */
  assertChangedOnly(before: Uint8Array, allowed: readonly Range[]): Range[] {
    const changed = this.changes(before);
    for (const range of changed) {
      for (let at = range.start; at < range.start + range.length; at++) {
        if (!allowed.some((a) => at >= a.start && at < a.start + a.length)) {
          assert.fail(
            `guest memory changed outside the allowed ranges at ${hex(at)} ` +
              `(changed: ${changed.map(show).join(", ")}; allowed: ${
                allowed.map(show).join(", ")
              })`,
          );
        }
      }
    }
    return changed;
  }

  /** Byte `address` of guest memory. */
  u8(address: number): number {
    return this.bytes[address];
  }
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function show(r: Range): string {
  return `[${hex(r.start)}, +${r.length})`;
}

/** Options of {@linkcode RawGuest.create}. */
export interface RawGuestOptions {
  /** Guest memory size (default 1 MiB). */
  memoryBytes?: number;
  /** Disk size (default 1 MiB). */
  diskBytes?: number;
  readOnly?: boolean;
  /** More device options (queueSize, engine, writeback, …). */
  device?: Partial<BlkDeviceOptions>;
  /**
   * Feature bits 0–31 the guest accepts, masked with the offered ones.
   * Default: everything offered except EVENT_IDX (tests that want it ask).
   */
  features?: number;
  /** Where the ring goes (page aligned; default 0x1000). */
  ringBase?: number;
  /** Run the initialisation sequence (default true). */
  init?: boolean;
  /**
   * The medium: a RAM disk (default), or a memory file the device serves
   * through io_uring (ACRN's `aio=io_uring`), mapped so `medium` is live too.
   */
  medium?: "ram" | "io_uring";
}

/** A request built by {@linkcode RawGuest.request}: where its parts are. */
export interface BuiltRequest {
  readonly head: number;
  readonly header: number;
  /** Data buffer address (0 when there is none). */
  readonly data: number;
  readonly dataLength: number;
  /** Status byte address. */
  readonly status: number;
  /** The device-writable ranges of the chain. */
  readonly writable: Range[];
}

/** Value a test writes into a status byte before submission, to see whether it was written. */
export const STATUS_UNTOUCHED = 0xee;

/** A hand-driven guest in front of a virtio-blk PCI function over a RAM disk (or a mapped file). */
export class RawGuest extends GuestRing {
  readonly disk: VirtioBlkPci;
  /** The disk's bytes, live. */
  readonly medium: Uint8Array;
  /** Allocates request buffers in guest memory after the ring. */
  readonly allocator: GuestAllocator;
  readonly ringBase: number;
  #nextDescriptor = 0;
  readonly #mapped: MappedMedium | undefined;

  private constructor(
    memory: SharedGuestMemory,
    disk: VirtioBlkPci,
    medium: Uint8Array,
    ringBase: number,
    mapped?: MappedMedium,
  ) {
    const size = disk.device.queueSize;
    super(memory, legacyRingAddresses(ringBase, size), size);
    this.disk = disk;
    this.medium = medium;
    this.ringBase = ringBase;
    this.allocator = new GuestAllocator(ringBase + legacyRingSize(size), memory.size);
    this.#mapped = mapped;
  }

  /** Memory, a disk, the device, and (unless `init: false`) an initialised queue 0. */
  static create(options: RawGuestOptions = {}): RawGuest {
    const memory = SharedGuestMemory.allocate(options.memoryBytes ?? 1 << 20);
    const diskBytes = options.diskBytes ?? 1 << 20;
    const mapped = options.medium === "io_uring"
      ? mappedMedium(diskBytes, { aio: "io_uring", readOnly: options.readOnly })
      : undefined;
    const ram = mapped ? undefined : MemoryBackend.create(diskBytes, {
      readOnly: options.readOnly,
    });
    const disk = createVirtioBlkPci(memory, {
      backend: mapped?.backend ?? ram!,
      engine: (context) => new InlineEngine(context),
      ...options.device,
    });
    const guest = new RawGuest(
      memory,
      disk,
      mapped?.bytes ?? new Uint8Array(ram!.buffer),
      options.ringBase ?? LEGACY_QUEUE_ALIGN,
      mapped,
    );
    if (options.init ?? true) guest.init(options.features);
    return guest;
  }

  // --- registers ---

  read(offset: number, size: 1 | 2 | 4): number {
    return this.disk.pci.ioRead(offset, size);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.disk.pci.ioWrite(offset, size, value);
  }

  get status(): number {
    return this.read(LegacyRegister.STATUS, 1);
  }

  /** Reads (and so clears) the ISR. */
  takeIsr(): number {
    return this.read(LegacyRegister.ISR, 1);
  }

  /** Interrupts raised so far. */
  get interrupts(): number {
    return this.disk.transport.interrupts;
  }

  /** Feature bits 0–31 the device offers. */
  get offered(): number {
    return this.read(LegacyRegister.HOST_FEATURES, 4) >>> 0;
  }

  /** The device side of queue 0 (for its fault code and in-flight count). */
  get queue(): SplitQueue {
    return this.disk.device.queue(0);
  }

  /**
   * The legacy initialisation (virtio 1.2 §3.1.1, legacy variant): reset,
   * ACKNOWLEDGE, DRIVER, features, a zeroed ring at `ringBase`, DRIVER_OK.
   * Returns the accepted features.
   */
  init(features = this.offered & ~featureBit(RingFeature.EVENT_IDX)): number {
    this.write(LegacyRegister.STATUS, 1, 0);
    this.write(LegacyRegister.STATUS, 1, DeviceStatus.ACKNOWLEDGE);
    this.write(LegacyRegister.STATUS, 1, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    const accepted = (this.offered & features) >>> 0;
    this.write(LegacyRegister.GUEST_FEATURES, 4, accepted);
    this.bytes.fill(0, this.ringBase, this.ringBase + legacyRingSize(this.size));
    this.write(LegacyRegister.QUEUE_SEL, 2, 0);
    this.write(LegacyRegister.QUEUE_PFN, 4, this.ringBase / 2 ** LEGACY_PFN_SHIFT);
    assert.equal(this.read(LegacyRegister.QUEUE_PFN, 4), this.ringBase / 2 ** LEGACY_PFN_SHIFT);
    this.write(
      LegacyRegister.STATUS,
      1,
      DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK,
    );
    this.#nextDescriptor = 0;
    return accepted;
  }

  /** Kicks queue `queue` (QUEUE_NOTIFY). */
  notify(queue = 0): void {
    this.write(LegacyRegister.QUEUE_NOTIFY, 2, queue);
  }

  /** Offers `heads` and kicks queue 0. */
  submit(...heads: number[]): void {
    this.offer(...heads);
    this.notify();
  }

  // --- memory and requests ---

  /** Allocates `size` bytes of guest memory, filled with `fill`. */
  alloc(size: number, fill = 0, alignment = 16): number {
    const at = this.allocator.alloc(size, alignment);
    this.bytes.fill(fill, at, at + size);
    return at;
  }

  /** Writes a request header {type, ioprio 0, sector} at `address`. */
  writeHeader(address: number, type: number, sector: number | bigint): void {
    this.view.setUint32(address + RequestHeader.TYPE, type >>> 0, true);
    this.view.setUint32(address + RequestHeader.IOPRIO, 0, true);
    setU64(this.view, address + RequestHeader.SECTOR, sector);
  }

  /** Copies `data` into guest memory at `address`. */
  writeBytes(address: number, data: Uint8Array): void {
    this.bytes.set(data, address);
  }

  /** A copy of `length` bytes of guest memory at `address`. */
  readBytes(address: number, length: number): Uint8Array {
    return this.bytes.slice(address, address + length);
  }

  /** `count` descriptor indexes not handed out since the last init (wrapping at N). */
  takeDescriptors(count: number): number[] {
    const out = [];
    for (let i = 0; i < count; i++) out.push(this.#nextDescriptor++ & (this.size - 1));
    return out;
  }

  /**
   * Builds a request in the legacy framing (header, one data buffer when
   * `data` is given, a status byte preset to {@linkcode STATUS_UNTOUCHED}),
   * direct or in an indirect table. Data is device-writable when
   * `dataWritable` (default: for IN and GET_ID, types 0 and 8).
   * Does not offer it.
   */
  request(options: {
    type: number;
    sector?: number | bigint;
    /** Bytes to put in the data buffer, or just its length. */
    data?: Uint8Array | number;
    dataWritable?: boolean;
    indirect?: boolean;
  }): BuiltRequest {
    const header = this.alloc(REQUEST_HEADER_SIZE);
    this.writeHeader(header, options.type, options.sector ?? 0);
    const dataLength = typeof options.data === "number" ? options.data : options.data?.length ?? 0;
    const data = dataLength > 0 ? this.alloc(dataLength, 0, 512) : 0;
    if (options.data instanceof Uint8Array) this.writeBytes(data, options.data);
    const status = this.alloc(1, STATUS_UNTOUCHED);
    const dataWritable = options.dataWritable ?? (options.type === 0 || options.type === 8);
    const buffers: ChainBuffer[] = [{ addr: header, len: REQUEST_HEADER_SIZE }];
    if (dataLength > 0) buffers.push({ addr: data, len: dataLength, write: dataWritable });
    buffers.push({ addr: status, len: 1, write: true });
    const head = options.indirect
      ? this.indirectChain(
        this.takeDescriptors(1)[0],
        this.alloc(DESCRIPTOR_SIZE * buffers.length),
        buffers,
      )
      : this.chain(buffers, this.takeDescriptors(buffers.length));
    const writable = buffers.filter((b) => b.write).map((b) => ({
      start: Number(b.addr),
      length: b.len,
    }));
    return { head, header, data, dataLength, status, writable };
  }

  /** Stops the device's engine (and lets a mapped medium go). */
  async close(): Promise<void> {
    await this.disk.close();
    this.#mapped?.[Symbol.dispose]();
  }
}
