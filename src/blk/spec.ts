/**
 * Constants of the virtio block device (virtio 1.2 §5.2): feature bits,
 * request types, status codes and the configuration layout.
 *
 * @module
 */

/** virtio device ID of a block device (virtio 1.2 §5). */
export const VIRTIO_ID_BLOCK = 2;

/** Feature bits (virtio 1.2 §5.2.3). */
export const BlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** Request types (virtio 1.2 §5.2.6; FLUSH_OUT from the legacy interface). */
export const RequestType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  FLUSH_OUT: 5,
  GET_ID: 8,
  DISCARD: 11,
  WRITE_ZEROES: 13,
} as const;

/** The legacy BARRIER flag in the type field; ignored (virtio 1.2 §5.2.6.3). */
export const REQUEST_TYPE_BARRIER = 0x8000_0000;

/** Status byte values (virtio 1.2 §5.2.6). */
export const RequestStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;

/** One of {@linkcode RequestStatus}'s values. */
export type RequestStatusCode = typeof RequestStatus[keyof typeof RequestStatus];

/** Sector size of the request header and of `capacity`, whatever the block size. */
export const SECTOR_SIZE = 512;

/** log2 of {@linkcode SECTOR_SIZE}. */
export const SECTOR_SHIFT = 9;

/** Size of the request header {u32 type, u32 ioprio, u64 sector}. */
export const REQUEST_HEADER_SIZE = 16;

/** Byte offsets inside the request header. */
export const RequestHeader = { TYPE: 0, IOPRIO: 4, SECTOR: 8 } as const;

/** Length of the GET_ID answer (virtio 1.2 §5.2.6: VIRTIO_BLK_ID_BYTES). */
export const ID_BYTES = 20;

/**
 * One segment of a DISCARD or WRITE_ZEROES request (virtio 1.2 §5.2.6,
 * struct virtio_blk_discard_write_zeroes): {le64 sector, le32 num_sectors,
 * le32 flags}; byte offsets and size.
 */
export const RangeSegment = { SECTOR: 0, NUM_SECTORS: 8, FLAGS: 12, SIZE: 16 } as const;

/** Flags of a {@linkcode RangeSegment}: only `unmap` is defined; the other 31 bits are reserved. */
export const RangeFlag = {
  /** WRITE_ZEROES: the device may deallocate the range (as a discard would). */
  UNMAP: 1,
} as const;

/**
 * Most segments one DISCARD or WRITE_ZEROES request may have here (the
 * largest `max_discard_seg` accepted): Linux sends at most 256
 * (MAX_DISCARD_SEGMENTS), and ACRN's table holds 256.
 */
export const MAX_RANGE_SEGMENTS = 256;

/** The largest value of a u32 config field (max_discard_sectors and the like). */
export const U32_MAX = 0xffff_ffff;

/** Byte offsets of struct virtio_blk_config (virtio 1.2 §5.2.4). */
export const BlkConfig = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  GEOMETRY_CYLINDERS: 16,
  GEOMETRY_HEADS: 18,
  GEOMETRY_SECTORS: 19,
  BLK_SIZE: 20,
  PHYSICAL_BLOCK_EXP: 24,
  ALIGNMENT_OFFSET: 25,
  MIN_IO_SIZE: 26,
  OPT_IO_SIZE: 28,
  WRITEBACK: 32,
  UNUSED0: 33,
  NUM_QUEUES: 34,
  MAX_DISCARD_SECTORS: 36,
  MAX_DISCARD_SEG: 40,
  DISCARD_SECTOR_ALIGNMENT: 44,
  MAX_WRITE_ZEROES_SECTORS: 48,
  MAX_WRITE_ZEROES_SEG: 52,
  WRITE_ZEROES_MAY_UNMAP: 56,
  /** Bytes of the structure up to and including write_zeroes_may_unmap. */
  SIZE: 57,
} as const;
