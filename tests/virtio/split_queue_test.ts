/**
 * The device side of a split virtqueue on its own (no device, no
 * transport): ring validation, popping direct and indirect chains, the
 * in-flight table, publishing, notification suppression and EVENT_IDX.
 */

import assert from "node:assert/strict";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { UNREPRESENTABLE_ADDRESS } from "../../src/memory/guest_memory.ts";
import { DescriptorChain } from "../../src/virtio/descriptor_chain.ts";
import { QueueStateBuffer } from "../../src/virtio/queue_state.ts";
import { legacyRingAddresses, legacyRingSize, UsedRing } from "../../src/virtio/ring_layout.ts";
import {
  AVAIL_F_NO_INTERRUPT,
  DESCRIPTOR_SIZE,
  DescriptorFlag,
  featureBit,
  RingFeature,
  USED_F_NO_NOTIFY,
} from "../../src/virtio/spec.ts";
import {
  needEvent,
  Pop,
  type QueueConfig,
  QueueFault,
  SplitQueue,
} from "../../src/virtio/split_queue.ts";
import { GuestRing } from "../helpers/raw_guest.ts";

const { NEXT, WRITE, INDIRECT } = DescriptorFlag;
const RING = 0x1000;
const DATA = 0x8000;
const INDIRECT_DESC = featureBit(RingFeature.INDIRECT_DESC);
const EVENT_IDX = featureBit(RingFeature.EVENT_IDX);

interface Setup {
  memory: SharedGuestMemory;
  state: QueueStateBuffer;
  queue: SplitQueue;
  ring: GuestRing;
  chain: DescriptorChain;
  config: QueueConfig;
}

/** A queue of `size` over 64 KiB of guest memory, activated with `features`. */
function setup(size = 8, features = INDIRECT_DESC, extra: Partial<QueueConfig> = {}): Setup {
  const memory = SharedGuestMemory.allocate(1 << 16);
  const state = new QueueStateBuffer(64);
  const queue = new SplitQueue(memory, state);
  const ring = GuestRing.legacy(memory, RING, size);
  const config = { size, features, ...legacyRingAddresses(RING, size), ...extra };
  assert.equal(queue.activate(config), true);
  const chain = new DescriptorChain(SplitQueue.chainCapacity(config));
  return { memory, state, queue, ring, chain, config };
}

/** Pops every chain of one drain pass; returns the heads, or the fault if it broke. */
function drain(s: Setup): { heads: number[]; fault: number } {
  const heads = [];
  assert.equal(s.queue.beginDrain(), true);
  for (;;) {
    const result = s.queue.pop(s.chain);
    if (result !== Pop.CHAIN) break;
    heads.push(s.chain.head);
  }
  s.queue.endDrain();
  return { heads, fault: s.queue.fault };
}

/** Publishes `head` with `length` under the used lock. */
function publish(s: Setup, head: number, length: number): boolean {
  const generation = s.queue.lockUsed();
  try {
    return s.queue.publish(head, length, generation);
  } finally {
    s.queue.unlockUsed();
  }
}

Deno.test("activate: a legacy ring wholly in memory, aligned, with a power-of-two size", () => {
  const memory = SharedGuestMemory.allocate(1 << 16);
  const queue = new SplitQueue(memory, new QueueStateBuffer(64));
  const at = (base: number, size = 8) => ({
    size,
    features: 0,
    ...legacyRingAddresses(base, size),
  });
  const end = memory.size - legacyRingSize(8);
  const rejected: [string, QueueConfig][] = [
    ["size 3", { ...at(RING, 8), size: 3 }],
    ["size 0", { ...at(RING, 8), size: 0 }],
    ["size above the state's maximum", at(RING, 128)],
    ["desc not 16-aligned", { ...at(RING), desc: RING + 8 }],
    ["avail not 2-aligned", { ...at(RING), avail: RING + 0x201 }],
    ["used not 4-aligned", { ...at(RING), used: RING + 0x1002 }],
    ["ring crossing the end of memory", at(end + 0x1000)],
    ["used ring past the end", { ...at(RING), used: memory.size - 4 }],
    ["negative address", { ...at(RING), desc: -16 }],
    ["address 2^53", { ...at(RING), desc: 2 ** 53 }],
    ["fractional address", { ...at(RING), desc: 16.5 }],
  ];
  for (const [name, config] of rejected) {
    assert.equal(queue.activate(config), false, name);
    assert.equal(queue.ready, false, name);
  }
  assert.equal(queue.activate(at(end)), true, "a ring ending exactly at the end of memory");
  assert.equal(queue.ready, true);
  assert.equal(queue.size, 8);
});

