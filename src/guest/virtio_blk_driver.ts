/**
 * The guest-side virtio-blk driver: what Linux's virtio_pci (legacy) and
 * virtio_blk drivers do, in TypeScript. It resets and initialises the
 * device (virtio 1.2 §3.1.1, legacy variant), negotiates features, places the
 * ring page-aligned in guest memory, and submits reads, writes, flushes and
 * GET_ID with direct or indirect descriptors, then reaps the used ring when
 * the device interrupts.
 *
 * It is the project's test client, the built-in guest's block driver and the
 * benchmark's load generator, so it checks the device as strictly as the
 * device checks the guest: a used element for a head that is not in flight,
 * or a used index that runs ahead, is reported as a {@linkcode DeviceFault}.
 *
 * A configuration-change interrupt (ISR bit 1 without DEVICE_NEEDS_RESET)
 * makes it read the capacity again, as Linux's virtio_blk does on a resize
 * or a medium change ({@linkcode VirtioBlkDriver.capacity}).
 *
 * A device that was closed (its function reads all ones, as a removed one
 * does) fails every request still waiting and every later one with a
 * `VirtioBlkError` `CLOSED` naming it: the driver learns it when it reads
 * the ISR after an interrupt, and the close raises one.
 *
 * Works in-process (direct register calls) and from a vCPU Worker (register
 * accesses through the device model's mailbox).
 *
 * Multiqueue (§5.2.3, VIRTIO_BLK_F_MQ): asked for `queues` > 1, the driver
 * negotiates MQ and sets up min(`queues`, num_queues) request queues before
 * DRIVER_OK, as Linux sets up min(num_queues, CPUs); the driver it returns
 * drives queue 0, and {@linkcode VirtioBlkDriver.binding} describes each
 * queue (structured-cloneable) so that another vCPU drives it with a driver
 * of its own ({@linkcode VirtioBlkDriver.attach}), each kick naming its queue
 * in QUEUE_NOTIFY. The queues share the device's one interrupt (legacy INTx).
 *
 * @module
 */

import { DescriptorFlag, DeviceStatus, hasFeature, RingFeature } from "../virtio/spec.ts";
import {
  BlkConfig,
  BlkFeature,
  ID_BYTES,
  REQUEST_HEADER_SIZE,
  RequestHeader,
  RequestType,
} from "../blk/spec.ts";
import { LegacyRegister } from "../virtio/legacy_pci.ts";
import {
  AvailRing,
  Descriptor,
  LEGACY_PFN_SHIFT,
  LEGACY_QUEUE_ALIGN,
  legacyRingAddresses,
  legacyRingSize,
  UsedRing,
} from "../virtio/ring_layout.ts";
import { needEvent } from "../virtio/split_queue.ts";
import { DESCRIPTOR_SIZE } from "../virtio/spec.ts";
import type { SharedGuestMemory } from "../memory/shared_memory.ts";
import { ISR_CONFIG } from "../virtio/transport_state.ts";
import { AdaptivePoll } from "../sync/adaptive_poll.ts";
import { VirtioBlkError } from "../errors.ts";
import type { GuestAllocator } from "./allocator.ts";
import type { InterruptLine, RegisterAccess } from "./io.ts";

/** The device misbehaved (from the driver's point of view). */
export class DeviceFault extends Error {
  /** Always `"DeviceFault"`, what `error.name` and stack traces show. */
  override name = "DeviceFault";
}

/** A request completed with a status other than OK. */
export class RequestFailed extends Error {
  /** Always `"RequestFailed"`, what `error.name` and stack traces show. */
  override name = "RequestFailed";
  /**
   * Reports `operation` as failed with `status`, named in the message.
   *
   * @param operation what was asked
   * @param status the status byte (1 IOERR, 2 UNSUPP, …)
   */
  constructor(readonly operation: string, readonly status: number) {
    super(`${operation} failed with status ${status} (${STATUS_NAMES[status] ?? "unknown"})`);
  }
}

const STATUS_NAMES: Record<number, string> = {
  0: "OK",
  1: "IOERR",
  2: "UNSUPP",
  0xff: "not written",
};

function check(operation: string, completion: Completion): void {
  if (completion.status !== 0) throw new RequestFailed(operation, completion.status);
}

