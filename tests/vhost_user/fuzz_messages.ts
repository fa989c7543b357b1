/**
 * What the vhost-user protocol fuzzer sends: messages drawn per request
 * type, either well formed for this connection's guest (its one memory
 * region and ring, see {@linkcode GuestPlan}) or with fields pushed to the
 * edges (zero, 2^53, 2^64 - 1, sizes past the file, misaligned, other
 * indexes), then, now and then, mutated as bytes (truncated, extended,
 * bits flipped, replaced); with the fds the request wants, or any number
 * of fds of any kind; and rarely with a header the back end cannot read
 * (another version, a payload over 4 KiB). Also the guest's side of the
 * ring: chains of requests written into the guest memory, mostly well
 * formed, sometimes garbage.
 *
 * The layouts come from `src/vhost_user/messages.ts` and
 * `src/virtio/ring_layout.ts`, the modules that own them.
 *
 * @module
 */

import { RequestHeader, RequestType } from "../../src/blk/spec.ts";
import type { Random } from "../../src/guest/jobs/block_order.ts";
import {
  ConfigPayload,
  encodeConfig,
  encodeMemoryTable,
  encodeSingleRegion,
  encodeU64,
  encodeVringAddress,
  encodeVringState,
  HeaderFlag,
  MAX_PAYLOAD,
  MAX_TABLE_REGIONS,
  type RegionDescription,
  Request,
  VringFd,
} from "../../src/vhost_user/messages.ts";
import { AvailRing, descriptorTableSize, UsedRing } from "../../src/virtio/ring_layout.ts";
import { DescriptorFlag } from "../../src/virtio/spec.ts";
import { FD_KINDS, type FdKind } from "./fuzz_fds.ts";

/** One connection's guest: a memory region (one memfd) and a ring inside it. */
export interface GuestPlan {
  /** Bytes of guest memory (GPA 0 up). */
  readonly memoryBytes: number;
  /** The front end's address of GPA 0. */
  readonly userBase: bigint;
  /** GPA of the descriptor table; the available and used rings follow. */
  readonly ringGpa: number;
  /** Ring size. */
  readonly num: number;
}

/** A fd to attach: a fresh one of a kind, the plan's memory file, or a new kick eventfd. */
export type FdRequest =
  | { readonly kind: FdKind }
  | { readonly kind: "plan-memory" }
  | { readonly kind: "kick" };

/** One message as the fuzzer sends it. */
export interface FuzzMessage {
  readonly request: number;
  readonly flags: number;
  readonly payload: Uint8Array<ArrayBuffer>;
  readonly fds: readonly FdRequest[];
  /** A header size field other than the payload's length (the stream is then lost). */
  readonly sizeField?: number;
}

/** Requests the back end answers with a payload, whatever the flags (§4.1). */
export const ALWAYS_ANSWERED: ReadonlySet<number> = new Set([
  Request.GET_FEATURES,
  Request.GET_PROTOCOL_FEATURES,
  Request.GET_QUEUE_NUM,
  Request.GET_MAX_MEM_SLOTS,
  Request.GET_VRING_BASE,
  Request.GET_CONFIG,
]);

/** Whether the back end can read the header at all (else it must hang up). */
export function readableHeader(message: FuzzMessage): boolean {
  const size = message.sizeField ?? message.payload.length;
  return (message.flags & HeaderFlag.VERSION_MASK) === HeaderFlag.VERSION && size <= MAX_PAYLOAD;
}

/** Whether the back end must send exactly one reply to `message`. */
export function expectsReply(message: FuzzMessage): boolean {
  return ALWAYS_ANSWERED.has(message.request) || (message.flags & HeaderFlag.NEED_REPLY) !== 0;
}

/** The plan's ring addresses (GPA), modern layout. */
export function ringParts(plan: GuestPlan): { desc: number; avail: number; used: number } {
  const desc = plan.ringGpa;
  const avail = desc + descriptorTableSize(plan.num);
  const used = (avail + AvailRing.size(plan.num) + 3) & ~3;
  return { desc, avail, used };
}

/** A plan for a new connection. */
export function randomPlan(random: Random): GuestPlan {
  const memoryBytes = random.below(2) ? 1 << 20 : 256 << 10;
  const num = [1, 2, 8, 64, 128, 256][random.below(6)];
  return {
    memoryBytes,
    userBase: 0x7f00_0000_0000n + BigInt(random.below(1 << 16)) * 0x10_0000n,
    ringGpa: 0x1000 * (1 + random.below(4)),
    num,
  };
}

