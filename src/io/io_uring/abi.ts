/**
 * The io_uring ABI this project uses (Linux, x86-64; `include/uapi/linux/io_uring.h`):
 * system call numbers, `struct io_uring_params` with its ring offsets, the
 * 64-byte submission entry and the 16-byte completion entry, and the
 * opcodes and flags we submit. This module owns every one of these offsets.
 *
 * @module
 */

/** System call numbers (x86-64). */
export const Syscall = {
  IO_URING_SETUP: 425,
  IO_URING_ENTER: 426,
  IO_URING_REGISTER: 427,
} as const;

/** `struct io_uring_params` (120 bytes): byte offsets. */
export const Params = {
  SQ_ENTRIES: 0,
  CQ_ENTRIES: 4,
  FLAGS: 8,
  FEATURES: 20,
  /** `struct io_sqring_offsets` (40 bytes). */
  SQ_OFF: 40,
  /** `struct io_cqring_offsets` (40 bytes). */
  CQ_OFF: 80,
  SIZE: 120,
} as const;

/** Fields of `struct io_sqring_offsets`, as u32 indexes from {@linkcode Params.SQ_OFF}. */
export const SqOffset = {
  HEAD: 0,
  TAIL: 1,
  RING_MASK: 2,
  RING_ENTRIES: 3,
  FLAGS: 4,
  DROPPED: 5,
  ARRAY: 6,
} as const;

/** Fields of `struct io_cqring_offsets`, as u32 indexes from {@linkcode Params.CQ_OFF}. */
export const CqOffset = {
  HEAD: 0,
  TAIL: 1,
  RING_MASK: 2,
  RING_ENTRIES: 3,
  OVERFLOW: 4,
  CQES: 5,
  FLAGS: 6,
} as const;

/** mmap offsets of the three areas (IORING_OFF_*). */
export const MmapOffset = {
  SQ_RING: 0n,
  CQ_RING: 0x8000000n,
  SQES: 0x10000000n,
} as const;

/** `io_uring_params.features` bits we rely on. */
export const Feature = {
  /** One mmap covers the SQ and CQ rings. */
  SINGLE_MMAP: 1 << 0,
  /** Completions are never dropped when the CQ is full (the kernel keeps them). */
  NODROP: 1 << 1,
} as const;

/** `struct io_uring_sqe` (64 bytes): byte offsets. */
export const Sqe = {
  OPCODE: 0, // u8
  FLAGS: 1, // u8
  IOPRIO: 2, // u16
  FD: 4, // i32
  OFF: 8, // u64: file offset
  ADDR: 16, // u64: buffer or iovec array address; fallocate: length
  LEN: 24, // u32: bytes or iovec count; fallocate: mode
  OP_FLAGS: 28, // u32: rw_flags / fsync_flags
  USER_DATA: 32, // u64
  SIZE: 64,
} as const;

/** `struct io_uring_cqe` (16 bytes, without CQE32): byte offsets. */
export const Cqe = {
  USER_DATA: 0, // u64
  RES: 8, // i32: bytes moved, or -errno
  FLAGS: 12, // u32
  SIZE: 16,
} as const;

/** Opcodes (enum io_uring_op). */
export const Op = {
  NOP: 0,
  READV: 1,
  WRITEV: 2,
  FSYNC: 3,
  FALLOCATE: 17,
  READ: 22,
  WRITE: 23,
} as const;

/** `fsync_flags`: fdatasync rather than fsync. */
export const IORING_FSYNC_DATASYNC = 1;

/** `rw_flags` (RWF_*, include/uapi/linux/fs.h). */
export const RwFlag = {
  /** Per-write O_DSYNC: the data (and what reading it back needs) is stable when it completes. */
  DSYNC: 0x2,
} as const;

/** `io_uring_enter` flags. */
export const EnterFlag = {
  /** Wait for `min_complete` completions. */
  GETEVENTS: 1,
} as const;

/** `struct iovec` (16 bytes): base u64 at 0, length u64 at 8. */
export const IOVEC_SIZE = 16;