/** What {@linkcode VirtioBlkDriver.init} needs. */
export interface DriverOptions {
  /** The guest's memory (one shared region). */
  readonly memory: SharedGuestMemory;
  /** The device's BAR0 register block. */
  readonly registers: RegisterAccess;
  /** The device's interrupt line. */
  readonly interrupt: InterruptLine;
  /** Where the driver allocates its ring, headers, status bytes and tables. */
  readonly allocator: GuestAllocator;
  /** Accept INDIRECT_DESC and put every request in an indirect table (default false). */
  readonly indirect?: boolean;
  /** Accept EVENT_IDX when offered (default true). */
  readonly eventIdx?: boolean;
  /**
   * Read (and so acknowledge) the ISR after each interrupt, as INTx drivers
   * must (default true). A driver that does not learns neither that the
   * device needs a reset nor that it was closed.
   */
  readonly readIsr?: boolean;
  /**
   * Poll the used ring for up to this many microseconds (an adaptive window,
   * see `src/sync/adaptive_poll.ts`) before sleeping until an interrupt, like
   * a polled block queue; 0 (default) always sleeps.
   */
  readonly pollUs?: number;
  /**
   * Request queues to set up (default 1): more than one negotiates
   * VIRTIO_BLK_F_MQ when offered, and min(this, num_queues) are set up.
   */
  readonly queues?: number;
}

/** What a driver on another thread needs to drive one of the queues (structured-cloneable). */
export interface QueueBinding {
  /** The queue's index (QUEUE_SEL, and the value its kicks write to QUEUE_NOTIFY). */
  readonly queue: number;
  /** Guest-physical address of the ring (legacy layout, page-aligned). */
  readonly ring: number;
  /** Entries in the ring. */
  readonly size: number;
  /** Request headers, one per descriptor. */
  readonly headers: number;
  /** Status bytes, one per descriptor. */
  readonly statuses: number;
  /** Indirect tables, one per descriptor (0 without INDIRECT_DESC). */
  readonly tables: number;
  /** The device as the initialising driver read it. */
  readonly info: DiskInfo;
}

/** The device's configuration as the driver read it. */
export interface DiskInfo {
  /** Capacity in 512-byte sectors, at initialisation ({@linkcode VirtioBlkDriver.capacity} is live). */
  readonly capacity: number;
  /** Most data buffers one request may have: config seg_max, or 1 without SEG_MAX (§5.2.4). */
  readonly segMax: number;
  /** config blk_size with BLK_SIZE negotiated, else 512. */
  readonly logicalBlockSize: number;
  /** The logical size × 2^physical_block_exp with TOPOLOGY negotiated, else the logical size. */
  readonly physicalBlockSize: number;
  /** Whether the device offered VIRTIO_BLK_F_RO: it fails writes with IOERR. */
  readonly readOnly: boolean;
  /** Write cache on (write-back) at the time it was read. */
  readonly writeback: boolean;
  /** Feature bits the driver accepted. */
  readonly features: number;
  /** Entries in the first queue (legacy QUEUE_NUM). */
  readonly queueSize: number;
  /** Request queues the driver set up (1 unless it asked for more and MQ was negotiated). */
  readonly queues: number;
}

/** A request's outcome. */
export interface Completion {
  /** Status byte the device wrote. */
  readonly status: number;
  /** The used element's len. */
  readonly usedLength: number;
}

/** Called for each reaped request: its token (head index), status and used length. */
export type CompletionHandler = (token: number, status: number, usedLength: number) => void;

/**
 * An operation written once for both kinds of waiting: it yields when it
 * must wait for the device and is resumed with whether the wait succeeded
 * (false: timed out).
 */
type Steps<T> = Generator<void, T, boolean>;

/** Data buffers of a request, in guest memory. */
export interface Buffers {
  /** Buffers used: the first `count` entries of `address` and `length`. */
  readonly count: number;
  /** Guest-physical address of each buffer. */
  readonly address: ArrayLike<number>;
  /** Length in bytes of each buffer (a READ or WRITE's total must be a multiple of 512). */
  readonly length: ArrayLike<number>;
}

const NO_BUFFERS: Buffers = { count: 0, address: [], length: [] };

/** Features this driver knows how to use. */
const DRIVER_FEATURES = (1 << BlkFeature.SEG_MAX) | (1 << BlkFeature.BLK_SIZE) |
  (1 << BlkFeature.TOPOLOGY) | (1 << BlkFeature.FLUSH) | (1 << BlkFeature.CONFIG_WCE) |
  (1 << BlkFeature.RO);

/** Most request queues the driver sets up (num_queues is a 16-bit field). */
const MAX_DRIVER_QUEUES = 0xffff;

const U16_MASK = 0xffff;
/** What a byte register of a function that is gone (closed, removed) reads. */
const GONE_BYTE = 0xff;
/** Written into the status byte before submission, so an unwritten status shows. */
export const STATUS_NOT_WRITTEN = 0xff;

