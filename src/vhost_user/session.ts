/**
 * One vhost-user-blk connection: the back end's side of the protocol as
 * QEMU 7.2 speaks it (reference vhost-user.md §4–§10), from the first
 * GET_FEATURES to end of file.
 *
 * Device lifetime. The guest memory arrives only at the first ring start
 * (§7.3), after QEMU has read the features and the config space. The
 * session builds its device once, at connect, over an empty memory (it
 * answers GET_FEATURES and GET_CONFIG), and each time the memory table
 * changes (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) it stops the rings that
 * run, gives the device the new table (`attachMemory`: its threads take new
 * views; none restarts, the medium stays open) and restarts the rings where
 * they stopped. Regions that left the table are unmapped only once the
 * device's threads no longer view them. A ring stop (GET_VRING_BASE) keeps
 * the mappings: QEMU sends ADD_MEM_REG once per connection (§7.3, pitfall 10).
 *
 * Queues. The device has `queues` request queues (GET_QUEUE_NUM; the MQ
 * protocol feature); each vring index names one.
 *
 * Interrupts. The device's interrupt handle names two stable fds per queue
 * (call, err), so threads that hold the handle never see a number change;
 * each SET_VRING_CALL/ERR is `dup3`ed onto them (see
 * {@linkcode StableEventFd}).
 *
 * Configuration changes. When the device's medium changes (a resize, a
 * medium inserted or ejected), the session tells QEMU on the back-end
 * channel (BACKEND_REQ, SET_BACKEND_REQ_FD) with BACKEND_CONFIG_CHANGE_MSG;
 * QEMU then re-reads the config with GET_CONFIG and, if the capacity
 * changed, gives the guest a configuration-change interrupt (reference §4.2,
 * §8). The message asks for no reply, and nothing here waits for QEMU:
 * QEMU sends its GET_CONFIG on the main socket while it handles the message.
 *
 * Interrupts never wait on the front end: its call and err eventfds are
 * signalled through the kernel (`kernel_signal.ts`), so a front end that
 * makes them unwritable loses its own interrupts and nothing else.
 *
 * Ring stops never lose a request and never block the event loop. A stop
 * (GET_VRING_BASE, or a memory table change while the ring runs) pauses the
 * queue and waits, with timers, for every request it took to complete, for
 * as long as that takes: QEMU restarts the ring at the base we report
 * (§9.2), so a request counted as taken must have completed, and one taken
 * but dropped would hang the guest. A base that rewinds to the oldest
 * request not completed is not an option: requests complete out of order
 * (several workers), and one completed after it would run twice. While a
 * medium hangs, the stop is simply not answered yet (QEMU waits for it);
 * the event loop goes on serving signals and the accept loop, and end of
 * file or {@linkcode VhostUserBlkSession.close} ends the wait.
 *
 * End. End of file is the only end signal (§9.3): the session then stops
 * the ring (requests not started are dropped: nobody is left to see them
 * complete), closes the device, unmaps everything and closes every fd. A
 * request still running on a hung medium may yet write to guest memory, so
 * its memory and fds are released only once it finished, in the background
 * (the session itself ends after {@linkcode END_GRACE_MS}). A malformed or
 * unknown request never ends the session (QEMU would not reconnect,
 * pitfall 14): it is refused with a failing ack when the front-end asked
 * for one, and logged. A front end that does not read its replies is
 * disconnected (`unix_socket.ts`, `MAX_UNSENT_BYTES`).
 *
 * @module
 */

