/**
 * What a transport (legacy virtio-PCI, vhost-user) needs from a virtio
 * device. The transport owns status, feature negotiation registers and queue
 * set-up; the device owns its feature set, configuration space, queues and
 * what happens when the driver kicks.
 *
 * @module
 */

import type { SplitQueue } from "./split_queue.ts";

/** A virtio device as a transport drives it. */
export interface VirtioDevice {
  /** virtio device ID (2 for block). */
  readonly deviceId: number;
  /** What messages call the device (e.g. `virtio-blk device on /srv/disk.img`). */
  readonly name: string;
  /** Number of virtqueues. */
  readonly queueCount: number;
  /** Size of each queue the device offers (legacy QUEUE_NUM). */
  readonly queueSize: number;
  /** Feature bits the device offers, including ring features (bits 0–63). */
  readonly offeredFeatures: bigint;
  /** Feature bits the driver accepted (a subset of the offered ones). */
  readonly ackedFeatures: bigint;
  /** Most descriptors one request chain may have. */
  readonly maxChain: number;
  /** Size in bytes of the device configuration space. */
  readonly configSize: number;

  /** The device-side view of queue `index` (control plane). */
  queue(index: number): SplitQueue;
  /** Records the driver's accepted features (already masked to the offered ones). */
  ackFeatures(features: bigint): void;
  /** Reads `size` (1, 2, 4 or 8) bytes of config space; bytes past the end read as 0xff. */
  readConfig(offset: number, size: number): number;
  /** Writes config space; only writable fields change, the rest is ignored. */
  writeConfig(offset: number, size: number, value: number): void;
  /** The driver kicked queue `index` (already checked to exist). */
  notify(index: number): void;
  /**
   * Stops the device's work on one queue (the driver disabled it) once no
   * request of it can touch guest memory any more. Returns the next available
   * index the queue would have taken.
   */
  disableQueue(index: number): number;
  /** Back to the power-on state, after in-flight work is finished or abandoned. */
  reset(): void;
}