/** A virtio-blk driver bound to one device. */
export class VirtioBlkDriver {
  /** The device as configured when the driver was initialised. */
  readonly info: DiskInfo;
  readonly #registers: RegisterAccess;
  readonly #interrupt: InterruptLine;
  readonly #allocator: GuestAllocator;
  readonly #readIsr: boolean;
  readonly #memory: SharedGuestMemory;
  readonly #bytes: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #view: DataView;
  readonly #size: number;
  readonly #useIndirect: boolean;
  readonly #eventIdx: boolean;
  readonly #desc: number;
  readonly #avail: number;
  readonly #used: number;
  readonly #headers: number;
  readonly #statuses: number;
  readonly #tables: number;
  readonly #tableStride: number;
  readonly #queue: number;
  readonly #bindings: readonly QueueBinding[];
  // The driver's own copy of its chains (it never trusts ring memory for these).
  readonly #next: Uint16Array;
  readonly #chainLength: Uint16Array;
  readonly #inFlight: Uint8Array;
  readonly #freeList: Uint16Array;
  #freeCount: number;
  #availIdx = 0;
  #kickedIdx = 0;
  #lastUsed = 0;
  #outstanding = 0;
  readonly #callbacks: (CompletionHandler | undefined)[];
  #needsReset = false;
  /** Set once a register read showed the device gone; every request then fails with it. */
  #closed: VirtioBlkError | undefined;
  /** The interrupt count the ISR was last read at. */
  #acknowledged = 0;
  /** The capacity as last read from config space. */
  #capacity: number;
  /** Configuration-change interrupts seen. */
  #configChanges = 0;
  /** Reap passes that found completions (an awaited operation may have been among them). */
  #reaps = 0;
  /** Calls of wait() asleep now. */
  #asyncWaiters = 0;
  #poll: AdaptivePoll;
  readonly #completionsReady = (): boolean =>
    this.hasCompletions || this.#needsReset || this.#closed !== undefined;

  private constructor(
    options: Omit<DriverOptions, "queues" | "indirect" | "eventIdx">,
    binding: QueueBinding,
    bindings: readonly QueueBinding[],
  ) {
    this.#registers = options.registers;
    this.#interrupt = options.interrupt;
    this.#allocator = options.allocator;
    this.#readIsr = options.readIsr ?? true;
    this.#poll = new AdaptivePoll((options.pollUs ?? 0) * 1000);
    this.#memory = options.memory;
    // The region's views cover all of it, up to 4 GiB (2^32 >>> 1 would be 0).
    const region = options.memory.regions[0];
    this.#bytes = region.bytes;
    this.#u16 = region.u16;
    this.#u32 = region.u32;
    this.#view = new DataView(options.memory.buffer);
    const { info, size } = binding;
    this.info = info;
    this.#capacity = info.capacity;
    this.#queue = binding.queue;
    this.#bindings = bindings;
    this.#useIndirect = hasFeature(info.features, RingFeature.INDIRECT_DESC);
    this.#eventIdx = hasFeature(info.features, RingFeature.EVENT_IDX);
    this.#size = size;
    const parts = legacyRingAddresses(binding.ring, size);
    this.#desc = parts.desc;
    this.#avail = parts.avail;
    this.#used = parts.used;
    this.#headers = binding.headers;
    this.#statuses = binding.statuses;
    this.#tableStride = DESCRIPTOR_SIZE * (info.segMax + 2);
    this.#tables = binding.tables;
    this.#next = new Uint16Array(size);
    this.#chainLength = new Uint16Array(size);
    this.#inFlight = new Uint8Array(size);
    this.#freeList = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.#freeList[i] = size - 1 - i;
    this.#freeCount = size;
    this.#callbacks = new Array(size).fill(undefined);
  }