const U64_EDGES = [
  0n,
  1n,
  0xfffn,
  0x1000n,
  1n << 32n,
  (1n << 53n) - 1n,
  1n << 53n,
  1n << 63n,
  (1n << 64n) - 1n,
  (1n << 64n) - 0x1000n,
];
const U32_EDGES = [
  0,
  1,
  2,
  0xff,
  0x100,
  0x101,
  0x400,
  0x401,
  0xffff,
  0x10000,
  0x7fff_ffff,
  0xffff_ffff,
];

function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.below(items.length)];
}

function randomU64(random: Random): bigint {
  return (BigInt(random.nextU32()) << 32n) | BigInt(random.nextU32());
}

function edgeU64(random: Random): bigint {
  return random.below(3) === 0 ? randomU64(random) : pick(random, U64_EDGES);
}

function edgeU32(random: Random): number {
  return random.below(3) === 0 ? random.nextU32() : pick(random, U32_EDGES);
}

function randomBytes(random: Random, length: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = random.nextU32() & 0xff;
  return bytes;
}

/** A vring index: mostly 0 (the one queue), else any. */
function ringIndex(random: Random): number {
  return random.below(5) === 0 ? edgeU32(random) : 0;
}

/** The plan's region, exactly or with one field pushed to an edge. */
function region(plan: GuestPlan, random: Random, exact: boolean): RegionDescription {
  const good: RegionDescription = {
    gpa: 0n,
    size: BigInt(plan.memoryBytes),
    userAddress: plan.userBase,
    mmapOffset: 0n,
  };
  if (exact) return good;
  switch (random.below(6)) {
    case 0:
      return { ...good, gpa: edgeU64(random) };
    case 1:
      return {
        ...good,
        size: pick(random, [0n, BigInt(plan.memoryBytes) + 4096n, edgeU64(random)]),
      };
    case 2:
      return { ...good, userAddress: edgeU64(random) };
    case 3:
      return {
        ...good,
        mmapOffset: pick(random, [1n, 4096n, BigInt(plan.memoryBytes), edgeU64(random)]),
      };
    case 4:
      // A second region that overlaps the first, or sits right after it.
      return {
        gpa: pick(random, [0n, BigInt(plan.memoryBytes), 0x1000n]),
        size: 4096n,
        userAddress: plan.userBase + pick(random, [0n, BigInt(plan.memoryBytes), 0x10_0000_0000n]),
        mmapOffset: 0n,
      };
    default:
      return {
        gpa: edgeU64(random),
        size: edgeU64(random),
        userAddress: edgeU64(random),
        mmapOffset: edgeU64(random),
      };
  }
}

/** A memory fd: mostly the plan's file, else any kind. */
function memoryFd(random: Random): FdRequest {
  return random.below(4) === 0 ? { kind: pick(random, FD_KINDS) } : { kind: "plan-memory" };
}

/** A notifier fd: mostly an eventfd, else any kind. */
function notifierFd(random: Random): FdKind {
  return random.below(3) === 0
    ? pick(random, FD_KINDS)
    : pick(random, ["eventfd", "eventfd", "eventfd-blocking", "eventfd-full"] as const);
}

function vringAddress(plan: GuestPlan, random: Random, exact: boolean): Uint8Array<ArrayBuffer> {
  const { desc, avail, used } = ringParts(plan);
  const user = (gpa: number) => plan.userBase + BigInt(gpa);
  const addresses = {
    index: exact ? 0 : ringIndex(random),
    flags: exact ? 0 : pick(random, [0, 1, random.nextU32()]),
    desc: user(desc),
    used: user(used),
    avail: user(avail),
    log: 0n,
  };
  if (!exact) {
    const nudge = () =>
      pick(random, [
        edgeU64(random),
        plan.userBase + BigInt(plan.memoryBytes) - 2n,
        plan.userBase - 16n,
        user(desc) + 1n,
        user(desc) + BigInt(random.below(plan.memoryBytes)),
      ]);
    switch (random.below(4)) {
      case 0:
        addresses.desc = nudge();
        break;
      case 1:
        addresses.used = nudge();
        break;
      case 2:
        addresses.avail = nudge();
        break;
      default:
        addresses.log = edgeU64(random);
    }
  }
  return encodeVringAddress(addresses);
}

