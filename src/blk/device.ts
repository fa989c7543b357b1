/**
 * The virtio-blk device (virtio 1.2 §5.2): its feature set, configuration
 * space, write-cache state, serial, and its request queues, whose requests
 * an engine executes. It knows nothing of the transport that exposes it
 * (legacy PCI, vhost-user).
 *
 * Its medium may change while the guest runs ({@linkcode VirtioBlkDevice.changeMedium}):
 * a resize (the same file at a new size), a medium inserted into an empty
 * drive or ejected from it. The capacity in config space changes with it
 * and the transport tells the driver (a configuration-change notification,
 * §2.5.1 / §4.1.4.5); features stay as they were offered.
 *
 * @module
 */

import type { BackendSpec } from "../backend/backend.ts";
import { noMedium } from "../backend/no_medium.ts";
import { VirtioBlkError } from "../errors.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { VirtioDevice } from "../virtio/device.ts";
import type { DoorbellHandle } from "../virtio/doorbell.ts";
import { QueueStateBuffer } from "../virtio/queue_state.ts";
import { isValidQueueSize, RingFeature } from "../virtio/spec.ts";
import { SplitQueue } from "../virtio/split_queue.ts";
import type { InterruptSink } from "../virtio/transport_state.ts";
import { BlkState } from "./blk_state.ts";
import { buildConfigImage, readImage, setCapacity } from "./config_space.ts";
import type { EngineFactory, InterruptHandle, MediumChange, RequestEngine } from "./engine.ts";
import { InlineEngine } from "./inline_engine.ts";
import { MediumErrors } from "./medium_errors.ts";
import { defaultSerial, serialBytes } from "./serial.ts";
import type { RangeLimits, RequestLimits, WriteZeroesLimits } from "./request.ts";
import {
  BlkConfig,
  BlkFeature,
  MAX_RANGE_SEGMENTS,
  SECTOR_SIZE,
  U32_MAX,
  VIRTIO_ID_BLOCK,
} from "./spec.ts";

/** ACRN's ring size for virtio-blk (VIRTIO_BLK_RINGSZ). */
export const DEFAULT_QUEUE_SIZE = 64;

/** Most request queues a device may have (a bound of ours; ACRN caps `mq=` at the vCPU count). */
export const MAX_QUEUES = 16;

/**
 * ACRN's `discard[=max_discard_sectors:max_discard_seg:discard_sector_alignment]`:
 * the device offers VIRTIO_BLK_F_DISCARD (where its medium can give space
 * back) with these limits; a field left out takes ACRN's default.
 */
export interface DiscardOptions {
  /** Most sectors one segment may cover, 1 to 2^32 − 1 (default: the capacity, at most 2^32 − 1). */
  readonly maxSectors?: number;
  /** Most segments one request may have, 1 to 256 (default 1). */
  readonly maxSegments?: number;
  /** A segment's first sector must be a multiple of this, 0 to 2^32 − 1 (default 0: any). */
  readonly alignment?: number;
}

/** How a block device is configured. */
export interface BlkDeviceOptions {
  /** The medium. */
  readonly backend: BackendSpec;
  /** Queue size, a power of two (default 64, as ACRN). */
  readonly queueSize?: number;
  /** Most data segments per request (default queueSize − 2, so a request fits the ring). */
  readonly segMax?: number;
  /** Start with the write cache on (`writeback`); default write-through (`writethru`). */
  readonly writeback?: boolean;
  /** The GET_ID serial (at most 20 printable ASCII characters). */
  readonly serial?: string;
  /**
   * The option string the default serial is derived from, as ACRN does (the
   * command line passes everything after `virtio-blk,`). Without it the
   * medium's name is: a file's path and window, a RAM disk's own random name.
   */
  readonly optionString?: string;
  /** Logical block size (`sectorsize=`), default 512. */
  readonly logicalBlockSize?: number;
  /** Physical block size, default the logical one. */
  readonly physicalBlockSize?: number;
  /** Offer VIRTIO_RING_F_EVENT_IDX (default true). */
  readonly eventIdx?: boolean;
  /**
   * ACRN's `discard`: offer DISCARD (virtio 1.2 §5.2.6) with these limits,
   * where the medium can give space back (its capabilities) and is
   * writable. WRITE_ZEROES is offered whenever the medium is writable and
   * can zero ranges, with the same limits (default without `discard`: the
   * capacity per segment, one segment); its unmap flag deallocates only
   * where DISCARD is offered (write_zeroes_may_unmap).
   */
  readonly discard?: DiscardOptions;
  /**
   * Hold a request back while an earlier overlapping request is in flight
   * and one of the two changes the medium, so they take effect in
   * submission order (default true). False is ACRN's `no_bst_block`.
   */
  readonly orderOverlapping?: boolean;
  /**
   * Request queues (default 1). More than one offers VIRTIO_BLK_F_MQ with
   * `num_queues` in config space (§5.2.3, §5.2.4).
   */
  readonly queues?: number;
  /** Who executes requests (default: in-process, on the notifying thread). */
  readonly engine?: EngineFactory;
  /**
   * Where a medium failure of a new kind is reported, once per kind and then
   * at every tenfold count (default: console.error). The guest sees IOERR.
   */
  readonly log?: (message: string) => void;
}