  /**
   * §3.1.1 (legacy): reset, ACKNOWLEDGE, DRIVER, features, queues,
   * DRIVER_OK. Returns the binding of each queue set up.
   */
  static #initDevice(options: DriverOptions): QueueBinding[] {
    const r = options.registers;
    const fail = () => r.write(LegacyRegister.STATUS, 1, DeviceStatus.FAILED);
    r.write(LegacyRegister.STATUS, 1, 0);
    r.write(LegacyRegister.STATUS, 1, DeviceStatus.ACKNOWLEDGE);
    r.write(LegacyRegister.STATUS, 1, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    // A live device shows the bits just written; a closed one reads all ones.
    if (r.read(LegacyRegister.STATUS, 1) === GONE_BYTE) throw closedError(r);
    const offered = r.read(LegacyRegister.HOST_FEATURES, 4) >>> 0;
    const wantedQueues = Math.min(Math.max(1, options.queues ?? 1), MAX_DRIVER_QUEUES);
    let wanted = DRIVER_FEATURES;
    if (options.indirect) wanted |= 1 << RingFeature.INDIRECT_DESC;
    if (options.eventIdx ?? true) wanted |= 1 << RingFeature.EVENT_IDX;
    if (wantedQueues > 1) wanted |= 1 << BlkFeature.MQ;
    const features = (offered & wanted) >>> 0;
    r.write(LegacyRegister.GUEST_FEATURES, 4, features);
    const offeredQueues = hasFeature(features, BlkFeature.MQ)
      ? r.read(LegacyRegister.CONFIG + BlkConfig.NUM_QUEUES, 2)
      : 1;
    if (offeredQueues === 0) {
      fail();
      throw new DeviceFault("device offers VIRTIO_BLK_F_MQ with num_queues 0");
    }
    const queues = Math.min(wantedQueues, offeredQueues);
    const useIndirect = hasFeature(features, RingFeature.INDIRECT_DESC);
    const alloc = options.allocator;
    const base = options.memory.regions[0].gpa;
    const bytes = options.memory.regions[0].bytes;
    const rings: { ring: number; size: number }[] = [];
    for (let queue = 0; queue < queues; queue++) {
      r.write(LegacyRegister.QUEUE_SEL, 2, queue);
      const size = r.read(LegacyRegister.QUEUE_NUM, 2);
      if (size === 0 || (size & (size - 1)) !== 0) {
        fail();
        throw new DeviceFault(`device reports queue ${queue} size ${size}`);
      }
      const ringBytes = legacyRingSize(size);
      const ring = alloc.alloc(ringBytes, LEGACY_QUEUE_ALIGN);
      bytes.fill(0, ring - base, ring - base + ringBytes);
      r.write(LegacyRegister.QUEUE_PFN, 4, ring / 2 ** LEGACY_PFN_SHIFT);
      if (r.read(LegacyRegister.QUEUE_PFN, 4) !== ring / 2 ** LEGACY_PFN_SHIFT) {
        fail();
        throw new DeviceFault(`device refused queue ${queue}'s ring at ${ring}`);
      }
      rings.push({ ring, size });
    }
    const info = readInfo(r, features, rings[0].size, queues);
    const bindings = rings.map(({ ring, size }, queue) => ({
      queue,
      ring,
      size,
      headers: alloc.alloc(REQUEST_HEADER_SIZE * size, 16),
      statuses: alloc.alloc(size, 16),
      tables: useIndirect ? alloc.alloc(DESCRIPTOR_SIZE * (info.segMax + 2) * size, 16) : 0,
      info,
    }));
    r.write(
      LegacyRegister.STATUS,
      1,
      DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK,
    );
    return bindings;
  }

  /**
   * Resets and initialises the device (with `options.queues` request queues
   * where the device offers them) and returns a driver bound to queue 0.
   */
  static init(options: DriverOptions): VirtioBlkDriver {
    const bindings = VirtioBlkDriver.#initDevice(options);
    return new VirtioBlkDriver(options, bindings[0], bindings);
  }

  /**
   * A driver for one queue of a device another driver initialised (a
   * {@linkcode binding} of it), on this thread's view of the same guest
   * memory and registers. It drives only its queue; its allocator must not
   * hand out what the initialising driver's allocator hands out.
   */
  static attach(
    options: Omit<DriverOptions, "queues" | "indirect" | "eventIdx">,
    binding: QueueBinding,
  ): VirtioBlkDriver {
    return new VirtioBlkDriver(options, binding, [binding]);
  }

  /** The queue this driver drives. */
  get queue(): number {
    return this.#queue;
  }

  /** Queue `index`'s binding, for a driver on another thread ({@linkcode attach}). */
  binding(index: number): QueueBinding {
    const binding = this.#bindings.find((b) => b.queue === index);
    if (binding === undefined) {
      throw new RangeError(`queue ${index} was not set up (${this.info.queues} queue(s))`);
    }
    return binding;
  }

  /** Queue size. */
  get queueSize(): number {
    return this.#size;
  }

  /** Requests submitted and not yet reaped. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /**
   * Whether the driver found the device closed: its registers read all ones.
   * Requests then fail with a `VirtioBlkError` `CLOSED`.
   */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /**
   * Capacity in 512-byte sectors: read at initialisation, and again at each
   * configuration-change interrupt the driver acknowledged (it does when it
   * waits for a request, or at {@linkcode acknowledgeInterrupts}).
   */
  get capacity(): number {
    return this.#capacity;
  }

  /** Configuration-change interrupts the driver has seen (a resize, a medium change). */
  get configChanges(): number {
    return this.#configChanges;
  }

  /**
   * Reads the ISR for interrupts raised since it was last read, as an idle
   * driver's interrupt handler would: learns of configuration changes (and
   * of a reset request or a closed device) without a request in flight.
   */
  acknowledgeInterrupts(): void {
    this.#acknowledge();
  }

  /** Whether the device signalled DEVICE_NEEDS_RESET. */
  get needsReset(): boolean {
    return this.#needsReset;
  }

  /** Whether requests go into indirect tables. */
  get usesIndirect(): boolean {
    return this.#useIndirect;
  }

  /** Whether a request with `segments` data buffers can be submitted now. */
  hasRoom(segments: number): boolean {
    return this.#freeCount >= (this.#useIndirect ? 1 : segments + 2);
  }