function config(random: Random, get: boolean): Uint8Array<ArrayBuffer> {
  const offset = random.below(3) === 0 ? edgeU32(random) : random.below(64);
  const size = random.below(4) === 0 ? edgeU32(random) & 0x1ff : random.below(16);
  const data = randomBytes(random, get ? Math.min(size, ConfigPayload.MAX_DATA) : size & 0xff);
  const bytes = encodeConfig({ offset, size: data.length, flags: random.below(3), data });
  // The size field and the bytes that follow may disagree.
  if (random.below(4) === 0) new DataView(bytes.buffer).setUint32(ConfigPayload.SIZE, size, true);
  return bytes;
}

/** A payload (and fds) for `request`, exact for the plan when `exact`. */
function body(
  request: number,
  plan: GuestPlan,
  random: Random,
  exact: boolean,
): { payload: Uint8Array<ArrayBuffer>; fds: FdRequest[] } {
  const none = { payload: new Uint8Array(0), fds: [] };
  switch (request) {
    case Request.GET_FEATURES:
    case Request.GET_PROTOCOL_FEATURES:
    case Request.GET_QUEUE_NUM:
    case Request.GET_MAX_MEM_SLOTS:
    case Request.SET_OWNER:
    case Request.RESET_OWNER:
    case Request.RESET_DEVICE:
      return none;
    case Request.SET_FEATURES:
      return {
        payload: encodeU64(
          exact ? pick(random, [0x1_7000_6e46n, 0x1_4000_0046n, 0x7000_6e46n]) : edgeU64(random),
        ),
        fds: [],
      };
    case Request.SET_PROTOCOL_FEATURES:
      return { payload: encodeU64(exact ? 0x8209n : edgeU64(random)), fds: [] };
    case Request.SET_MEM_TABLE: {
      const count = exact
        ? 1
        : pick(random, [0, 1, 1, 2, MAX_TABLE_REGIONS, MAX_TABLE_REGIONS + 1]);
      const regions = Array.from(
        { length: count },
        (_, i) => region(plan, random, exact || (i === 0 && random.below(2) === 0)),
      );
      const fdCount = exact || random.below(2) ? count : random.below(MAX_TABLE_REGIONS + 2);
      return {
        payload: encodeMemoryTable(regions),
        fds: Array.from(
          { length: fdCount },
          () => exact ? { kind: "plan-memory" } : memoryFd(random),
        ),
      };
    }
    case Request.ADD_MEM_REG:
    case Request.REM_MEM_REG: {
      const fdCount = request === Request.REM_MEM_REG || (!exact && random.below(5) === 0)
        ? random.below(2)
        : 1;
      return {
        payload: encodeSingleRegion(region(plan, random, exact)),
        fds: Array.from(
          { length: fdCount },
          () => exact ? { kind: "plan-memory" } : memoryFd(random),
        ),
      };
    }
    case Request.SET_VRING_NUM:
      return {
        payload: encodeVringState(
          exact ? 0 : ringIndex(random),
          exact ? plan.num : pick(random, [plan.num, 0, 3, 1024, 2048, edgeU32(random)]),
        ),
        fds: [],
      };
    case Request.SET_VRING_BASE:
    case Request.GET_VRING_BASE:
      return {
        payload: encodeVringState(exact ? 0 : ringIndex(random), exact ? 0 : edgeU32(random)),
        fds: [],
      };
    case Request.SET_VRING_ADDR:
      return { payload: vringAddress(plan, random, exact), fds: [] };
    case Request.SET_VRING_KICK:
    case Request.SET_VRING_CALL:
    case Request.SET_VRING_ERR: {
      const noFd = !exact && random.below(6) === 0;
      const value = BigInt(exact ? 0 : ringIndex(random) & (random.below(2) ? 0xff : 0xffff_ffff)) |
        (noFd ? BigInt(VringFd.NO_FD) : 0n);
      const kick = request === Request.SET_VRING_KICK;
      const fds: FdRequest[] = noFd && random.below(2) ? [] : [
        kick && (exact || random.below(3))
          ? { kind: "kick" }
          : { kind: exact ? "eventfd" : notifierFd(random) },
      ];
      if (!exact && random.below(8) === 0) fds.push({ kind: notifierFd(random) });
      return { payload: encodeU64(random.below(8) === 0 ? edgeU64(random) : value), fds };
    }
    case Request.SET_VRING_ENABLE:
      return {
        payload: encodeVringState(
          exact ? 0 : ringIndex(random),
          exact ? 1 : pick(random, [0, 1, 1, 2, edgeU32(random)]),
        ),
        fds: [],
      };
    case Request.GET_CONFIG:
    case Request.SET_CONFIG:
      return { payload: config(random, request === Request.GET_CONFIG), fds: [] };
    case Request.SET_BACKEND_REQ_FD:
      return {
        payload: new Uint8Array(0),
        fds: [{ kind: exact ? "socket" : pick(random, FD_KINDS) }],
      };
    default:
      // Requests this back end does not serve (the log, inflight and status
      // families, numbers nobody assigned): anything at all.
      return {
        payload: randomBytes(random, pick(random, [0, 8, 16, 40, random.below(64)])),
        fds: Array.from({ length: random.below(3) }, () => ({ kind: pick(random, FD_KINDS) })),
      };
  }
}

