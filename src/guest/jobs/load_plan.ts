/**
 * Fits {@linkcode LoadOptions} to a disk: the region in bytes, the number of
 * blocks, the queue depth the ring can really hold, and the share of reads.
 * Impossible combinations (a block size the disk cannot take, a region past
 * its end) are one {@linkcode VirtioBlkError} naming the option.
 *
 * @module
 */

import { VirtioBlkError } from "../../errors.ts";
import { MAX_BLOCKS } from "./block_order.ts";
import type { Amount, LoadOptions } from "./load_options.ts";
import { formatBinary } from "./units.ts";

/** What the plan needs to know about the disk and its queue. */
export interface LoadDisk {
  /** Bytes. */
  readonly capacity: number;
  readonly logicalBlockSize: number;
  readonly readOnly: boolean;
  /** Descriptors in the ring. */
  readonly queueSize: number;
  /** Whether each request takes one descriptor (indirect tables) or one per buffer plus two. */
  readonly indirect: boolean;
}

/** A load fitted to a disk. */
export interface LoadPlan {
  /** The options the plan was made from. */
  readonly options: LoadOptions;
  /** Byte offset of the region. */
  readonly offset: number;
  /** Bytes in the region: a whole number of blocks. */
  readonly size: number;
  /** Blocks (of `options.bs` bytes) in the region. */
  readonly blocks: number;
  /** Requests kept in flight: `iodepth`, or less when the ring cannot hold that many. */
  readonly depth: number;
  /** Visit blocks in a random permutation (randread, randwrite, randrw). */
  readonly random: boolean;
  /** Percentage of requests that read. */
  readonly readPercent: number;
  /** Adjustments worth telling the user about. */
  readonly notes: readonly string[];
}

function invalid(message: string): never {
  throw new VirtioBlkError("INVALID_CONFIG", message);
}

function bytesOf(amount: Amount, capacity: number, unit: number): number {
  if ("bytes" in amount) return amount.bytes;
  return Math.floor((capacity * amount.percent) / 100 / unit) * unit;
}

function describe(amount: Amount): string {
  return "bytes" in amount ? String(amount.bytes) : `${amount.percent}%`;
}

/**
 * Fits `options` to `disk`.
 *
 * @example
 * ```ts
 * const plan = planLoad(options, {
 *   capacity: driver.info.capacity * 512,
 *   logicalBlockSize: driver.info.logicalBlockSize,
 *   readOnly: driver.info.readOnly,
 *   queueSize: driver.queueSize,
 *   indirect: driver.usesIndirect,
 * });
 * ```
 */
export function planLoad(options: LoadOptions, disk: LoadDisk): LoadPlan {
  const { bs } = options;
  const unit = disk.logicalBlockSize;
  const notes: string[] = [];
  if (bs % unit !== 0) {
    invalid(`--bs=${bs} is not a multiple of the disk's logical block size ${unit}`);
  }
  const offset = bytesOf(options.offset, disk.capacity, unit);
  if (offset % unit !== 0) {
    invalid(
      `--offset=${describe(options.offset)} is not a multiple of the logical block size ${unit}`,
    );
  }
  if (offset >= disk.capacity) {
    invalid(
      `--offset=${
        describe(options.offset)
      } is at or past the end of the disk (${disk.capacity} bytes)`,
    );
  }
  let size: number;
  if (options.size === null) {
    size = disk.capacity - offset;
  } else if ("bytes" in options.size) {
    size = options.size.bytes;
    if (size > disk.capacity - offset) {
      invalid(
        `--offset=${describe(options.offset)} + --size=${size} runs past the end of the disk ` +
          `(${disk.capacity} bytes)`,
      );
    }
  } else {
    size = Math.min(bytesOf(options.size, disk.capacity, unit), disk.capacity - offset);
  }
  const blocks = Math.floor(size / bs);
  if (blocks === 0) {
    invalid(`the region (${size} bytes from ${offset}) is smaller than --bs=${bs}`);
  }
  if (blocks > MAX_BLOCKS) invalid(`the region holds ${blocks} blocks; at most 2^32 are supported`);
  if (blocks * bs !== size) {
    notes.push(
      `region rounded down to ${blocks} block${blocks === 1 ? "" : "s"} of ${formatBinary(bs)}`,
    );
  }
  const perRequest = disk.indirect ? 1 : 3;
  const ringDepth = Math.max(1, Math.floor(disk.queueSize / perRequest));
  const depth = Math.min(options.iodepth, ringDepth);
  if (depth < options.iodepth) {
    notes.push(
      `iodepth ${options.iodepth} limited to ${depth}: the ring has ${disk.queueSize} ` +
        `descriptors and each request takes ${perRequest}`,
    );
  }
  const readPercent = options.rw === "read" || options.rw === "randread"
    ? 100
    : options.rw === "write" || options.rw === "randwrite"
    ? 0
    : options.rwmixread;
  if (disk.readOnly && readPercent < 100) {
    notes.push("the disk is read-only: its writes will fail");
  }
  return {
    options,
    offset,
    size: blocks * bs,
    blocks,
    depth,
    random: options.rw.startsWith("rand"),
    readPercent,
    notes,
  };
}