  /** Reads the live write-cache mode from config space. */
  get writeback(): boolean {
    return this.#registers.read(LegacyRegister.CONFIG + BlkConfig.WRITEBACK, 1) === 1;
  }

  /** Turns the device's write cache on or off (needs CONFIG_WCE). */
  set writeback(on: boolean) {
    this.#registers.write(LegacyRegister.CONFIG + BlkConfig.WRITEBACK, 1, on ? 1 : 0);
  }

  /** The device status register. */
  get deviceStatus(): number {
    return this.#registers.read(LegacyRegister.STATUS, 1);
  }

  /**
   * Places a request on the available ring (without notifying the device;
   * see {@linkcode kick}). Returns its token (the head descriptor index), or
   * -1 when the ring has no room. `buffers` are the data buffers: written by
   * the device for IN and GET_ID, read by it otherwise.
   */
  submit(
    type: number,
    sector: number,
    buffers: Buffers = NO_BUFFERS,
    onComplete?: CompletionHandler,
  ): number {
    if (this.#closed) throw this.#closed;
    const count = buffers.count;
    if (count > this.info.segMax) {
      throw new RangeError(`${count} segments exceed the device's seg_max ${this.info.segMax}`);
    }
    const total = count + 2;
    if (!this.#useIndirect && total > this.#size) {
      // It would wait for ring space that can never be free.
      throw new RangeError(
        `${count} segments need ${total} descriptors; the ring has ${this.#size}`,
      );
    }
    if (!this.hasRoom(count)) return -1;
    const dataFlags = type === RequestType.IN || type === RequestType.GET_ID
      ? DescriptorFlag.WRITE
      : 0;
    const head = this.#freeList[--this.#freeCount];
    const header = this.#headers + REQUEST_HEADER_SIZE * head;
    const status = this.#statuses + head;
    const h = this.#offset(header);
    this.#view.setUint32(h + RequestHeader.TYPE, type, true);
    this.#view.setUint32(h + RequestHeader.IOPRIO, 0, true);
    this.#setU64(h + RequestHeader.SECTOR, sector);
    this.#bytes[this.#offset(status)] = STATUS_NOT_WRITTEN;

    if (this.#useIndirect) {
      const table = this.#tables + this.#tableStride * head;
      this.#writeDescriptor(table, 0, header, REQUEST_HEADER_SIZE, DescriptorFlag.NEXT, 1);
      for (let i = 0; i < count; i++) {
        this.#writeDescriptor(
          table,
          i + 1,
          buffers.address[i],
          buffers.length[i],
          dataFlags | DescriptorFlag.NEXT,
          i + 2,
        );
      }
      this.#writeDescriptor(table, count + 1, status, 1, DescriptorFlag.WRITE, 0);
      this.#writeDescriptor(
        this.#desc,
        head,
        table,
        DESCRIPTOR_SIZE * total,
        DescriptorFlag.INDIRECT,
        0,
      );
      this.#chainLength[head] = 1;
    } else {
      let index = head;
      for (let i = 0; i < total; i++) {
        const last = i === total - 1;
        const next = last ? 0 : this.#freeList[--this.#freeCount];
        const flags = last ? DescriptorFlag.WRITE : i === 0 ? 0 : dataFlags;
        const address = i === 0 ? header : last ? status : buffers.address[i - 1];
        const length = i === 0 ? REQUEST_HEADER_SIZE : last ? 1 : buffers.length[i - 1];
        this.#writeDescriptor(
          this.#desc,
          index,
          address,
          length,
          flags | (last ? 0 : DescriptorFlag.NEXT),
          next,
        );
        this.#next[index] = next;
        index = next;
      }
      this.#chainLength[head] = total;
    }
    this.#inFlight[head] = 1;
    this.#callbacks[head] = onComplete;
    this.#outstanding++;
    const slot = this.#avail + AvailRing.RING + 2 * (this.#availIdx & (this.#size - 1));
    this.#u16[this.#offset(slot) >>> 1] = head;
    this.#availIdx = (this.#availIdx + 1) & U16_MASK;
    Atomics.store(this.#u16, this.#offset(this.#avail + AvailRing.IDX) >>> 1, this.#availIdx);
    return head;
  }

  /**
   * Notifies the device of what was submitted since the last kick, unless
   * it asked not to be (used.flags NO_NOTIFY, or avail_event with EVENT_IDX).
   * Returns whether QUEUE_NOTIFY was written.
   */
  kick(): boolean {
    const newIdx = this.#availIdx;
    const oldIdx = this.#kickedIdx;
    if (newIdx === oldIdx) return false;
    this.#kickedIdx = newIdx;
    let notify: boolean;
    if (this.#eventIdx) {
      const event = Atomics.load(
        this.#u16,
        this.#offset(this.#used + UsedRing.availEvent(this.#size)) >>> 1,
      );
      notify = needEvent(event, newIdx, oldIdx);
    } else {
      notify = (Atomics.load(this.#u16, this.#offset(this.#used + UsedRing.FLAGS) >>> 1) & 1) === 0;
    }
    if (notify) this.#registers.write(LegacyRegister.QUEUE_NOTIFY, 2, this.#queue);
    return notify;
  }

  /** Whether the used ring holds completions not yet reaped. */
  get hasCompletions(): boolean {
    return Atomics.load(this.#u16, this.#offset(this.#used + UsedRing.IDX) >>> 1) !==
      this.#lastUsed;
  }

  /**
   * Takes every completion off the used ring, frees its descriptors and
   * reports it to the handler given at submission, or else to `handler`.
   * Returns how many were reaped. Throws {@linkcode DeviceFault} when the
   * device returned something it was not given.
   */
  reap(handler?: CompletionHandler): number {
    const usedIdxAt = this.#offset(this.#used + UsedRing.IDX) >>> 1;
    let reaped = 0;
    for (;;) {
      const usedIdx = Atomics.load(this.#u16, usedIdxAt);
      if (usedIdx === this.#lastUsed) break;
      if (((usedIdx - this.#lastUsed) & U16_MASK) > this.#outstanding) {
        throw new DeviceFault(
          `used.idx ${usedIdx} runs ahead of ${this.#outstanding} outstanding requests`,
        );
      }
      while (this.#lastUsed !== usedIdx) {
        const element = this.#offset(
          this.#used + UsedRing.RING + UsedRing.ELEMENT_SIZE * (this.#lastUsed & (this.#size - 1)),
        );
        const id = this.#u32[(element + UsedRing.ELEMENT_ID) >>> 2];
        const length = this.#u32[(element + UsedRing.ELEMENT_LEN) >>> 2];
        if (id >= this.#size || this.#inFlight[id] !== 1) {
          throw new DeviceFault(`device returned head ${id}, which is not in flight`);
        }
        const status = this.#bytes[this.#offset(this.#statuses + id)];
        this.#release(id);
        this.#lastUsed = (this.#lastUsed + 1) & U16_MASK;
        reaped++;
        const callback = this.#callbacks[id];
        this.#callbacks[id] = undefined;
        (callback ?? handler)?.(id, status, length);
      }
      // Operations awaiting wait() whose completions this reap handled wake
      // to see them: no interrupt is coming for them any more.
      this.#reaps++;
      if (this.#asyncWaiters > 0) this.#interrupt.wakeWaiters();
      if (this.#eventIdx) {
        // Ask for an interrupt at the very next completion (§2.7.10).
        Atomics.store(
          this.#u16,
          this.#offset(this.#avail + AvailRing.usedEvent(this.#size)) >>> 1,
          this.#lastUsed,
        );
      }
    }
    return reaped;
  }

  /**
   * Blocks until the used ring has completions (or the device needs a reset),
   * or `timeoutMs` passes. Returns whether there is something to reap.
   * Throws a `VirtioBlkError` `CLOSED` when nothing is there and the device
   * was closed: nothing will come.
   */
  waitSync(timeoutMs = Infinity): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seen = this.#acknowledge();
      if (this.#completionsReady()) return this.#ready();
      if (this.#poll.spin(this.#completionsReady)) return this.#ready();
      const asleep = performance.now();
      const left = deadline - asleep;
      if (left <= 0) return false;
      this.#interrupt.waitSync(seen, left);
      this.#poll.slept((performance.now() - asleep) * 1e6);
    }
  }

  /** The polling cap of {@linkcode waitSync} in microseconds (0: always sleep). */
  get pollUs(): number {
    return this.#poll.maxNs / 1000;
  }

  set pollUs(us: number) {
    this.#poll = new AdaptivePoll(us * 1000);
  }

  /** Like {@linkcode waitSync} without blocking the thread. */
  async wait(timeoutMs = Infinity): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    // Another operation's reap may take this one's completion: that counts.
    const reaps = this.#reaps;
    for (;;) {
      const seen = this.#acknowledge();
      if (this.#completionsReady() || this.#reaps !== reaps) return this.#ready();
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.#asyncWaiters++;
      try {
        await this.#interrupt.wait(seen, left);
      } finally {
        this.#asyncWaiters--;
      }
    }
  }

  /** True for a wait that found work; throws when it found only a closed device. */
  #ready(): boolean {
    if (this.#closed && !this.hasCompletions) throw this.#closed;
    return true;
  }

  /** Submits one request, kicks, and blocks until it completes. */
  executeSync(
    type: number,
    sector: number,
    buffers: Buffers = NO_BUFFERS,
    timeoutMs = 10_000,
  ): Completion {
    return this.#blocking(this.#execute(type, sector, buffers), timeoutMs);
  }

  /** Submits one request, kicks, and resolves when it completes. */
  execute(
    type: number,
    sector: number,
    buffers: Buffers = NO_BUFFERS,
    timeoutMs = 10_000,
  ): Promise<Completion> {
    return this.#waiting(this.#execute(type, sector, buffers), timeoutMs);
  }

  /** Reads `length` bytes (a multiple of 512) at `sector`. */
  read(sector: number, length: number): Promise<Uint8Array> {
    return this.#waiting(this.#read(sector, length));
  }

  /** Writes `data` (a multiple of 512 bytes) at `sector`. */
  write(sector: number, data: Uint8Array): Promise<void> {
    return this.#waiting(this.#write(sector, data));
  }

  /** Asks the device to make every completed write stable. */
  flush(): Promise<void> {
    return this.#waiting(this.#flush());
  }

  /** The device serial (GET_ID). */
  getId(): Promise<string> {
    return this.#waiting(this.#getId());
  }

  /** {@linkcode read}, blocking (for Workers). */
  readSync(sector: number, length: number): Uint8Array {
    return this.#blocking(this.#read(sector, length));
  }

  /** {@linkcode write}, blocking (for Workers). */
  writeSync(sector: number, data: Uint8Array): void {
    this.#blocking(this.#write(sector, data));
  }

  /** {@linkcode flush}, blocking (for Workers). */
  flushSync(): void {
    this.#blocking(this.#flush());
  }

  /** {@linkcode getId}, blocking (for Workers). */
  getIdSync(): string {
    return this.#blocking(this.#getId());
  }

  // Each operation is written once, as steps that yield whenever they must
  // wait for the device; #blocking and #waiting drive the steps with waitSync
  // (Workers) or wait (any thread). A wait that fails (the device was closed)
  // is thrown into the steps at their yield, so they free what they hold.

  /** Runs `steps`, blocking the thread at each wait. */
  #blocking<T>(steps: Steps<T>, timeoutMs = 10_000): T {
    let step = steps.next();
    while (!step.done) {
      let ready: boolean;
      try {
        ready = this.waitSync(timeoutMs);
      } catch (error) {
        step = steps.throw(error);
        continue;
      }
      step = steps.next(ready);
    }
    return step.value;
  }

  /** Runs `steps`, awaiting at each wait. */
  async #waiting<T>(steps: Steps<T>, timeoutMs = 10_000): Promise<T> {
    let step = steps.next();
    while (!step.done) {
      let ready: boolean;
      try {
        ready = await this.wait(timeoutMs);
      } catch (error) {
        step = steps.throw(error);
        continue;
      }
      step = steps.next(ready);
    }
    return step.value;
  }

  *#execute(type: number, sector: number, buffers: Buffers): Steps<Completion> {
    let result: Completion | undefined;
    const done: CompletionHandler = (_, status, usedLength) => (result = { status, usedLength });
    while (this.submit(type, sector, buffers, done) < 0) {
      if (!(yield)) throw new DeviceFault("timed out waiting for ring space");
      this.reap();
    }
    this.kick();
    while (result === undefined) {
      this.reap();
      if (result !== undefined) break;
      if (this.#needsReset) throw new DeviceFault("device needs reset");
      if (!(yield)) throw new DeviceFault("timed out waiting for a completion");
    }
    return result;
  }

  *#read(sector: number, length: number): Steps<Uint8Array> {
    const buffers = this.#bounce(length);
    try {
      check("read", yield* this.#execute(RequestType.IN, sector, buffers));
      return this.#copyOut(buffers, length);
    } finally {
      this.#allocator.free(buffers.address[0]);
    }
  }

  *#write(sector: number, data: Uint8Array): Steps<void> {
    const buffers = this.#bounce(data.length);
    try {
      this.#bytes.set(data, this.#offset(buffers.address[0]));
      check("write", yield* this.#execute(RequestType.OUT, sector, buffers));
    } finally {
      this.#allocator.free(buffers.address[0]);
    }
  }

  *#flush(): Steps<void> {
    check("flush", yield* this.#execute(RequestType.FLUSH, 0, NO_BUFFERS));
  }

  *#getId(): Steps<string> {
    const buffers = this.#bounce(ID_BYTES);
    try {
      check("get-id", yield* this.#execute(RequestType.GET_ID, 0, buffers));
      return decodeSerial(this.#copyOut(buffers, ID_BYTES));
    } finally {
      this.#allocator.free(buffers.address[0]);
    }
  }

  /** A bounce buffer of `length` bytes in guest memory; the caller frees it. */
  #bounce(length: number): Buffers {
    if (length <= 0) throw new RangeError(`a transfer of ${length} bytes`);
    return { count: 1, address: [this.#allocator.alloc(length, 512)], length: [length] };
  }

  #copyOut(buffers: Buffers, length: number): Uint8Array {
    const from = this.#offset(buffers.address[0]);
    return this.#bytes.slice(from, from + length);
  }

  /** Resets the device (STATUS = 0); the driver must not be used afterwards. */
  resetDevice(): void {
    this.#registers.write(LegacyRegister.STATUS, 1, 0);
  }

  /** Guest memory offset of a guest-physical address (the memory starts at its base GPA). */
  #offset(gpa: number): number {
    return gpa - this.#memory.regions[0].gpa;
  }

  #writeDescriptor(
    table: number,
    index: number,
    address: number,
    length: number,
    flags: number,
    next: number,
  ): void {
    const at = this.#offset(table + DESCRIPTOR_SIZE * index);
    this.#setU64(at + Descriptor.ADDR, address);
    this.#view.setUint32(at + Descriptor.LEN, length, true);
    this.#view.setUint16(at + Descriptor.FLAGS, flags, true);
    this.#view.setUint16(at + Descriptor.NEXT, next, true);
  }

  #setU64(at: number, value: number): void {
    this.#view.setUint32(at, value % 2 ** 32, true);
    this.#view.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
  }

  #release(head: number): void {
    this.#inFlight[head] = 0;
    this.#outstanding--;
    let index = head;
    for (let i = 0; i < this.#chainLength[head]; i++) {
      this.#freeList[this.#freeCount++] = index;
      index = this.#next[index];
    }
  }

  /**
   * Legacy INTx: read the ISR to de-assert the line and learn of config
   * changes, once per interrupt counted since the last read, however it
   * came: also one raised before the driver waited (an in-process device
   * serves a kick before kick() returns). Returns the interrupt count, to
   * wait for it to change.
   */
  #acknowledge(): number {
    const count = this.#interrupt.count;
    if (count === this.#acknowledged || !this.#readIsr) return count;
    this.#acknowledged = count;
    const isr = this.#registers.read(LegacyRegister.ISR, 1);
    if (isr === GONE_BYTE) {
      this.#closed ??= closedError(this.#registers);
    } else if (isr & ISR_CONFIG) {
      // A config interrupt: the device needs a reset, or (the ISR word read by an I/O event
      // on the vCPU itself) the function was closed, and its status reads all ones.
      // Otherwise the configuration changed (a resize, a medium change): read it again.
      const status = this.#registers.read(LegacyRegister.STATUS, 1);
      if (status === GONE_BYTE) this.#closed ??= closedError(this.#registers);
      else if (status & DeviceStatus.DEVICE_NEEDS_RESET) this.#needsReset = true;
      else {
        this.#capacity = readCapacity(this.#registers);
        this.#configChanges++;
      }
    }
    return count;
  }
}

/** config capacity (u64, two 32-bit reads: legacy config has no generation counter). */
function readCapacity(r: RegisterAccess): number {
  const low = r.read(LegacyRegister.CONFIG + BlkConfig.CAPACITY, 4) >>> 0;
  return low + (r.read(LegacyRegister.CONFIG + BlkConfig.CAPACITY + 4, 4) >>> 0) * 2 ** 32;
}

/** The device's configuration, read once the features are negotiated. */
function readInfo(
  r: RegisterAccess,
  features: number,
  queueSize: number,
  queues: number,
): DiskInfo {
  const config = (offset: number, size: 1 | 2 | 4) =>
    r.read(LegacyRegister.CONFIG + offset, size) >>> 0;
  const capacity = readCapacity(r);
  const logical = hasFeature(features, BlkFeature.BLK_SIZE) ? config(BlkConfig.BLK_SIZE, 4) : 512;
  const exp = hasFeature(features, BlkFeature.TOPOLOGY)
    ? config(BlkConfig.PHYSICAL_BLOCK_EXP, 1)
    : 0;
  return {
    capacity,
    segMax: hasFeature(features, BlkFeature.SEG_MAX) ? config(BlkConfig.SEG_MAX, 4) : 1,
    logicalBlockSize: logical,
    physicalBlockSize: logical * 2 ** exp,
    readOnly: hasFeature(features, BlkFeature.RO),
    writeback: hasFeature(features, BlkFeature.CONFIG_WCE) &&
      config(BlkConfig.WRITEBACK, 1) === 1,
    features,
    queueSize,
    queues,
  };
}

/** The error of every request to a device whose registers read all ones: it was closed. */
function closedError(registers: RegisterAccess): VirtioBlkError {
  return new VirtioBlkError(
    "CLOSED",
    `${registers.name ?? "the virtio-blk device"} is closed (its registers read all ones)`,
  );
}

/** The serial from a GET_ID answer: up to 20 bytes, NUL-terminated unless exactly 20. */
export function decodeSerial(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.subarray(0, Math.min(end < 0 ? ID_BYTES : end, ID_BYTES)));
}