Deno.test("pop: a direct chain is copied with addresses, lengths and directions", () => {
  const s = setup();
  s.ring.chain([
    { addr: DATA, len: 16 },
    { addr: DATA + 0x100, len: 512 },
    { addr: DATA + 0x300, len: 1, write: true },
  ], [5, 2, 7]);
  s.ring.offer(5);
  assert.equal(s.queue.beginDrain(), true);
  assert.equal(s.queue.pop(s.chain), Pop.CHAIN);
  assert.deepEqual(s.chain.describe(), {
    head: 5,
    buffers: [
      { address: DATA, length: 16, writable: false },
      { address: DATA + 0x100, length: 512, writable: false },
      { address: DATA + 0x300, length: 1, writable: true },
    ],
  });
  assert.equal(s.queue.inFlight, 1);
  assert.equal(s.queue.pop(s.chain), Pop.EMPTY);
  s.queue.endDrain();
});

Deno.test("pop: indirect tables are flattened, after direct descriptors, at any alignment", () => {
  const s = setup();
  const table = DATA + 0x1003; // not even 2-aligned
  s.ring.writeTable(table, [
    { addr: DATA + 0x100, len: 512, flags: NEXT | WRITE, next: 2 },
    { addr: 0xdead, len: 9, flags: 0 }, // skipped: the chain goes 0 -> 2
    { addr: DATA + 0x400, len: 1, flags: WRITE },
  ]);
  s.ring.setDesc(1, { addr: DATA, len: 16, flags: NEXT, next: 4 });
  s.ring.setDesc(4, { addr: table, len: 3 * DESCRIPTOR_SIZE, flags: INDIRECT | WRITE });
  s.ring.offer(1);
  assert.deepEqual(drain(s), { heads: [1], fault: QueueFault.NONE });
  assert.deepEqual(s.chain.describe().buffers, [
    { address: DATA, length: 16, writable: false },
    { address: DATA + 0x100, length: 512, writable: true },
    { address: DATA + 0x400, length: 1, writable: true },
  ]);
});

Deno.test("pop: descriptor addresses of 2^53 and above become an address no memory holds", () => {
  const s = setup();
  s.ring.chain([
    { addr: (1n << 53n) - 1n, len: 1 },
    { addr: 1n << 53n, len: 1 },
    { addr: (1n << 64n) - 1n, len: 1, write: true },
  ], [0, 1, 2]);
  s.ring.offer(0);
  drain(s);
  assert.deepEqual(s.chain.describe().buffers.map((b) => b.address), [
    2 ** 53 - 1,
    UNREPRESENTABLE_ADDRESS,
    UNREPRESENTABLE_ADDRESS,
  ]);
  assert.equal(s.memory.regionFor(UNREPRESENTABLE_ADDRESS, 1), undefined);
});

Deno.test("pop: avail.idx is read once per pass; a later bump is seen by hasAvailable", () => {
  const s = setup();
  s.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  s.ring.offer(0);
  assert.equal(s.queue.hasAvailable, true);
  assert.equal(s.queue.beginDrain(), true);
  s.ring.offer(0); // the guest adds one while the device drains
  assert.equal(s.queue.pop(s.chain), Pop.CHAIN);
  assert.equal(s.queue.pop(s.chain), Pop.EMPTY, "the new entry waits for the next pass");
  s.queue.endDrain();
  assert.equal(s.queue.hasAvailable, true);
  publish(s, 0, 1);
  assert.deepEqual(drain(s).heads, [0]);
  assert.equal(s.queue.hasAvailable, false);
});

