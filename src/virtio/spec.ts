/**
 * Constants of the virtio specification (v1.2) that are not specific to one
 * device type: device status bits, transport feature bits, and the split
 * virtqueue's descriptor and ring flags.
 *
 * @module
 */

/** Device status bits (virtio 1.2 §2.1). */
export const DeviceStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Transport and ring feature bits (virtio 1.2 §6, legacy §7 for 24 and 27). */
export const RingFeature = {
  NOTIFY_ON_EMPTY: 24,
  ANY_LAYOUT: 27,
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
} as const;

/** Descriptor flags (virtio 1.2 §2.7.5). */
export const DescriptorFlag = {
  NEXT: 1,
  WRITE: 2,
  INDIRECT: 4,
} as const;

/** avail.flags: the driver asks not to be interrupted (virtio 1.2 §2.7.7). */
export const AVAIL_F_NO_INTERRUPT = 1;

/** used.flags: the device asks not to be notified (virtio 1.2 §2.7.10). */
export const USED_F_NO_NOTIFY = 1;

/** Size of one split-ring descriptor {u64 addr, u32 len, u16 flags, u16 next}. */
export const DESCRIPTOR_SIZE = 16;

/** The largest queue size the spec allows for a split ring (virtio 1.2 §2.7). */
export const MAX_QUEUE_SIZE = 32768;

/** Bit mask of a feature bit number, for bits 0–31. */
export function featureBit(bit: number): number {
  if (bit < 0 || bit > 31) throw new RangeError(`feature bit ${bit} is not in the low 32 bits`);
  return (1 << bit) >>> 0;
}

/** Whether `features` (the low 32 feature bits) has `bit` set. */
export function hasFeature(features: number, bit: number): boolean {
  return ((features >>> bit) & 1) === 1;
}

/** Whether `n` is a power of two between 1 and {@linkcode MAX_QUEUE_SIZE}. */
export function isValidQueueSize(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= MAX_QUEUE_SIZE && (n & (n - 1)) === 0;
}
