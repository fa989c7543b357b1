/**
 * Where the parts of a split virtqueue sit in guest memory (virtio 1.2
 * §2.7, and §4.1.5.1.3.1 / legacy §2.6.2 for the legacy contiguous layout).
 * Every offset inside the descriptor table and the two rings is defined here
 * and nowhere else; the device-side queue and the guest driver both use it.
 *
 * @module
 */

import { DESCRIPTOR_SIZE } from "./spec.ts";

/** Legacy interfaces align the used ring to this boundary (QUEUE_PFN pages). */
export const LEGACY_QUEUE_ALIGN = 4096;

/** The legacy QUEUE_PFN register counts pages of this size. */
export const LEGACY_PFN_SHIFT = 12;

/** Byte offsets inside one descriptor. */
export const Descriptor = {
  ADDR: 0,
  LEN: 8,
  FLAGS: 12,
  NEXT: 14,
} as const;

/** Byte offsets inside the available ring. */
export const AvailRing = {
  FLAGS: 0,
  IDX: 2,
  RING: 4,
  /** Offset of used_event (follows the ring of `queueSize` u16 entries). */
  usedEvent: (queueSize: number): number => 4 + 2 * queueSize,
  /** Bytes taken by the available ring, used_event included. */
  size: (queueSize: number): number => 6 + 2 * queueSize,
} as const;

/** Byte offsets inside the used ring. */
export const UsedRing = {
  FLAGS: 0,
  IDX: 2,
  RING: 4,
  /** Size of one used element {u32 id, u32 len}. */
  ELEMENT_SIZE: 8,
  ELEMENT_ID: 0,
  ELEMENT_LEN: 4,
  /** Offset of avail_event (follows `queueSize` used elements). */
  availEvent: (queueSize: number): number => 4 + 8 * queueSize,
  /** Bytes taken by the used ring, avail_event included. */
  size: (queueSize: number): number => 6 + 8 * queueSize,
} as const;

/** Alignment each part needs (virtio 1.2 §2.7, table "Virtqueue Part Alignment"). */
export const PartAlignment = { DESC: 16, AVAIL: 2, USED: 4 } as const;

/** Guest-physical addresses of the three parts of one split virtqueue. */
export interface RingAddresses {
  /** The descriptor table: N × 16 bytes, 16-byte aligned (§2.7.5). */
  readonly desc: number;
  /** The available ring (driver area), 2-byte aligned (§2.7.6). */
  readonly avail: number;
  /** The used ring (device area), 4-byte aligned (§2.7.8). */
  readonly used: number;
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Bytes taken by the descriptor table of a queue of `queueSize`. */
export function descriptorTableSize(queueSize: number): number {
  return DESCRIPTOR_SIZE * queueSize;
}

/**
 * Total bytes of a legacy ring: align4096(16N + 2(3+N)) + align4096(6 + 8N).
 */
export function legacyRingSize(queueSize: number): number {
  return alignUp(descriptorTableSize(queueSize) + AvailRing.size(queueSize), LEGACY_QUEUE_ALIGN) +
    alignUp(UsedRing.size(queueSize), LEGACY_QUEUE_ALIGN);
}

/** The three parts of a legacy ring that starts at `base` (page aligned). */
export function legacyRingAddresses(base: number, queueSize: number): RingAddresses {
  const avail = base + descriptorTableSize(queueSize);
  return {
    desc: base,
    avail,
    used: alignUp(avail + AvailRing.size(queueSize), LEGACY_QUEUE_ALIGN),
  };
}