/** seg_max: as given, or the queue size − 2 (a request with its header and status fits the ring). */
function segMaxOf(options: BlkDeviceOptions): number {
  return options.segMax ?? (options.queueSize ?? DEFAULT_QUEUE_SIZE) - 2;
}

/**
 * The limits requests are checked against: DISCARD's where the device
 * offers it (the `discard` option, a medium that can give space back, not
 * read-only), WRITE_ZEROES's where the medium is writable and can zero
 * ranges. Each field of `discard` is checked: a value outside its range is
 * an `INVALID_CONFIG` naming it.
 */
function requestLimits(
  options: BlkDeviceOptions,
  capacity: number,
  segMax: number,
): RequestLimits {
  const can = options.backend.capabilities;
  const writable = !options.backend.readOnly;
  const given = options.discard;
  // ACRN's defaults: the whole disk in one segment, one segment, any alignment.
  const ranges: RangeLimits = {
    maxSectors: checkedField("max_discard_sectors", given?.maxSectors, 1, U32_MAX) ??
      Math.min(capacity, U32_MAX),
    maxSegments: checkedField("max_discard_seg", given?.maxSegments, 1, MAX_RANGE_SEGMENTS) ?? 1,
    alignment: checkedField("discard_sector_alignment", given?.alignment, 0, U32_MAX) ?? 0,
  };
  const discard = given !== undefined && can.discard && writable ? ranges : undefined;
  const writeZeroes: WriteZeroesLimits | undefined = can.writeZeroes && writable
    ? { ...ranges, alignment: 0, mayUnmap: discard !== undefined }
    : undefined;
  return { capacity, segMax, discard, writeZeroes };
}

