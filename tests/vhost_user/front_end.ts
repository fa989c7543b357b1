/**
 * A fake vhost-user front-end for protocol tests: it connects to the back
 * end's socket and sends the messages QEMU 7.2 sends (reference
 * vhost-user.md §6), with a memfd as guest memory, its own eventfds for
 * kick/call/err, and a guest-side split ring to put virtio-blk requests on.
 * Everything goes through the project's own FFI modules, the same ones the
 * back end uses.
 */

import assert from "node:assert/strict";
import { RequestHeader, RequestType } from "../../src/blk/spec.ts";
import {
  createEventFd,
  drainEventFd,
  signalEventFd,
  waitReadable,
} from "../../src/vhost_user/eventfd.ts";
import { closeFd } from "../../src/vhost_user/libc.ts";
import { createMemoryFile, type Mapping, mapShared, unmap } from "../../src/vhost_user/mapping.ts";
import {
  decodeU64,
  decodeVringState,
  encodeMemoryTable,
  encodeSingleRegion,
  encodeU64,
  encodeVringAddress,
  encodeVringState,
  HeaderFlag,
  type Message,
  receiveMessage,
  type RegionDescription,
  REPLY_FLAGS,
  Request,
  sendMessage,
} from "../../src/vhost_user/messages.ts";
import { PollSet } from "../../src/vhost_user/sys_structs.ts";
import { connectUnix, type UnixConnection } from "../../src/vhost_user/unix_socket.ts";
import { AvailRing, descriptorTableSize, UsedRing } from "../../src/virtio/ring_layout.ts";
import { DescriptorFlag } from "../../src/virtio/spec.ts";

/** Feature sets QEMU sent (reference §5.1). */
export const QemuFeatures = {
  SEABIOS_MODERN: 0x1_4000_0046n,
  LINUX_MODERN: 0x1_7000_6e46n,
  SEABIOS_LEGACY: 0x4000_0000n,
  LINUX_LEGACY: 0x7000_6e46n,
} as const;

/** Where the fake puts things in its guest memory: ring q at RING_AREA + q × RING_STRIDE, … */
const RING_SIZE = 128;
const RING_AREA = 0x1_0000;
const RING_STRIDE = 0x2000;
/** … and ring q's request headers and status bytes at DATA_AREA + q × DATA_STRIDE. */
const DATA_AREA = 0x4_0000;
const DATA_STRIDE = 0x4000;
/** Most rings the fake drives (their areas end below DATA_BUFFER). */
const MAX_RINGS = 16;

/** The fake's side of one vring. */
interface FakeRing {
  kick: number;
  call: number;
  err: number;
  /** Where the ring sits (GPA). */
  ringBase: number;
  nextAvail: number;
  lastUsed: number;
  nextDescriptor: number;
}

/** One request's result. */
export interface Completion {
  readonly status: number;
  readonly usedLength: number;
  readonly id: number;
}

/** Options of {@linkcode FakeFrontEnd.connect}. */
export interface FakeOptions {
  /** Guest memory size (default 1 MiB). */
  memoryBytes?: number;
  /** The front-end's "user address" of guest memory (QEMU's mmap address). */
  userBase?: bigint;
  /** Seal the memory file against shrinking and growing, as QEMU does (default true). */
  sealed?: boolean;
  /** The rings the front end drives, QEMU's num-queues (default 1); GET_QUEUE_NUM must agree. */
  queues?: number;
}

/** A front-end speaking vhost-user to a back end over a socket. */
export class FakeFrontEnd {
  readonly connection: UnixConnection;
  readonly memoryBytes: number;
  readonly userBase: bigint;
  readonly memfd: number;
  readonly mapping: Mapping;
  /** The guest memory as the fake front-end sees it (GPA 0 is index 0). */
  readonly view: DataView;
  readonly bytes: Uint8Array;
  /** The rings, by vring index. */
  readonly #rings: FakeRing[];

  /** Ring 0's kick eventfd. */
  get kick(): number {
    return this.#rings[0].kick;
  }
  /** Ring 0's call eventfd. */
  get call(): number {
    return this.#rings[0].call;
  }
  /** Ring 0's err eventfd. */
  get err(): number {
    return this.#rings[0].err;
  }
  /** Where ring 0 sits (GPA); change before startRing to move it. */
  get ringBase(): number {
    return this.#rings[0].ringBase;
  }
  set ringBase(gpa: number) {
    this.#rings[0].ringBase = gpa;
  }
  /** Ring `queue`'s call eventfd. */
  callOf(queue: number): number {
    return this.#rings[queue].call;
  }