import { type BlkDeviceOptions, VirtioBlkDevice } from "../blk/device.ts";
import type { MappedGuestMemory } from "./mapped_memory.ts";
import { AvailRing, descriptorTableSize, UsedRing } from "../virtio/ring_layout.ts";
import { isValidQueueSize, RingFeature } from "../virtio/spec.ts";
import { StableEventFd } from "./eventfd.ts";
import {
  type EventFdInterruptHandle,
  eventFdInterruptHandle,
  EventFdInterruptSink,
} from "./interrupts.ts";
import { kernelSignalHandle } from "./kernel_signal.ts";
import { KickWatcher } from "./kick_watcher.ts";
import { closeFd } from "./libc.ts";
import { mapRegion, RegionTable, type TableRegion, unmapRegion } from "./memory_table.ts";
import {
  BackendRequest,
  decodeConfig,
  decodeMemoryTable,
  decodeSingleRegion,
  decodeU64,
  decodeVringAddress,
  decodeVringState,
  encodeConfig,
  encodeU64,
  encodeVringState,
  HeaderFlag,
  type Message,
  ProtocolFeature,
  receiveMessage,
  REPLY_FLAGS,
  Request,
  REQUESTS_WITH_FDS,
  sendMessage,
  VHOST_USER_F_PROTOCOL_FEATURES,
  type VringAddresses,
  VringFd,
} from "./messages.ts";
import { UnixConnection } from "./unix_socket.ts";

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/**
 * Protocol features this back end offers (§5.2): what QEMU needs, the
 * queue count, and the back-end channel for configuration changes.
 */
export const OFFERED_PROTOCOL_FEATURES = bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.BACKEND_REQ) |
  bit(ProtocolFeature.CONFIG) | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS);

/** GET_MAX_MEM_SLOTS answer: regions one connection may add (qsd says the same). */
export const MAX_MEMORY_SLOTS = 32;

/** A ring stop still waiting for the medium after this long says so in the log (once). */
const SLOW_STOP_LOG_MS = 5000;

/** Longest sleep between two looks at the requests in flight during a ring stop. */
const SETTLE_POLL_MAX_MS = 50;

/**
 * How long an ending session waits for requests still running on the
 * medium before it leaves their release (memory, fds, threads) to the
 * background and lets the server go on.
 */
export const END_GRACE_MS = 2000;

/** What a session needs. */
export interface SessionOptions {
  /** The device the connection gets. */
  readonly device: BlkDeviceOptions;
  /** Where the session reports what it refused or what failed. */
  readonly log: (message: string) => void;
}

/** The negotiated state of one vring. */
interface Vring {
  /** SET_VRING_NUM. */
  num: number;
  /** SET_VRING_BASE, or where the ring stopped. */
  base: number;
  addresses: VringAddresses | undefined;
  kick: KickWatcher | undefined;
  /** SET_VRING_ENABLE. */
  enabled: boolean;
  /** The device's queue is active on this ring. */
  running: boolean;
}

/** A handler's answer: a reply payload (always sent), or success for REPLY_ACK. */
type Outcome = Uint8Array | boolean;

/** One connection of a vhost-user-blk front-end. */
export class VhostUserBlkSession {
  readonly #connection: UnixConnection;
  readonly #options: SessionOptions;
  readonly #calls: StableEventFd[];
  readonly #errs: StableEventFd[];
  readonly #sink: EventFdInterruptSink;
  #table: RegionTable = new RegionTable();
  #memory: MappedGuestMemory;
  readonly #device: VirtioBlkDevice;
  #protocolFeatures = 0n;
  #features: bigint | undefined;
  #refusals = 0;
  #closing = false;
  readonly #rings: Vring[];
  /** The back-end channel QEMU gave (SET_BACKEND_REQ_FD), for configuration changes. */
  #backendChannel: UnixConnection | undefined;