function checkedField(
  name: string,
  value: number | undefined,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `discard ${name} ${value} must be a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

/** Where the device sends interrupts. */
export interface InterruptRoute {
  /** The sink the device model's thread uses. */
  readonly sink: InterruptSink;
  /** How worker threads reach the same sink. */
  readonly handle: InterruptHandle;
  /**
   * Tells the driver that the configuration space changed (the capacity,
   * after a medium change): the legacy PCI transport sets ISR bit 1 and
   * interrupts (§4.1.4.5); vhost-user sends BACKEND_CONFIG_CHANGE_MSG, and
   * QEMU re-reads the config. Without it the driver learns nothing until it
   * reads the config again.
   */
  readonly configChanged?: () => void;
}

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** A virtio block device. */
export class VirtioBlkDevice implements VirtioDevice {
  /** virtio device ID 2, block (virtio 1.2 §5). */
  readonly deviceId: number = VIRTIO_ID_BLOCK;
  readonly queueCount: number;
  readonly queueSize: number;
  readonly offeredFeatures: bigint;
  readonly maxChain: number;
  /** Config space bytes: `virtio_blk_config` up to `write_zeroes_may_unmap` (§5.2.4). */
  readonly configSize: number = BlkConfig.SIZE;
  /**
   * Whether the device offers VIRTIO_BLK_F_RO (§5.2.3): its first medium was
   * read-only. Fixed for the device's life, as features are.
   */
  readonly readOnly: boolean;
  /**
   * What every request is checked against: the capacity (the medium's now),
   * seg_max, and the DISCARD and WRITE_ZEROES limits of the features offered.
   */
  get limits(): RequestLimits {
    return this.#limits;
  }
  #limits: RequestLimits;
  /** Shared write-cache state. */
  readonly state: BlkState = new BlkState();
  /** The serial as GET_ID returns it. */
  readonly serial: Uint8Array;
  /** What the medium failed so far, by kind (the guest saw IOERR). */
  readonly mediumErrors: MediumErrors = new MediumErrors();
  /** What messages call the device: `virtio-blk device on <medium>`. */
  readonly name: string;
  readonly #queueStates: QueueStateBuffer[];
  #queues: SplitQueue[];
  readonly #image: Uint8Array;
  readonly #defaultWriteback: boolean;
  readonly #engine: RequestEngine;
  readonly #configChanged: (() => void) | undefined;
  #medium: BackendSpec;
  #capacity: number;
  /** Medium changes run one after another. */
  #mediumChanges: Promise<unknown> = Promise.resolve();

  /** The engine that executes this device's requests. */
  get engine(): RequestEngine {
    return this.#engine;
  }
  #acked = 0n;

  /**
   * Builds the device over its medium: works out the feature set and config
   * space from `options`, sets up its one queue, and starts the engine that
   * serves it (await {@linkcode VirtioBlkDevice.ready} before the first kick).
   *
   * @param memory guest memory the queue and buffers live in
   * @param options the medium and the device's settings
   * @param interrupts where completions and "needs reset" are signalled
   * @throws {VirtioBlkError} `INVALID_CONFIG` for a bad queue size, seg_max or
   *   `discard` field, `BAD_BACKING_FILE` when the medium's size is not a
   *   multiple of 512 bytes
   */
  constructor(memory: GuestMemory, options: BlkDeviceOptions, interrupts: InterruptRoute) {
    const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!isValidQueueSize(queueSize) || queueSize < 2) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `queue size ${queueSize} must be a power of two from 2 to 32768`,
      );
    }
    const queueCount = options.queues ?? 1;
    if (!Number.isInteger(queueCount) || queueCount < 1 || queueCount > MAX_QUEUES) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `queue count ${queueCount} must be 1 to ${MAX_QUEUES}`,
      );
    }
    const segMax = segMaxOf(options);
    if (!Number.isInteger(segMax) || segMax < 1) {
      throw new VirtioBlkError("INVALID_CONFIG", `seg_max ${segMax} must be a positive integer`);
    }
    const logical = options.logicalBlockSize ?? SECTOR_SIZE;
    const physical = options.physicalBlockSize ?? logical;
    const sizeBytes = options.backend.size;
    if (sizeBytes % SECTOR_SIZE !== 0) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `device size ${sizeBytes} is not a multiple of 512 bytes`,
      );
    }
    this.queueSize = queueSize;
    this.queueCount = queueCount;
    this.maxChain = Math.max(queueSize, segMax + 2);
    this.#medium = options.backend;
    this.#capacity = sizeBytes / SECTOR_SIZE;
    this.#configChanged = interrupts.configChanged;
    this.readOnly = options.backend.readOnly;
    const medium = options.backend.name;
    this.name = `virtio-blk device on ${medium}`;
    this.serial = serialBytes(options.serial ?? defaultSerial(options.optionString ?? medium));
    this.#defaultWriteback = options.writeback ?? false;
    // What the medium can do decides the rest (§5.2.3).
    const can = options.backend.capabilities;
    const limits = requestLimits(options, this.capacity, segMax);
    this.#image = buildConfigImage({
      sizeBytes,
      segMax,
      logicalBlockSize: logical,
      physicalBlockSize: physical,
      queues: queueCount,
      discard: limits.discard,
      writeZeroes: limits.writeZeroes,
    });

    let features = bit(BlkFeature.SEG_MAX) | bit(BlkFeature.BLK_SIZE) | bit(BlkFeature.TOPOLOGY) |
      bit(RingFeature.INDIRECT_DESC);
    // A cache the driver may switch on needs a FLUSH to empty it.
    if (can.flush) features |= bit(BlkFeature.FLUSH) | bit(BlkFeature.CONFIG_WCE);
    if (options.eventIdx ?? true) features |= bit(RingFeature.EVENT_IDX);
    if (this.readOnly) features |= bit(BlkFeature.RO);
    if (queueCount > 1) features |= bit(BlkFeature.MQ);
    if (limits.discard) features |= bit(BlkFeature.DISCARD);
    if (limits.writeZeroes) features |= bit(BlkFeature.WRITE_ZEROES);
    this.offeredFeatures = features;
    this.#limits = limits;

    this.#queueStates = Array.from({ length: queueCount }, () => new QueueStateBuffer(queueSize));
    this.#queues = this.#queueStates.map((state) => new SplitQueue(memory, state));
    this.state.set(this.#defaultWriteback, false);
    const factory = options.engine ?? ((context) => new InlineEngine(context));
    this.#engine = factory({
      memory,
      queues: this.#queueStates,
      interrupts: interrupts.sink,
      interruptHandle: interrupts.handle,
      state: this.state,
      backend: options.backend,
      readOnly: this.readOnly,
      limits,
      orderOverlapping: options.orderOverlapping ?? true,
      maxChain: this.maxChain,
      serial: this.serial,
      errors: this.mediumErrors,
      name: this.name,
      log: options.log,
    });
  }

  /**
   * Pairs a request record of this device holds (its data segments or its
   * ranges): what a shared blockif pool must be sized for.
   */
  static recordSlots(options: BlkDeviceOptions): number {
    return Math.max(segMaxOf(options), options.discard?.maxSegments ?? 1);
  }

  get ackedFeatures(): bigint {
    return this.#acked;
  }

  /** Capacity in 512-byte sectors: the medium's size (0 for an empty drive). */
  get capacity(): number {
    return this.#capacity;
  }

  /** The medium in the drive now (a no-medium spec when it is empty). */
  get medium(): BackendSpec {
    return this.#medium;
  }

  /** Whether the write cache is on, as the driver sees it: the config `writeback` byte. */
  get writeback(): boolean {
    return this.state.wce;
  }

  /**
   * Puts `backend` in the drive in place of the medium there: a resize (the
   * same file described at its new size), a medium inserted into an empty
   * drive, or an empty one (`noMedium()`) for an eject. The engine's threads
   * finish what they started on the old medium and open the new one (the
   * queues keep running); requests parsed before and started after are
   * checked against the new capacity. Then the capacity in config space
   * changes and the transport notifies the driver. Changes run one at a
   * time, in the order asked.
   *
   * A device that offered VIRTIO_BLK_F_RO keeps refusing writes whatever the
   * new medium; a read-only medium in a device that did not offer it gets
   * its writes refused with IOERR (features cannot change under a running
   * driver, §3.1.1).
   *
   * @throws {VirtioBlkError} `UNSUPPORTED` when the engine serves one
   *   medium for its life; `BAD_BACKING_FILE` when the size is not a
   *   multiple of 512 bytes or a thread cannot open the medium: the drive is
   *   then left empty (and the driver notified), as a medium that failed to
   *   load leaves a drive
   */
  changeMedium(backend: BackendSpec): Promise<void> {
    const change = this.#mediumChanges.then(() => this.#changeMedium(backend));
    this.#mediumChanges = change.catch(() => {});
    return change;
  }

  async #changeMedium(backend: BackendSpec): Promise<void> {
    const engine = this.#engine;
    if (engine.changeMedium === undefined) {
      throw new VirtioBlkError("UNSUPPORTED", `${this.name}: its engine cannot change the medium`);
    }
    if (!Number.isSafeInteger(backend.size) || backend.size < 0 || backend.size % SECTOR_SIZE) {
      throw new VirtioBlkError(
        "BAD_BACKING_FILE",
        `medium size ${backend.size} is not a multiple of ${SECTOR_SIZE} bytes`,
      );
    }
    try {
      await engine.changeMedium(this.#changeOf(backend));
      this.#setMedium(backend);
    } catch (error) {
      // Some threads may hold the new medium and some none: empty the drive on all of them.
      const none = noMedium({ readOnly: this.readOnly });
      await engine.changeMedium(this.#changeOf(none)).catch(() => {});
      this.#setMedium(none);
      throw error;
    }
  }

  #changeOf(backend: BackendSpec): MediumChange {
    return {
      backend,
      readOnly: this.readOnly || backend.readOnly,
      capacity: backend.size / SECTOR_SIZE,
    };
  }

  #setMedium(backend: BackendSpec): void {
    this.#medium = backend;
    this.#capacity = backend.size / SECTOR_SIZE;
    this.#limits = { ...this.#limits, capacity: this.#capacity };
    setCapacity(this.#image, backend.size);
    this.#configChanged?.();
  }

  /** The shared state of the first request queue (for doorbells and diagnostics). */
  get queueState(): QueueStateBuffer {
    return this.#queueStates[0];
  }

  /** The shared state of request queue `index`. */
  queueStateOf(index: number): QueueStateBuffer {
    this.#checkQueue(index);
    return this.#queueStates[index];
  }

  queue(index: number): SplitQueue {
    this.#checkQueue(index);
    return this.#queues[index];
  }

  /**
   * Serves the device over new guest memory (a vhost-user memory-table
   * change): every queue must be disabled. The engine's threads keep
   * running and the medium stays open.
   */
  async attachMemory(memory: GuestMemory): Promise<void> {
    if (this.#queues.some((queue) => queue.ready)) {
      throw new VirtioBlkError("INVALID_CONFIG", "guest memory changes only while no queue runs");
    }
    this.#queues = this.#queueStates.map((state) => new SplitQueue(memory, state));
    await this.#engine.attachMemory(memory);
  }

  #checkQueue(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.queueCount) {
      throw new RangeError(`virtio-blk has ${this.queueCount} queue(s), not queue ${index}`);
    }
  }

  ackFeatures(features: bigint): void {
    this.#acked = features & this.offeredFeatures;
    const flush = (this.#acked & bit(BlkFeature.FLUSH)) !== 0n;
    const configWce = (this.#acked & bit(BlkFeature.CONFIG_WCE)) !== 0n;
    // §5.2.5.1: CONFIG_WCE without FLUSH negotiated: the device initializes writeback to 0.
    const wce = configWce && !flush ? false : this.state.wce;
    // Without FLUSH the driver cannot ask for stability: stay write-through (§5.2.6.2).
    this.state.set(wce, flush);
  }

  readConfig(offset: number, size: number): number {
    this.#image[BlkConfig.WRITEBACK] = this.state.wce ? 1 : 0;
    return readImage(this.#image, offset, size);
  }

  writeConfig(offset: number, size: number, value: number): void {
    if (!(size === 1 || size === 2 || size === 4)) return;
    for (let i = 0; i < size; i++) {
      // Only `writeback` is writable (§5.2.4, CONFIG_WCE).
      if (offset + i !== BlkConfig.WRITEBACK) continue;
      const wce = ((value >>> (8 * i)) & 0xff) !== 0;
      this.state.set(wce, (this.#acked & bit(BlkFeature.FLUSH)) !== 0n);
    }
  }

  /** Resolves once the engine serves requests (its workers started and opened the medium). */
  ready(): Promise<void> {
    return this.#engine.ready();
  }

  /** The doorbell of queue `index`: a vCPU thread rings it for QUEUE_NOTIFY (ioeventfd-style). */
  doorbell(index: number): DoorbellHandle {
    return this.#engine.doorbell(index);
  }

  notify(index: number): void {
    if (Number.isInteger(index) && index >= 0 && index < this.queueCount) {
      this.#engine.notify(index);
    }
  }

  disableQueue(index: number): number {
    if (!(Number.isInteger(index) && index >= 0 && index < this.queueCount)) return 0;
    const nextAvail = this.#queues[index].disable();
    this.#engine.quiesce(index);
    return nextAvail;
  }

  /**
   * {@linkcode disableQueue} without blocking this thread: resolves with the
   * next available index once no request taken before can still touch guest
   * memory (requests not started are dropped; a request stuck on a hung
   * medium keeps it pending for as long as it hangs).
   */
  async stopQueue(index: number): Promise<number> {
    if (!(Number.isInteger(index) && index >= 0 && index < this.queueCount)) return 0;
    const nextAvail = this.#queues[index].disable();
    await this.#settle(index);
    return nextAvail;
  }

  #settle(index: number): Promise<void> {
    const engine = this.#engine;
    if (engine.settle) return engine.settle(index);
    engine.quiesce(index);
    return Promise.resolve();
  }

  reset(): void {
    for (let i = 0; i < this.queueCount; i++) this.disableQueue(i);
    this.#acked = 0n;
    // The cache mode the device was configured with comes back on reset (ACRN's original_wce).
    this.state.set(this.#defaultWriteback, false);
  }

  /**
   * Stops the engine and releases its threads and file handles, once no
   * request in flight can touch guest memory any more (waiting without
   * blocking this thread).
   */
  async close(): Promise<void> {
    for (let i = 0; i < this.queueCount; i++) {
      this.#queues[i].disable();
      await this.#settle(i);
    }
    await this.#engine.close();
  }
}