/** Request numbers drawn, weighted toward those that change the back end's state. */
const REQUESTS: readonly number[] = [
  ...Object.values(Request),
  Request.SET_MEM_TABLE,
  Request.ADD_MEM_REG,
  Request.REM_MEM_REG,
  Request.SET_VRING_ADDR,
  Request.SET_VRING_KICK,
  Request.SET_VRING_CALL,
  Request.SET_VRING_ENABLE,
  Request.GET_VRING_BASE,
  Request.SET_VRING_NUM,
  Request.SET_VRING_BASE,
  Request.SET_FEATURES,
  Request.RESET_OWNER,
  0,
  19,
  20,
  22,
  23,
  26,
  27,
  28,
  29,
  30,
  33,
  35,
  39,
  40,
  41,
  99,
  0x7fff_ffff,
  0xffff_ffff,
];

/** Flips, truncates, extends or replaces the payload's bytes. */
function mutate(payload: Uint8Array<ArrayBuffer>, random: Random): Uint8Array<ArrayBuffer> {
  switch (random.below(4)) {
    case 0:
      return payload.slice(0, random.below(payload.length + 1));
    case 1: {
      const longer = new Uint8Array(
        payload.length + 1 +
          random.below(random.below(8) === 0 ? MAX_PAYLOAD - payload.length : 16),
      );
      longer.set(payload);
      longer.set(randomBytes(random, longer.length - payload.length), payload.length);
      return longer;
    }
    case 2: {
      const flipped = payload.slice();
      for (let i = 0, n = 1 + random.below(4); i < n && flipped.length > 0; i++) {
        flipped[random.below(flipped.length)] ^= 1 << random.below(8);
      }
      return flipped;
    }
    default:
      return randomBytes(
        random,
        random.below(8) === 0 ? random.below(MAX_PAYLOAD + 1) : random.below(64),
      );
  }
}

/** A random message: exact with probability `exactness`, else pushed to the edges. */
export function randomMessage(plan: GuestPlan, random: Random, exactness = 0.3): FuzzMessage {
  const request = pick(random, REQUESTS);
  const exact = random.nextU32() / 2 ** 32 < exactness;
  let { payload, fds } = body(request, plan, random, exact);
  if (!exact && random.below(5) === 0) payload = mutate(payload, random);
  if (!exact && random.below(8) === 0) {
    fds = Array.from({ length: random.below(11) }, () => ({ kind: pick(random, FD_KINDS) }));
  }
  let flags = HeaderFlag.VERSION | (random.below(2) ? HeaderFlag.NEED_REPLY : 0);
  // Bits the back end must ignore (REPLY from a front end, bits nobody assigned).
  if (random.below(16) === 0) flags |= random.nextU32() & ~HeaderFlag.VERSION_MASK;
  return { request, flags, payload, fds };
}

/** A message whose header the back end cannot read: it must hang up. */
export function unreadableMessage(random: Random): FuzzMessage {
  if (random.below(2)) {
    return {
      request: Request.GET_FEATURES,
      flags: pick(random, [0, 2, 3, HeaderFlag.NEED_REPLY | 2]),
      payload: new Uint8Array(0),
      fds: [],
    };
  }
  return {
    request: pick(random, REQUESTS),
    flags: HeaderFlag.VERSION,
    payload: new Uint8Array(0),
    fds: [],
    sizeField: MAX_PAYLOAD + 1 + random.below(0x7fff_0000),
  };
}