  private constructor(connection: UnixConnection, options: FakeOptions) {
    this.connection = connection;
    this.memoryBytes = options.memoryBytes ?? 1 << 20;
    this.userBase = options.userBase ?? 0x7f3a_0000_0000n;
    const queues = options.queues ?? 1;
    assert.ok(queues >= 1 && queues <= MAX_RINGS, `the fake drives 1 to ${MAX_RINGS} rings`);
    this.#rings = Array.from({ length: queues }, (_, q) => ({
      kick: -1,
      call: -1,
      err: -1,
      ringBase: RING_AREA + q * RING_STRIDE,
      nextAvail: 0,
      lastUsed: 0,
      nextDescriptor: 0,
    }));
    this.memfd = createMemoryFile("fake-guest-ram", this.memoryBytes, {
      sealed: options.sealed ?? true,
    });
    this.mapping = mapShared(this.memfd, this.memoryBytes);
    const buffer = Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(this.mapping.address)!,
      this.memoryBytes,
    );
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    this.#u16 = new Uint16Array(buffer);
  }

  /** The guest memory as 16-bit words, for the ring indexes that need ordered access. */
  readonly #u16: Uint16Array;

  /** Connects to a back end listening on `path`. */
  static connect(path: string, options: FakeOptions = {}): FakeFrontEnd {
    return new FakeFrontEnd(connectUnix(path), options);
  }

  // ---- messages ---------------------------------------------------------------

  /** Sends a request; `needReply` sets NEED_REPLY (flags 0x9). */
  send(
    request: number,
    payload?: Uint8Array,
    options: { fds?: number[]; needReply?: boolean } = {},
  ): void {
    const flags = HeaderFlag.VERSION | (options.needReply ? HeaderFlag.NEED_REPLY : 0);
    sendMessage(this.connection, request, flags, payload, options.fds ?? []);
  }

  /** Reads the back end's next message, which must be a reply to `request`. */
  async reply(request: number): Promise<Message> {
    const message = await receiveMessage(this.connection);
    assert.ok(message !== null, `no reply to request ${request}: the back end closed`);
    assert.equal(message.request, request, "a reply repeats the request number");
    assert.equal(message.flags, REPLY_FLAGS, "reply flags are 0x5");
    return message;
  }

  /** Sends a request that always gets a u64 reply, and returns the value. */
  async getU64(request: number): Promise<bigint> {
    this.send(request);
    const value = decodeU64((await this.reply(request)).payload);
    assert.ok(value !== undefined, "a u64 reply has size 8");
    return value;
  }

  /** Sends a request with NEED_REPLY and returns the ack (0 = success). */
  async acked(request: number, payload?: Uint8Array, fds: number[] = []): Promise<bigint> {
    this.send(request, payload, { fds, needReply: true });
    const value = decodeU64((await this.reply(request)).payload);
    assert.ok(value !== undefined, "an ack is a u64");
    return value;
  }

  /** QEMU's connect sequence (§6 #1–#16): features, protocol features, owner, call, err. */
  async handshake(protocolFeatures?: bigint): Promise<{ features: bigint; protocol: bigint }> {
    const features = await this.getU64(Request.GET_FEATURES);
    const offered = await this.getU64(Request.GET_PROTOCOL_FEATURES);
    const protocol = protocolFeatures ?? offered;
    this.send(Request.SET_PROTOCOL_FEATURES, encodeU64(protocol));
    if (protocol & 1n) {
      assert.equal(await this.getU64(Request.GET_QUEUE_NUM), BigInt(this.#rings.length));
    }
    if (protocol & (1n << 15n)) await this.getU64(Request.GET_MAX_MEM_SLOTS);
    this.send(Request.SET_OWNER);
    assert.equal(await this.getU64(Request.GET_FEATURES), features);
    this.#rings.forEach((ring, queue) => {
      this.setCall(queue);
      ring.err = createEventFd({ nonblocking: true });
      this.send(Request.SET_VRING_ERR, encodeU64(BigInt(queue)), { fds: [ring.err] });
    });
    return { features, protocol };
  }

  /** Sends ring `queue` a fresh call eventfd (SET_VRING_CALL); returns the old one, still open. */
  setCall(queue = 0): number {
    const ring = this.#rings[queue];
    const old = ring.call;
    ring.call = createEventFd({ nonblocking: true });
    this.send(Request.SET_VRING_CALL, encodeU64(BigInt(queue)), { fds: [ring.call] });
    return old;
  }

  /** The one region of guest memory (GPA 0). */
  region(): RegionDescription {
    return {
      gpa: 0n,
      size: BigInt(this.memoryBytes),
      userAddress: this.userBase,
      mmapOffset: 0n,
    };
  }

  /** The user address of a GPA (the front-end's mapping of guest memory). */
  user(gpa: number): bigint {
    return this.userBase + BigInt(gpa);
  }

  /**
   * A ring start as QEMU does it (§6 #19–#28): features twice around a new
   * call fd, the memory message `memory` if any, num, base, addresses, a
   * kick fd signalled once, enable. Ring `queue` (default 0).
   */
  async startRing(options: {
    queue?: number;
    features: bigint;
    memory?: "add" | "table" | "none";
    acked?: boolean;
    base?: number;
    /** A descriptor table GPA other than the ring's (to test bad addresses). */
    desc?: number;
    /** Hand over a blocking kick eventfd (QEMU's are nonblocking). */
    blockingKick?: boolean;
  }): Promise<void> {
    const queue = options.queue ?? 0;
    const ring = this.#rings[queue];
    this.send(Request.SET_FEATURES, encodeU64(options.features));
    this.setCall(queue);
    this.send(Request.SET_FEATURES, encodeU64(options.features));
    const memory = options.memory ?? "none";
    if (memory !== "none") {
      const request = memory === "add" ? Request.ADD_MEM_REG : Request.SET_MEM_TABLE;
      const payload = memory === "add"
        ? encodeSingleRegion(this.region())
        : encodeMemoryTable([this.region()]);
      if (options.acked ?? true) {
        assert.equal(await this.acked(request, payload, [this.memfd]), 0n, "memory acked");
      } else this.send(request, payload, { fds: [this.memfd] });
    }
    this.#resetRing(queue);
    this.send(Request.SET_VRING_NUM, encodeVringState(queue, RING_SIZE));
    this.send(Request.SET_VRING_BASE, encodeVringState(queue, options.base ?? 0));
    const { desc, avail, used } = this.ringAddresses(queue);
    this.send(
      Request.SET_VRING_ADDR,
      encodeVringAddress({
        index: queue,
        flags: 0,
        desc: this.user(options.desc ?? desc),
        used: this.user(used),
        avail: this.user(avail),
        log: BigInt(used),
      }),
    );
    if (ring.kick >= 0) closeFd(ring.kick);
    ring.kick = createEventFd({ nonblocking: !options.blockingKick });
    signalEventFd(ring.kick);
    this.send(Request.SET_VRING_KICK, encodeU64(BigInt(queue)), { fds: [ring.kick] });
    this.send(Request.SET_VRING_ENABLE, encodeVringState(queue, 1));
  }

  /** A ring stop (§9.2) of ring `queue`: disable, then GET_VRING_BASE; returns the reported base. */
  async stopRing(queue = 0): Promise<number> {
    this.send(Request.SET_VRING_ENABLE, encodeVringState(queue, 0));
    this.send(Request.GET_VRING_BASE, encodeVringState(queue, 0));
    const state = decodeVringState((await this.reply(Request.GET_VRING_BASE)).payload);
    assert.ok(state !== undefined);
    assert.equal(state.index, queue);
    return state.num;
  }

  // ---- the guest's ring ------------------------------------------------------

  /** GPAs of ring `queue`'s parts: modern layout (used 4-aligned right after avail). */
  ringAddresses(queue = 0): { desc: number; avail: number; used: number } {
    const desc = this.#rings[queue].ringBase;
    const avail = desc + descriptorTableSize(RING_SIZE);
    const used = (avail + AvailRing.size(RING_SIZE) + 3) & ~3;
    return { desc, avail, used };
  }

  #resetRing(queue: number): void {
    const { desc, used } = this.ringAddresses(queue);
    this.bytes.fill(0, desc, used + UsedRing.size(RING_SIZE));
    const ring = this.#rings[queue];
    ring.nextAvail = 0;
    ring.lastUsed = 0;
    ring.nextDescriptor = 0;
  }

  #descriptor(queue: number, address: number, length: number, flags: number): number {
    const ring = this.#rings[queue];
    const index = ring.nextDescriptor;
    ring.nextDescriptor = (index + 1) % RING_SIZE;
    const at = this.ringAddresses(queue).desc + 16 * index;
    this.view.setBigUint64(at, BigInt(address), true);
    this.view.setUint32(at + 8, length, true);
    this.view.setUint16(at + 12, flags, true);
    this.view.setUint16(at + 14, flags & DescriptorFlag.NEXT ? (index + 1) % RING_SIZE : 0, true);
    return index;
  }

  /**
   * Puts a virtio-blk request on ring `queue` (not kicked): header, optional
   * data buffer, status byte. Returns where the data and status are. With
   * `publish: false` avail.idx is left alone, so several requests can be
   * made available at once with {@linkcode publishAvail} (a device that is
   * awake may otherwise take some of them before the rest are posted).
   */
  post(
    type: number,
    sector: number,
    data?: { gpa: number; length: number },
    queue = 0,
    { publish = true }: { publish?: boolean } = {},
  ): {
    head: number;
    status: number;
  } {
    const ring = this.#rings[queue];
    const slot = DATA_AREA + queue * DATA_STRIDE + 64 * (ring.nextAvail % 256);
    const header = slot, status = slot + 32;
    this.view.setUint32(header + RequestHeader.TYPE, type, true);
    this.view.setUint32(header + RequestHeader.IOPRIO, 0, true);
    this.view.setBigUint64(header + RequestHeader.SECTOR, BigInt(sector), true);
    this.bytes[status] = 0xee;
    const head = this.#descriptor(queue, header, 16, DescriptorFlag.NEXT);
    if (data) {
      const write = type === RequestType.IN || type === RequestType.GET_ID;
      this.#descriptor(
        queue,
        data.gpa,
        data.length,
        DescriptorFlag.NEXT | (write ? DescriptorFlag.WRITE : 0),
      );
    }
    this.#descriptor(queue, status, 1, DescriptorFlag.WRITE);
    const { avail } = this.ringAddresses(queue);
    this.view.setUint16(avail + AvailRing.RING + 2 * (ring.nextAvail % RING_SIZE), head, true);
    ring.nextAvail = (ring.nextAvail + 1) & 0xffff;
    if (publish) this.publishAvail(queue);
    return { head, status };
  }

  /** Makes every request posted on ring `queue` available (one store of avail.idx). */
  publishAvail(queue = 0): void {
    const { avail } = this.ringAddresses(queue);
    this.view.setUint16(avail + AvailRing.IDX, this.#rings[queue].nextAvail, true);
  }

  /**
   * How many requests the device has taken off the ring, as it tells the
   * driver at the end of each drain pass with EVENT_IDX (used->avail_event,
   * virtio 1.2 §2.7.10).
   */
  takenByDevice(queue = 0): number {
    const { used } = this.ringAddresses(queue);
    return this.view.getUint16(used + UsedRing.availEvent(RING_SIZE), true);
  }

  /** Signals ring `queue`'s kick eventfd. */
  kickRing(queue = 0): void {
    signalEventFd(this.#rings[queue].kick);
  }

  /** Waits for an interrupt on `fd` (default: the current call fd); false on timeout. */
  async interrupted(fd = this.call, timeoutMs = 5000): Promise<boolean> {
    const ready = await waitReadable(new PollSet([fd]), timeoutMs);
    if (ready !== 0) return false;
    return drainEventFd(fd) > 0;
  }

  /**
   * The used elements ring `queue` published since the last call. As Linux
   * does with EVENT_IDX (virtqueue_enable_cb_prepare, then virtqueue_poll):
   * asks for an interrupt at the next used element, then looks at used.idx
   * again. An element the device published after the first look, while
   * used_event still named an older index, brought no interrupt, and none
   * would come for it (virtio 1.2 §2.7.10): it is taken now.
   */
  takeUsed(queue = 0): { id: number; len: number }[] {
    const ring = this.#rings[queue];
    const { used, avail } = this.ringAddresses(queue);
    const out = [];
    for (;;) {
      const idx = Atomics.load(this.#u16, (used + UsedRing.IDX) >>> 1);
      if (idx === ring.lastUsed) break;
      while (ring.lastUsed !== idx) {
        const at = used + UsedRing.RING + UsedRing.ELEMENT_SIZE * (ring.lastUsed % RING_SIZE);
        out.push({
          id: this.view.getUint32(at + UsedRing.ELEMENT_ID, true),
          len: this.view.getUint32(at + UsedRing.ELEMENT_LEN, true),
        });
        ring.lastUsed = (ring.lastUsed + 1) & 0xffff;
      }
      // A sequentially consistent store: the next look at used.idx cannot pass it.
      Atomics.store(this.#u16, (avail + AvailRing.usedEvent(RING_SIZE)) >>> 1, ring.lastUsed);
    }
    return out;
  }

  /** Posts one request on ring `queue`, kicks, waits for its interrupt, returns its status. */
  async request(
    type: number,
    sector: number,
    data?: { gpa: number; length: number },
    queue = 0,
  ): Promise<Completion> {
    const { head, status } = this.post(type, sector, data, queue);
    this.kickRing(queue);
    assert.ok(
      await this.interrupted(this.#rings[queue].call),
      "the back end interrupts after completing",
    );
    const used = this.takeUsed(queue);
    assert.equal(used.length, 1, "one used element");
    assert.equal(used[0].id, head);
    return { status: this.bytes[status], usedLength: used[0].len, id: used[0].id };
  }

  /** Closes the connection (the back end sees EOF) and releases the fake's resources. */
  close(): void {
    this.connection.close();
    for (const ring of this.#rings) for (const fd of [ring.kick, ring.call, ring.err]) closeFd(fd);
    closeFd(this.memfd);
    unmap(this.mapping);
  }
}

/** A data buffer area of the fake guest (GPA), away from ring and headers. */
export const DATA_BUFFER = 0x8_0000;