Deno.test("pop: a head still in flight breaks the queue; N in flight and N more offered too", () => {
  const s = setup(4);
  for (let i = 0; i < 4; i++) s.ring.setDesc(i, { addr: DATA, len: 1, flags: WRITE });
  s.ring.offer(0, 1, 2, 3);
  assert.deepEqual(drain(s).heads, [0, 1, 2, 3]);
  assert.equal(s.queue.inFlight, 4);
  // avail.idx is 4 ahead again (allowed), but every head is in flight.
  s.ring.offer(3, 2, 1, 0);
  assert.deepEqual(drain(s), { heads: [], fault: QueueFault.HEAD_IN_FLIGHT });
  assert.equal(s.queue.inFlight, 4);
  // Once broken, nothing more: not even after the chains return.
  for (let i = 0; i < 4; i++) assert.equal(publish(s, i, 1), true);
  assert.equal(s.queue.beginDrain(), false);
  assert.equal(s.queue.pop(s.chain), Pop.BROKEN);
  assert.equal(s.queue.hasAvailable, false);
  // A new activation clears the fault.
  s.ring.bytes.fill(0, RING, RING + legacyRingSize(4));
  assert.equal(s.queue.activate(s.config), true);
  assert.equal(s.queue.fault, QueueFault.NONE);
});

Deno.test("pop: maxChain above the queue size lets one indirect table hold that many descriptors", () => {
  const s = setup(4, INDIRECT_DESC, { maxChain: 10 });
  const table = (entries: number) => {
    const at = DATA + 0x200 * entries;
    s.ring.writeTable(
      at,
      Array.from({ length: entries }, (_, i) => ({
        addr: DATA,
        len: 1,
        flags: i < entries - 1 ? NEXT : WRITE,
        next: i + 1,
      })),
    );
    return at;
  };
  s.ring.setDesc(0, { addr: table(10), len: 10 * DESCRIPTOR_SIZE, flags: INDIRECT });
  s.ring.setDesc(1, { addr: table(11), len: 11 * DESCRIPTOR_SIZE, flags: INDIRECT });
  s.ring.offer(0);
  assert.deepEqual(drain(s).heads, [0]);
  assert.equal(s.chain.count, 10);
  s.ring.offer(1);
  assert.deepEqual(drain(s), { heads: [], fault: QueueFault.CHAIN_TOO_LONG });
});

Deno.test("publish: len, id, then used.idx; a stale generation or a head not in flight writes nothing", () => {
  const s = setup();
  s.ring.setDesc(6, { addr: DATA, len: 4, flags: WRITE });
  s.ring.offer(6);
  drain(s);
  const generation = s.queue.generation;
  assert.equal(publish(s, 6, 3), true);
  assert.equal(s.ring.usedIdx, 1);
  assert.deepEqual(s.ring.used(0), { id: 6, len: 3 });
  assert.equal(s.queue.inFlight, 0);

  // Published once: a second publish of the same head is an internal error, and writes nothing.
  let before = s.ring.snapshot();
  s.queue.lockUsed();
  assert.throws(() => s.queue.publish(6, 1, generation), /not in flight/);
  assert.throws(() => s.queue.publish(3, 1, generation), /not in flight/);
  assert.throws(() => s.queue.publish(99, 1, generation), /not in flight/);
  s.queue.unlockUsed();
  assert.deepEqual(s.ring.changes(before), []);

  // A chain popped before a disable/activate is never published.
  s.ring.offer(6);
  drain(s);
  const old = s.queue.generation;
  s.queue.disable();
  s.ring.bytes.fill(0, RING, RING + legacyRingSize(8));
  assert.equal(s.queue.activate(s.config), true);
  before = s.ring.snapshot();
  s.queue.lockUsed();
  assert.equal(s.queue.publish(6, 1, old), false);
  s.queue.unlockUsed();
  assert.deepEqual(s.ring.changes(before), []);
  assert.equal(s.queue.inFlight, 0);
});

