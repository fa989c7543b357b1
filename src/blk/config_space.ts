/**
 * The virtio-blk configuration space (struct virtio_blk_config, virtio 1.2
 * §5.2.4) built from the backend and the options, readable at any offset and
 * width as legacy drivers do.
 *
 * @module
 */

import type { RangeLimits, WriteZeroesLimits } from "./request.ts";
import { BlkConfig, SECTOR_SIZE } from "./spec.ts";

/** The values the configuration space reports. */
export interface BlkGeometry {
  /** Device size in bytes (a multiple of 512). */
  readonly sizeBytes: number;
  /** Most data segments per request. */
  readonly segMax: number;
  /** Logical block size (blk_size), a power of two >= 512. */
  readonly logicalBlockSize: number;
  /** Physical block size, a power of two >= the logical one. */
  readonly physicalBlockSize: number;
  /** Request queues (num_queues, read by a driver that negotiated VIRTIO_BLK_F_MQ). */
  readonly queues?: number;
  /** DISCARD's limits, when the device offers VIRTIO_BLK_F_DISCARD. */
  readonly discard?: RangeLimits;
  /** WRITE_ZEROES's limits, when the device offers VIRTIO_BLK_F_WRITE_ZEROES. */
  readonly writeZeroes?: WriteZeroesLimits;
}

/** Fills a config-space image (without the writeback byte, which is live state). */
export function buildConfigImage(geometry: BlkGeometry): Uint8Array {
  const image = new Uint8Array(BlkConfig.SIZE);
  const view = new DataView(image.buffer);
  setCapacity(image, geometry.sizeBytes);
  view.setUint32(BlkConfig.SEG_MAX, geometry.segMax, true);
  view.setUint32(BlkConfig.BLK_SIZE, geometry.logicalBlockSize, true);
  view.setUint8(
    BlkConfig.PHYSICAL_BLOCK_EXP,
    Math.log2(geometry.physicalBlockSize / geometry.logicalBlockSize),
  );
  // Topology in logical blocks: I/O in physical blocks avoids read-modify-write.
  const blocksPerPhysical = geometry.physicalBlockSize / geometry.logicalBlockSize;
  view.setUint16(BlkConfig.MIN_IO_SIZE, blocksPerPhysical, true);
  view.setUint32(BlkConfig.OPT_IO_SIZE, blocksPerPhysical, true);
  view.setUint16(BlkConfig.NUM_QUEUES, geometry.queues ?? 1, true);
  // The fields of a feature not offered stay 0 (§5.2.4: they exist only with it).
  const { discard, writeZeroes } = geometry;
  if (discard) {
    view.setUint32(BlkConfig.MAX_DISCARD_SECTORS, discard.maxSectors, true);
    view.setUint32(BlkConfig.MAX_DISCARD_SEG, discard.maxSegments, true);
    view.setUint32(BlkConfig.DISCARD_SECTOR_ALIGNMENT, discard.alignment, true);
  }
  if (writeZeroes) {
    view.setUint32(BlkConfig.MAX_WRITE_ZEROES_SECTORS, writeZeroes.maxSectors, true);
    view.setUint32(BlkConfig.MAX_WRITE_ZEROES_SEG, writeZeroes.maxSegments, true);
    view.setUint8(BlkConfig.WRITE_ZEROES_MAY_UNMAP, writeZeroes.mayUnmap ? 1 : 0);
  }
  return image;
}

/**
 * Writes a new capacity into an image (a resize, a medium inserted or
 * ejected): the driver reads it after the configuration-change interrupt.
 */
export function setCapacity(image: Uint8Array, sizeBytes: number): void {
  new DataView(image.buffer, image.byteOffset, image.byteLength)
    .setBigUint64(BlkConfig.CAPACITY, BigInt(sizeBytes / SECTOR_SIZE), true);
}

/** Little-endian read of `size` bytes at `offset`; bytes past the image read as 0xff. */
export function readImage(image: Uint8Array, offset: number, size: number): number {
  if (!(size === 1 || size === 2 || size === 4) || !Number.isInteger(offset) || offset < 0) {
    return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
  }
  let value = 0;
  for (let i = size - 1; i >= 0; i--) {
    const at = offset + i;
    value = value * 256 + (at < image.length ? image[at] : 0xff);
  }
  return value;
}