/** QEMU's connect and ring start for the plan, as exact messages (reference §6). */
export function startSequence(plan: GuestPlan, random: Random): FuzzMessage[] {
  const message = (request: number, needReply = false): FuzzMessage => {
    const { payload, fds } = body(request, plan, random, true);
    return {
      request,
      flags: HeaderFlag.VERSION | (needReply ? HeaderFlag.NEED_REPLY : 0),
      payload,
      fds,
    };
  };
  return [
    message(Request.GET_FEATURES),
    message(Request.GET_PROTOCOL_FEATURES),
    message(Request.SET_PROTOCOL_FEATURES),
    message(Request.GET_QUEUE_NUM),
    message(Request.SET_OWNER),
    message(Request.SET_VRING_CALL),
    message(Request.SET_VRING_ERR),
    message(Request.SET_FEATURES),
    message(random.below(2) ? Request.ADD_MEM_REG : Request.SET_MEM_TABLE, true),
    message(Request.SET_VRING_NUM),
    message(Request.SET_VRING_BASE),
    message(Request.SET_VRING_ADDR),
    message(Request.SET_VRING_KICK),
    message(Request.SET_VRING_ENABLE),
  ];
}

/**
 * Writes `count` new chains into the plan's ring (guest memory `bytes`,
 * GPA 0 at index 0) and publishes them: mostly well-formed block requests
 * (header, data, status) inside guest memory, sometimes descriptors with
 * any address, length, flags and next. Returns the new avail index.
 */
export function postChains(
  bytes: Uint8Array,
  plan: GuestPlan,
  random: Random,
  count: number,
): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { desc, avail } = ringParts(plan);
  const dataStart = ringParts(plan).used + UsedRing.size(plan.num) + 0x1000;
  const room = plan.memoryBytes - dataStart - 0x2000;
  let idx = view.getUint16(avail + AvailRing.IDX, true);
  let next = random.below(plan.num);
  const descriptor = (address: bigint, length: number, flags: number): number => {
    const index = next;
    next = (next + 1) % plan.num;
    const at = desc + 16 * index;
    view.setBigUint64(at, address, true);
    view.setUint32(at + 8, length, true);
    view.setUint16(at + 12, flags, true);
    view.setUint16(at + 14, next, true);
    return index;
  };
  for (let c = 0; c < count; c++) {
    let head: number;
    if (room > 0 && random.below(12) !== 0) {
      const header = dataStart + 64 * random.below(Math.floor(room / 64 / 2));
      const type = pick(random, [
        RequestType.IN,
        RequestType.IN,
        RequestType.OUT,
        RequestType.OUT,
        RequestType.FLUSH,
        RequestType.GET_ID,
        RequestType.DISCARD,
        7,
      ]);
      view.setUint32(header + RequestHeader.TYPE, type, true);
      view.setUint32(header + RequestHeader.IOPRIO, 0, true);
      view.setBigUint64(
        header + RequestHeader.SECTOR,
        BigInt(random.below(2) ? random.below(2048) : random.nextU32()),
        true,
      );
      const length = pick(random, [512, 4096, 512 * (1 + random.below(16)), random.below(8192)]);
      const data = dataStart + room / 2 +
        512 * random.below(Math.max(1, Math.floor((room / 2 - length) / 512)));
      const write = type === RequestType.IN || type === RequestType.GET_ID
        ? DescriptorFlag.WRITE
        : 0;
      head = descriptor(BigInt(header), 16, DescriptorFlag.NEXT);
      if (type !== RequestType.FLUSH || random.below(4) === 0) {
        descriptor(BigInt(data), length, DescriptorFlag.NEXT | write);
      }
      descriptor(BigInt(header + 32), 1, DescriptorFlag.WRITE);
    } else {
      head = next;
      for (let i = 0, n = 1 + random.below(4); i < n; i++) {
        const at = desc + 16 * next;
        view.setBigUint64(
          at,
          random.below(2) ? edgeU64(random) : BigInt(random.below(plan.memoryBytes)),
          true,
        );
        view.setUint32(at + 8, random.below(2) ? edgeU32(random) : random.below(4096), true);
        view.setUint16(at + 12, random.nextU32() & 0xffff & (random.below(2) ? 0x7 : 0xffff), true);
        view.setUint16(
          at + 14,
          random.below(2) ? (next + 1) % plan.num : random.nextU32() & 0xffff,
          true,
        );
        next = (next + 1) % plan.num;
      }
    }
    view.setUint16(
      avail + AvailRing.RING + 2 * (idx % plan.num),
      random.below(48) === 0 ? random.nextU32() & 0xffff : head,
      true,
    );
    idx = (idx + 1) & 0xffff;
  }
  // Now and then an index that jumps past the ring (a broken driver).
  if (random.below(64) === 0) idx = random.nextU32() & 0xffff;
  view.setUint16(avail + AvailRing.IDX, idx, true);
  return idx;
}