Deno.test("publish: used indexes wrap at 2^16 and ring slots at N", () => {
  const s = setup(4, 0, { nextAvail: 0xfffe, nextUsed: 0xfffe });
  for (let i = 0; i < 4; i++) s.ring.setDesc(i, { addr: DATA, len: 1, flags: WRITE });
  s.ring.availIdx = 0xfffe;
  s.ring.offer(0, 1, 2);
  assert.deepEqual(drain(s).heads, [0, 1, 2]);
  for (const head of [0, 1, 2]) publish(s, head, head + 10);
  assert.equal(s.ring.usedIdx, 1);
  // 0xfffe % 4 = 2: elements in slots 2, 3, 0.
  assert.deepEqual([s.ring.used(2), s.ring.used(3), s.ring.used(0)], [
    { id: 0, len: 10 },
    { id: 1, len: 11 },
    { id: 2, len: 12 },
  ]);
});

Deno.test("disable reports where the device stopped; activate resumes from there", () => {
  const s = setup();
  s.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  s.ring.offer(0, 0, 0);
  drain(s); // breaks on the second 0 (still in flight) after taking two entries
  assert.equal(s.queue.fault, QueueFault.HEAD_IN_FLIGHT);
  assert.equal(s.queue.disable(), 2);
  assert.equal(s.queue.ready, false);
  assert.equal(s.queue.beginDrain(), false);
  assert.equal(s.queue.activate({ ...s.config, nextAvail: 2, nextUsed: 5 }), true);
  assert.deepEqual(drain(s), { heads: [0], fault: QueueFault.NONE });
  publish(s, 0, 1);
  assert.equal(s.ring.usedIdx, 6);
  assert.deepEqual(s.ring.used(5), { id: 0, len: 1 });
});

Deno.test("pause: nothing more is taken, what was taken still completes; activate and disable end it", () => {
  const s = setup();
  s.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  s.ring.setDesc(1, { addr: DATA, len: 1, flags: WRITE });
  s.ring.offer(0);
  assert.deepEqual(drain(s), { heads: [0], fault: QueueFault.NONE });
  s.ring.offer(1);
  s.queue.pause();
  assert.equal(s.queue.hasAvailable, false, "a paused queue offers nothing to drain");
  assert.equal(s.queue.beginDrain(), false);
  assert.equal(s.queue.inFlight, 1);
  assert.equal(publish(s, 0, 1), true, "the chain taken before the pause completes");
  assert.equal(s.queue.inFlight, 0);
  assert.equal(s.queue.disable(), 1, "the chain offered during the pause was not taken");
  assert.equal(s.queue.activate({ ...s.config, nextAvail: 1, nextUsed: 1 }), true);
  assert.deepEqual(drain(s), { heads: [1], fault: QueueFault.NONE });
});

Deno.test("notifications: NO_NOTIFY while draining without EVENT_IDX; avail_event with it", () => {
  const plain = setup();
  plain.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  plain.ring.offer(0);
  assert.equal(plain.queue.beginDrain(), true);
  assert.equal(plain.ring.usedFlags, USED_F_NO_NOTIFY);
  plain.queue.pop(plain.chain);
  plain.queue.endDrain();
  assert.equal(plain.ring.usedFlags, 0);
  assert.equal(plain.ring.availEvent, 0, "avail_event is not written without EVENT_IDX");

  const event = setup(8, EVENT_IDX);
  event.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  event.ring.offer(0);
  assert.equal(event.queue.beginDrain(), true);
  event.queue.pop(event.chain);
  event.queue.endDrain();
  assert.equal(event.ring.usedFlags, 0, "used.flags is not written with EVENT_IDX");
  assert.equal(event.ring.availEvent, 1, "kick me when avail.idx passes 1");
});