  /**
   * Starts a session on an accepted connection (owned by the session from
   * now on) with a device over no memory yet.
   *
   * @throws VirtioBlkError when the device cannot be built (a bad option or file)
   */
  constructor(connection: UnixConnection, options: SessionOptions) {
    this.#connection = connection;
    this.#options = options;
    const queues = options.device.queues ?? 1;
    this.#calls = Array.from({ length: queues }, () => new StableEventFd());
    this.#errs = Array.from({ length: queues }, () => new StableEventFd());
    this.#rings = Array.from({ length: queues }, () => ({
      num: 0,
      base: 0,
      addresses: undefined,
      kick: undefined,
      enabled: false,
      running: false,
    }));
    this.#sink = new EventFdInterruptSink(this.#interruptHandle());
    this.#memory = this.#table.guestMemory();
    try {
      this.#device = new VirtioBlkDevice(this.#memory, options.device, {
        sink: this.#sink,
        handle: this.#interruptHandle(),
        configChanged: () => this.#configChanged(),
      });
    } catch (error) {
      this.#closeNotifiers();
      throw error;
    }
  }

  /** The device serving the connection. */
  get device(): VirtioBlkDevice {
    return this.#device;
  }

  /** Protocol features the front-end set (a subset of the offered ones). */
  get protocolFeatures(): bigint {
    return this.#protocolFeatures;
  }

  /** The guest memory regions mapped now. */
  get regions(): readonly TableRegion[] {
    return this.#table.regions;
  }

  /**
   * Serves requests until end of file (or {@linkcode close}), then releases
   * everything the connection held. Never rejects.
   */
  async run(): Promise<void> {
    try {
      for (;;) {
        const message = await receiveMessage(this.#connection);
        if (message === null) break;
        await this.#dispatch(message);
      }
    } catch (error) {
      this.#options.log(`vhost-user: connection failed: ${describe(error)}`);
    } finally {
      await this.#teardown();
    }
  }

  /**
   * Ends the session as if the front-end had closed the connection (a ring
   * stop waiting for the medium gives up: see the module comment).
   */
  close(): void {
    this.#closing = true;
    this.#connection.shutdown();
  }

  // ---------------------------------------------------------------------------

  async #dispatch(message: Message): Promise<void> {
    let outcome: Outcome;
    const refusals = this.#refusals;
    try {
      // A request that needs none of its fds is served (a GET_* must be answered:
      // its front end waits for the reply, §4.1); one that needs them cannot be.
      outcome = message.truncated && REQUESTS_WITH_FDS.has(message.request)
        ? this.#refuse(message, "file descriptors were lost (MSG_CTRUNC)")
        : await this.#handle(message);
      if (outcome === false && this.#refusals === refusals) {
        this.#refuse(message, "malformed payload or a vring index beyond the device's queues");
      }
    } catch (error) {
      outcome = this.#refuse(message, describe(error));
    } finally {
      // Whatever a handler did not take is not ours to keep.
      message.fds.splice(0).forEach(closeFd);
    }
    if (outcome instanceof Uint8Array) {
      sendMessage(this.#connection, message.request, REPLY_FLAGS, outcome);
    } else if (message.flags & HeaderFlag.NEED_REPLY) {
      // REPLY_ACK (§5, pitfall 5): u64 0 is success.
      sendMessage(this.#connection, message.request, REPLY_FLAGS, encodeU64(outcome ? 0n : 1n));
    }
  }

  #refuse(message: Message, why: string): false {
    this.#refusals++;
    this.#options.log(`vhost-user: request ${message.request} refused: ${why}`);
    return false;
  }

  async #handle(message: Message): Promise<Outcome> {
    const { payload } = message;
    switch (message.request) {
      case Request.GET_FEATURES:
        return encodeU64(this.#offeredFeatures());
      case Request.SET_FEATURES:
        return this.#setFeatures(decodeU64(payload));
      case Request.GET_PROTOCOL_FEATURES:
        return encodeU64(OFFERED_PROTOCOL_FEATURES);
      case Request.SET_PROTOCOL_FEATURES: {
        const value = decodeU64(payload);
        if (value === undefined) return false;
        this.#protocolFeatures = value & OFFERED_PROTOCOL_FEATURES;
        return true;
      }
      case Request.GET_QUEUE_NUM:
        return encodeU64(BigInt(this.#device.queueCount));
      case Request.GET_MAX_MEM_SLOTS:
        return encodeU64(BigInt(MAX_MEMORY_SLOTS));
      case Request.SET_OWNER:
        return true;
      case Request.RESET_OWNER:
        for (let i = 0; i < this.#rings.length; i++) await this.#stopRing(i);
        this.#features = undefined;
        return true;
      case Request.SET_MEM_TABLE:
        return await this.#setMemTable(message);
      case Request.ADD_MEM_REG:
        return await this.#addRegion(message);
      case Request.REM_MEM_REG:
        return await this.#removeRegion(message);
      case Request.SET_VRING_NUM:
        return this.#setVringNum(decodeVringState(payload));
      case Request.SET_VRING_ADDR:
        return this.#setVringAddr(decodeVringAddress(payload));
      case Request.SET_VRING_BASE: {
        const state = decodeVringState(payload);
        if (!this.#validRing(state?.index)) return false;
        this.#rings[state!.index].base = state!.num & 0xffff;
        return true;
      }
      case Request.GET_VRING_BASE: {
        const state = decodeVringState(payload);
        const index = state?.index ?? 0;
        // Always answered (§4.1): the "stop ring" message.
        const base = this.#validRing(index) ? await this.#stopRing(index) : 0;
        return encodeVringState(index, base);
      }
      case Request.SET_VRING_KICK:
        return await this.#setVringKick(message);
      case Request.SET_VRING_CALL:
        return this.#setVringNotifier(message, this.#calls);
      case Request.SET_VRING_ERR:
        return this.#setVringNotifier(message, this.#errs);
      case Request.SET_VRING_ENABLE:
        return this.#setVringEnable(decodeVringState(payload));
      case Request.GET_CONFIG:
        return this.#getConfig(message);
      case Request.SET_CONFIG:
        return this.#setConfig(message);
      case Request.SET_BACKEND_REQ_FD:
        return this.#setBackendChannel(message);
      default:
        return this.#refuse(message, "not supported by this back end");
    }
  }

  // ---- features --------------------------------------------------------------

  #offeredFeatures(): bigint {
    return this.#device.offeredFeatures | bit(RingFeature.VERSION_1) |
      bit(VHOST_USER_F_PROTOCOL_FEATURES);
  }

  /**
   * SET_FEATURES: comes twice per ring start (pitfall 4), with bit 30 from
   * QEMU itself, and without VERSION_1 from a legacy guest (§10) — accepted:
   * on x86 a legacy guest's rings and requests read the same.
   */
  #setFeatures(value: bigint | undefined): boolean {
    if (value === undefined) return false;
    const unknown = value & ~this.#offeredFeatures();
    if (unknown !== 0n) {
      this.#options.log(
        `vhost-user: SET_FEATURES ignores bits not offered: 0x${unknown.toString(16)}`,
      );
    }
    this.#features = value & this.#offeredFeatures();
    this.#device.ackFeatures(this.#features);
    return true;
  }

  /** Whether rings wait for SET_VRING_ENABLE (bit 30 negotiated, §9.1). */
  #ringsStartDisabled(): boolean {
    return this.#features !== undefined &&
      (this.#features & bit(VHOST_USER_F_PROTOCOL_FEATURES)) !== 0n;
  }

  // ---- config space ----------------------------------------------------------

  /** GET_CONFIG: the bytes of our virtio_blk_config (§8); size 0 when out of range. */
  #getConfig(message: Message): Uint8Array {
    const access = decodeConfig(message.payload);
    if (access === undefined) {
      this.#refuse(message, "malformed GET_CONFIG");
      return encodeConfig({ offset: 0, size: 0, flags: 0, data: new Uint8Array(0) });
    }
    const { offset, size, flags } = access;
    if (offset + size > this.#device.configSize) {
      this.#refuse(message, `config bytes [${offset}, +${size}) beyond ${this.#device.configSize}`);
      return encodeConfig({ offset, size: 0, flags, data: new Uint8Array(0) });
    }
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = this.#device.readConfig(offset + i, 1);
    return encodeConfig({ offset, size, flags, data });
  }

  /** SET_CONFIG: the guest toggling `writeback` (§8); other fields are read-only. */
  #setConfig(message: Message): boolean {
    const access = decodeConfig(message.payload);
    if (access === undefined) return this.#refuse(message, "malformed SET_CONFIG");
    const { offset, size, data } = access;
    if (offset + size > this.#device.configSize) {
      return this.#refuse(message, `config bytes [${offset}, +${size}) beyond the config space`);
    }
    for (let i = 0; i < size; i++) this.#device.writeConfig(offset + i, 1, data[i]);
    return true;
  }

  /** SET_BACKEND_REQ_FD: the socket on which the back end sends requests to QEMU (§4.2). */
  #setBackendChannel(message: Message): boolean {
    if (message.fds.length !== 1) {
      return this.#refuse(message, `expected one socket, got ${message.fds.length} fds`);
    }
    this.#backendChannel?.close();
    this.#backendChannel = new UnixConnection(message.fds.splice(0)[0]);
    return true;
  }

  /**
   * The device's config changed (its capacity): BACKEND_CONFIG_CHANGE_MSG,
   * without NEED_REPLY (nobody reads this channel's replies here).
   */
  #configChanged(): void {
    const channel = this.#backendChannel;
    if (channel === undefined || !(this.#protocolFeatures & bit(ProtocolFeature.BACKEND_REQ))) {
      this.#options.log(
        "vhost-user: the capacity changed, and the front end gave no back-end channel " +
          "(BACKEND_REQ) to say so: the guest sees it only when it reads the config again",
      );
      return;
    }
    try {
      sendMessage(channel, BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION);
    } catch (error) {
      this.#options.log(`vhost-user: the back-end channel failed: ${describe(error)}`);
      channel.close();
      this.#backendChannel = undefined;
    }
  }

  // ---- memory ----------------------------------------------------------------

  /** SET_MEM_TABLE: the whole table, one fd per region (pitfall 7); replaces the old one. */
  async #setMemTable(message: Message): Promise<boolean> {
    const descriptions = decodeMemoryTable(message.payload);
    if (descriptions === undefined) return this.#refuse(message, "malformed memory table");
    if (message.fds.length !== descriptions.length) {
      return this.#refuse(
        message,
        `${descriptions.length} regions came with ${message.fds.length} fds`,
      );
    }
    const fds = message.fds.splice(0);
    const mapped: TableRegion[] = [];
    let table: RegionTable;
    try {
      descriptions.forEach((description, i) => mapped.push(mapRegion(description, fds[i])));
      table = new RegionTable(mapped);
    } catch (error) {
      fds.slice(mapped.length + 1).forEach(closeFd);
      mapped.forEach(unmapRegion);
      throw error;
    }
    await this.#replaceMemory(table, this.#table.regions);
    return true;
  }

  /** ADD_MEM_REG: one more region and its fd. */
  async #addRegion(message: Message): Promise<boolean> {
    const description = decodeSingleRegion(message.payload);
    if (description === undefined) return this.#refuse(message, "malformed region");
    if (message.fds.length !== 1) {
      return this.#refuse(message, `a region came with ${message.fds.length} fds`);
    }
    if (this.#table.regions.length >= MAX_MEMORY_SLOTS) {
      return this.#refuse(message, `more than ${MAX_MEMORY_SLOTS} regions`);
    }
    const region = mapRegion(description, message.fds.splice(0)[0]);
    let table: RegionTable;
    try {
      table = this.#table.with(region);
    } catch (error) {
      unmapRegion(region);
      throw error;
    }
    await this.#replaceMemory(table, []);
    return true;
  }

  /** REM_MEM_REG: the region with that guest address, size and user address leaves. */
  async #removeRegion(message: Message): Promise<boolean> {
    const description = decodeSingleRegion(message.payload);
    if (description === undefined) return this.#refuse(message, "malformed region");
    const region = this.#table.find(description);
    if (region === undefined) return this.#refuse(message, "no such region");
    await this.#replaceMemory(this.#table.without(region), [region]);
    return true;
  }

  /**
   * Moves the device to a new table: stop the rings that run (once the
   * requests they took have completed), give the device the new memory
   * (its threads take new views; none restarts), then unmap `removed`
   * (nothing views them any more) and restart the rings where they stopped.
   */
  async #replaceMemory(table: RegionTable, removed: readonly TableRegion[]): Promise<void> {
    const running = this.#rings.map((ring) => ring.running);
    for (let index = 0; index < this.#rings.length; index++) {
      if (!running[index]) continue;
      const ring = this.#rings[index];
      // The ring restarts where it stopped, so what it took must complete first.
      if (!(await this.#settle(index))) {
        // The connection ended meanwhile: the teardown stops the rings; the new regions go.
        const current = new Set(this.#table.regions);
        table.regions.filter((region) => !current.has(region)).forEach(unmapRegion);
        throw new Error("the connection ended while requests were in flight");
      }
      ring.base = await this.#device.stopQueue(index);
      ring.running = false;
    }
    const previous = this.#memory;
    this.#table = table;
    this.#memory = table.guestMemory();
    await this.#device.attachMemory(this.#memory);
    previous.detach();
    const kept = new Set(table.regions);
    removed.filter((region) => !kept.has(region)).forEach(unmapRegion);
    for (let index = 0; index < this.#rings.length; index++) {
      if (running[index]) this.#startRing(index);
    }
  }

  #interruptHandle(): EventFdInterruptHandle {
    return eventFdInterruptHandle(
      this.#calls.map((call) => call.fd),
      this.#errs.map((err) => err.fd),
      kernelSignalHandle(),
    );
  }

  #closeNotifiers(): void {
    for (const notifier of [...this.#calls, ...this.#errs]) notifier.close();
  }

  // ---- the vring -------------------------------------------------------------

  #validRing(index: number | undefined): boolean {
    return index !== undefined && index >= 0 && index < this.#rings.length;
  }

  #setVringNum(state: { index: number; num: number } | undefined): boolean {
    if (!this.#validRing(state?.index)) return false;
    const { num } = state!;
    if (!isValidQueueSize(num) || num > this.#device.queueSize) {
      this.#options.log(
        `vhost-user: queue size ${num} refused: the back end takes powers of two up to ` +
          `${this.#device.queueSize} (set queueSize, or QEMU's queue-size)`,
      );
      return false;
    }
    this.#rings[state!.index].num = num;
    return true;
  }

  #setVringAddr(addresses: VringAddresses | undefined): boolean {
    if (!this.#validRing(addresses?.index)) return false;
    this.#rings[addresses!.index].addresses = addresses;
    this.#startRing(addresses!.index);
    return true;
  }

  async #setVringKick(message: Message): Promise<boolean> {
    const value = decodeU64(message.payload);
    const index = value === undefined ? -1 : Number(value & BigInt(VringFd.INDEX_MASK));
    if (value === undefined || !this.#validRing(index)) {
      return this.#refuse(message, "malformed SET_VRING_KICK");
    }
    if ((value & BigInt(VringFd.NO_FD)) !== 0n || message.fds.length !== 1) {
      return this.#refuse(message, "polling a ring without a kick fd is not supported");
    }
    const ring = this.#rings[index];
    await ring.kick?.stop();
    ring.kick = new KickWatcher(
      message.fds.splice(0)[0],
      () => this.#kicked(index),
      (error) => this.#options.log(`vhost-user: kick fd failed: ${describe(error)}`),
    );
    this.#startRing(index);
    return true;
  }

  /** SET_VRING_CALL / SET_VRING_ERR: accepted at any time (pitfall 2). */
  #setVringNotifier(message: Message, targets: readonly StableEventFd[]): boolean {
    const value = decodeU64(message.payload);
    const index = value === undefined ? -1 : Number(value & BigInt(VringFd.INDEX_MASK));
    if (value === undefined || !this.#validRing(index)) {
      return this.#refuse(message, "malformed vring fd message");
    }
    const noFd = (value & BigInt(VringFd.NO_FD)) !== 0n;
    if (!noFd && message.fds.length !== 1) {
      return this.#refuse(message, `expected one fd, got ${message.fds.length}`);
    }
    targets[index].replace(noFd ? undefined : message.fds.splice(0)[0]);
    return true;
  }

  #setVringEnable(state: { index: number; num: number } | undefined): boolean {
    if (!this.#validRing(state?.index)) return false;
    const index = state!.index;
    const ring = this.#rings[index];
    ring.enabled = state!.num === 1;
    if (ring.enabled) {
      this.#startRing(index);
      // Kicks that came while disabled were ignored: look at the ring now.
      if (ring.running) this.#device.notify(index);
    }
    return true;
  }

  #kicked(index: number): void {
    const ring = this.#rings[index];
    if (ring.running && (ring.enabled || !this.#ringsStartDisabled())) this.#device.notify(index);
  }

  /**
   * Activates the device's queue once the ring is fully described: size,
   * addresses inside guest memory, a kick fd, and enabled when bit 30 was
   * negotiated (§9.1). Ring addresses are user addresses (§7.2).
   */
  #startRing(index: number): void {
    const ring = this.#rings[index];
    const addresses = ring.addresses;
    if (ring.running || ring.kick === undefined || addresses === undefined || ring.num === 0) {
      return;
    }
    if (this.#ringsStartDisabled() && !ring.enabled) return;
    const size = ring.num;
    const desc = this.#table.userToGuest(addresses.desc, descriptorTableSize(size));
    const avail = this.#table.userToGuest(addresses.avail, AvailRing.size(size));
    const used = this.#table.userToGuest(addresses.used, UsedRing.size(size));
    if (desc === undefined || avail === undefined || used === undefined) {
      this.#options.log("vhost-user: ring addresses are outside the guest memory");
      this.#sink.needsReset(index);
      return;
    }
    // The device resumes publishing at the ring's own used.idx (as libvhost-user).
    const usedRegion = this.#memory.regionFor(used, UsedRing.size(size));
    const usedIdx = usedRegion === undefined
      ? 0
      : Atomics.load(usedRegion.u16, (used - usedRegion.gpa + UsedRing.IDX) >>> 1);
    const features = Number((this.#features ?? 0n) & 0xffff_ffffn);
    const ok = this.#device.queue(index).activate({
      size,
      desc,
      avail,
      used,
      features,
      maxChain: this.#device.maxChain,
      nextAvail: ring.base,
      nextUsed: usedIdx,
    });
    if (!ok) {
      this.#options.log("vhost-user: the ring's parts are misaligned or outside guest memory");
      this.#sink.needsReset(index);
      return;
    }
    ring.running = true;
    this.#device.notify(index);
  }

  /**
   * GET_VRING_BASE: stops the ring (its kick fd is closed) and returns the
   * next available index it would have taken (§9.2), once every request it
   * took has completed. Memory stays mapped. When the connection ends during
   * the wait, the ring is left to the teardown (and the answer is moot).
   */
  async #stopRing(index: number): Promise<number> {
    const ring = this.#rings[index];
    const kick = ring.kick;
    ring.kick = undefined;
    await kick?.stop();
    if (ring.running) {
      if (!(await this.#settle(index))) return ring.base;
      ring.base = await this.#device.stopQueue(index);
      ring.running = false;
    }
    ring.enabled = false;
    return ring.base;
  }

  /**
   * Stops taking requests off the ring and waits until those already taken
   * have completed, without a time limit and without blocking the event
   * loop (see the module comment for why there is no limit). Returns false,
   * with requests still in flight, when the session ends meanwhile
   * ({@linkcode close} or the front end hung up).
   */
  async #settle(index: number): Promise<boolean> {
    const queue = this.#device.queue(index);
    // Without the pause a worker could take one more between the last look and the disable.
    queue.pause();
    const started = Date.now();
    let logged = false;
    let delay = 1;
    while (queue.inFlight > 0) {
      if (this.#closing || await this.#connection.peerClosed()) return false;
      if (!logged && Date.now() - started >= SLOW_STOP_LOG_MS) {
        logged = true;
        this.#options.log(
          `vhost-user: stopping the ring waits for ${queue.inFlight} request(s) on the medium`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(2 * delay, SETTLE_POLL_MAX_MS);
    }
    return true;
  }

  async #teardown(): Promise<void> {
    const log = this.#options.log;
    for (const ring of this.#rings) {
      const kick = ring.kick;
      ring.kick = undefined;
      ring.running = false;
      await kick?.stop().catch((error) =>
        log(`vhost-user: stopping the kick fd: ${describe(error)}`)
      );
    }
    // The front end is gone: requests not started are dropped by the close;
    // those running must finish before their memory is unmapped and their
    // interrupt fds are closed (a late signal must not reach a reused number).
    const device = this.#device;
    const memory = this.#memory;
    const regions = this.#table.regions;
    this.#table = new RegionTable();
    const release = () => {
      memory.detach();
      for (const region of regions) {
        try {
          unmapRegion(region);
        } catch (error) {
          log(`vhost-user: unmapping guest memory: ${describe(error)}`);
        }
      }
      this.#closeNotifiers();
    };
    const closed = device.close().then(
      () => true,
      (error) => {
        log(`vhost-user: closing the device: ${describe(error)}`);
        return true;
      },
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), END_GRACE_MS);
    });
    const inTime = await Promise.race([closed, graceOver]);
    clearTimeout(timer);
    if (inTime) {
      release();
    } else {
      log(
        "vhost-user: requests are still running on the medium after the front end left; " +
          "their guest memory stays mapped until they finish",
      );
      void closed.then(release);
    }
    this.#backendChannel?.close();
    this.#backendChannel = undefined;
    this.#connection.close();
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