Deno.test("needsInterrupt: avail.flags NO_INTERRUPT without EVENT_IDX", () => {
  const s = setup();
  s.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  const complete = () => {
    s.ring.offer(0);
    drain(s);
    s.queue.lockUsed();
    s.queue.publish(0, 1, s.queue.generation);
    const wanted = s.queue.needsInterrupt();
    s.queue.unlockUsed();
    return wanted;
  };
  assert.equal(complete(), true);
  s.ring.availFlags = AVAIL_F_NO_INTERRUPT;
  assert.equal(complete(), false);
  s.ring.availFlags = 0;
  assert.equal(complete(), true);
});

Deno.test("needsInterrupt with EVENT_IDX: only when used.idx passes used_event (the first always)", () => {
  const s = setup(8, EVENT_IDX);
  for (let i = 0; i < 8; i++) s.ring.setDesc(i, { addr: DATA, len: 1, flags: WRITE });
  const completeAll = (count: number) => {
    const heads = Array.from({ length: count }, (_, i) => i);
    s.ring.offer(...heads);
    drain(s);
    const wanted = [];
    for (const head of heads) {
      s.queue.lockUsed();
      s.queue.publish(head, 1, s.queue.generation);
      wanted.push(s.queue.needsInterrupt());
      s.queue.unlockUsed();
    }
    return wanted;
  };
  s.ring.usedEvent = 0xffff; // ignored: the first completion interrupts
  assert.deepEqual(completeAll(1), [true]);
  s.ring.usedEvent = 3; // interrupt when used.idx goes from 3 to 4
  assert.deepEqual(completeAll(4), [false, false, true, false]);
  s.ring.availFlags = AVAIL_F_NO_INTERRUPT; // ignored with EVENT_IDX
  s.ring.usedEvent = 5;
  assert.deepEqual(completeAll(2), [true, false]);
});

Deno.test("needEvent is vring_need_event, across the 16-bit wrap", () => {
  const cases: [number, number, number, boolean][] = [
    // [event, new, old, expected]
    [0, 1, 0, true],
    [0, 2, 1, false],
    [1, 2, 0, true],
    [5, 5, 0, false],
    [4, 5, 0, true],
    [0xffff, 0, 0xfffe, true],
    [0xfffe, 1, 0xfff0, true],
    [2, 1, 0xfff0, false],
    [7, 7, 7, false],
  ];
  for (const [event, next, old, expected] of cases) {
    assert.equal(needEvent(event, next, old), expected, `needEvent(${event}, ${next}, ${old})`);
  }
});

Deno.test("beginDrain(false) gives up at once while another view of the queue drains", () => {
  const s = setup();
  const other = new SplitQueue(s.memory, s.state);
  s.ring.setDesc(0, { addr: DATA, len: 1, flags: WRITE });
  s.ring.offer(0);
  assert.equal(s.queue.beginDrain(), true);
  assert.equal(other.beginDrain(false), false);
  s.queue.endDrain();
  assert.equal(other.beginDrain(false), true);
  assert.equal(other.pop(s.chain), Pop.CHAIN);
  other.endDrain();
  assert.equal(s.queue.inFlight, 1, "both views share one in-flight table");
});

Deno.test("the ring layout constants are the legacy ones", () => {
  // §2.6.2 (legacy): align4096(16N + 2(3+N)) + align4096(6 + 8N).
  assert.equal(legacyRingSize(64), 4096 + 4096);
  assert.equal(legacyRingSize(256), 8192 + 4096);
  assert.equal(legacyRingSize(512), 12288 + 8192);
  assert.deepEqual(legacyRingAddresses(0x3000, 64), {
    desc: 0x3000,
    avail: 0x3400,
    used: 0x4000,
  });
  assert.equal(UsedRing.availEvent(64), 4 + 8 * 64);
});
