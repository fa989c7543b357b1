/**
 * Running a parsed request against the medium, and returning it to the
 * driver. Every executor (the in-process one, the blockif threads, with
 * synchronous files or io_uring) calls these, so a request means the same
 * thing whichever thread runs it and however the medium completes:
 *
 * 1. {@linkcode startRequest}: a request that needs no medium (GET_ID, an
 *    unsupported or malformed one, a write to a read-only device) gets its
 *    status at once; a read, write, flush, discard or write-zeroes is handed
 *    to the thread's I/O queue with a token and is {@linkcode PENDING}.
 * 2. {@linkcode finishRequest}: the I/O queue's result (0 or negative)
 *    becomes the status; a failure keeps its cause in the device's
 *    {@linkcode MediumErrors} and is logged once per kind.
 * 3. {@linkcode returnRequest}: status byte and used element, for a batch
 *    under one USED_LOCK, then one interrupt for the batch
 *    ({@linkcode completeRequest} is a batch of one).
 *
 * @module
 */

import {
  IoOp,
  type IoOpCode,
  type IoQueue,
  IoRanges,
  type IoRequest,
  IoVector,
} from "../io/io_queue.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { SplitQueue } from "../virtio/split_queue.ts";
import type { InterruptSink } from "../virtio/transport_state.ts";
import type { BlkState } from "./blk_state.ts";
import { describeFailure, logsAt, type MediumErrors } from "./medium_errors.ts";
import { type BlkRequest, RequestKind } from "./request.ts";
import { ID_BYTES, RequestStatus, type RequestStatusCode, SECTOR_SIZE } from "./spec.ts";

/** What an executor needs besides the request. */
export interface ExecutionContext {
  readonly memory: GuestMemory;
  /** The medium, as this thread's I/O queue on it. */
  readonly io: IoQueue;
  /** The device offers VIRTIO_BLK_F_RO, or its medium is read-only: every write fails. */
  readonly readOnly: boolean;
  /**
   * The capacity in 512-byte sectors now. A request was checked against the
   * capacity when it was parsed; the medium may have shrunk (or gone) since.
   */
  readonly capacity: number;
  /** The live cache mode. */
  readonly state: BlkState;
  /** The 20 GET_ID bytes. */
  readonly serial: Uint8Array;
  /** Where the medium's failures are counted. */
  readonly errors: MediumErrors;
  /** Where a failure of a new kind (and every tenfold count of one) is reported. */
  readonly log: (message: string) => void;
  /** What the log calls the device (`virtio-blk device on disk.img`). */
  readonly name: string;
}

/** {@linkcode startRequest}'s answer for a request handed to the I/O queue. */
export const PENDING = -1;

/**
 * An I/O request record per thread, reused for every request it starts,
 * with room for `slots` data segments or ranges (see `recordSlots`).
 */
export function ioRequestFor(slots: number): IoRequest {
  return {
    op: IoOp.READ,
    offset: 0,
    vector: new IoVector(slots),
    ranges: new IoRanges(slots),
    durable: false,
    mayBlock: false,
  };
}

/**
 * Whether a request parsed before a shrink or an eject reaches past the
 * medium's end now: a read's or write's extent, or the span of a DISCARD's
 * or WRITE_ZEROES's ranges.
 */
function pastTheEnd(request: BlkRequest, context: ExecutionContext): boolean {
  return request.sector + request.dataLength / SECTOR_SIZE > context.capacity;
}

/**
 * Starts `request`: returns its status when it needs no medium (or cannot
 * reach it: a buffer outside guest memory), else hands it to `context.io`
 * with `token` and returns {@linkcode PENDING}. Never throws for anything
 * the guest sent.
 */
export function startRequest(
  request: BlkRequest,
  context: ExecutionContext,
  token: number,
  scratch: IoRequest,
): RequestStatusCode | typeof PENDING {
  switch (request.kind) {
    case RequestKind.READ:
    case RequestKind.WRITE: {
      const isWrite = request.kind === RequestKind.WRITE;
      if (isWrite && context.readOnly) return RequestStatus.IOERR;
      if (pastTheEnd(request, context)) return RequestStatus.IOERR;
      const vector = scratch.vector;
      vector.clear();
      for (let i = 0; i < request.segmentCount; i++) {
        const address = request.segmentAddress(i);
        const length = request.segmentLength(i);
        const region = context.memory.regionFor(address, length);
        if (region === undefined) return RequestStatus.IOERR;
        vector.push(region, address - region.gpa, length);
      }
      scratch.op = isWrite ? IoOp.WRITE : IoOp.READ;
      scratch.offset = request.offset;
      // Write-through: the data is stable before the write completes (§5.2.6.2).
      scratch.durable = isWrite && !context.state.writeCache;
      return submit(context, scratch, token);
    }
    case RequestKind.DISCARD:
    case RequestKind.WRITE_ZEROES: {
      // Not offered on a read-only device (the parser answers UNSUPP); refused here as well.
      if (context.readOnly) return RequestStatus.IOERR;
      if (pastTheEnd(request, context)) return RequestStatus.IOERR;
      const ranges = scratch.ranges;
      ranges.clear();
      for (let i = 0; i < request.segmentCount; i++) {
        ranges.push(
          request.rangeSector(i) * SECTOR_SIZE,
          request.rangeSectors(i) * SECTOR_SIZE,
          request.rangeUnmap(i),
        );
      }
      scratch.op = request.kind === RequestKind.DISCARD ? IoOp.DISCARD : IoOp.WRITE_ZEROES;
      scratch.offset = request.offset;
      scratch.vector.clear();
      // Write-through: stable before it completes, as a write is (§5.2.6.2).
      scratch.durable = !context.state.writeCache;
      return submit(context, scratch, token);
    }
    case RequestKind.FLUSH:
      scratch.op = IoOp.FLUSH;
      scratch.offset = 0;
      scratch.vector.clear();
      scratch.durable = false;
      return submit(context, scratch, token);
    case RequestKind.GET_ID:
      return writeSerial(request, context);
    case RequestKind.UNSUPPORTED:
      return RequestStatus.UNSUPP;
    default:
      return RequestStatus.IOERR;
  }
}

function submit(
  context: ExecutionContext,
  scratch: IoRequest,
  token: number,
): RequestStatusCode | typeof PENDING {
  // The queue holds one operation per pool element, so it cannot be full here.
  return context.io.submit(scratch, token) ? PENDING : RequestStatus.IOERR;
}

/**
 * The status of a request whose I/O finished with `result` (0, or negative:
 * `-errno` or IO_SHORT). A failure is counted, and logged when it is the
 * first of its kind (then at every tenfold count).
 */
export function finishRequest(
  request: BlkRequest,
  context: ExecutionContext,
  result: number,
): RequestStatusCode {
  if (result >= 0) return RequestStatus.OK;
  const op = ioOpOf(request);
  const offset = op === IoOp.FLUSH ? undefined : request.offset;
  const count = context.errors.record(op, result, offset ?? 0);
  if (logsAt(count)) {
    const nth = count === 1 ? "" : ` (${count} times)`;
    context.log(`${context.name}: ${describeFailure(op, result, offset)}${nth}`);
  }
  return RequestStatus.IOERR;
}

function ioOpOf(request: BlkRequest): IoOpCode {
  switch (request.kind) {
    case RequestKind.READ:
      return IoOp.READ;
    case RequestKind.WRITE:
      return IoOp.WRITE;
    case RequestKind.DISCARD:
      return IoOp.DISCARD;
    case RequestKind.WRITE_ZEROES:
      return IoOp.WRITE_ZEROES;
    default:
      return IoOp.FLUSH;
  }
}

function writeSerial(request: BlkRequest, context: ExecutionContext): RequestStatusCode {
  let remaining = Math.min(ID_BYTES, request.dataLength);
  let from = 0;
  for (let i = 0; i < request.segmentCount && remaining > 0; i++) {
    const address = request.segmentAddress(i);
    const length = Math.min(request.segmentLength(i), remaining);
    const region = context.memory.regionFor(address, length);
    if (region === undefined) return RequestStatus.IOERR;
    region.bytes.set(context.serial.subarray(from, from + length), address - region.gpa);
    from += length;
    remaining -= length;
  }
  return RequestStatus.OK;
}

/**
 * Bytes the device wrote into the chain's device-writable buffers: the data
 * and status of a successful read, the serial and status of GET_ID, the
 * status alone otherwise, and nothing for a chain without a status byte.
 */
export function usedLength(request: BlkRequest, status: RequestStatusCode): number {
  switch (request.kind) {
    case RequestKind.UNANSWERABLE:
      return 0;
    case RequestKind.READ:
      return status === RequestStatus.OK ? request.dataLength + 1 : 1;
    case RequestKind.GET_ID:
      return status === RequestStatus.OK ? Math.min(ID_BYTES, request.dataLength) + 1 : 1;
    default:
      return 1;
  }
}

/**
 * Returns a request to the driver without interrupting it: writes the
 * status byte and publishes the used element, if the queue was not reset
 * since the chain was popped (`generation`). The caller holds USED_LOCK, so
 * it can return a whole batch under one lock and then ask once whether the
 * driver wants an interrupt (virtio 1.2 §2.7.10 lets the device notify once
 * for several used buffers). Returns whether it was published.
 */
export function returnRequest(
  queue: SplitQueue,
  memory: GuestMemory,
  request: BlkRequest,
  status: RequestStatusCode,
  generation: number,
): boolean {
  if (queue.generation !== generation) return false;
  const statusAddress = request.statusAddress;
  if (statusAddress >= 0) {
    const region = memory.regionFor(statusAddress, 1);
    if (region !== undefined) region.bytes[statusAddress - region.gpa] = status;
  }
  return queue.publish(request.head, usedLength(request, status), generation);
}

/**
 * A batch of one: {@linkcode returnRequest} under USED_LOCK, then the
 * interrupt if the driver wants one. Returns whether it was published.
 */
export function completeRequest(
  queue: SplitQueue,
  queueIndex: number,
  memory: GuestMemory,
  request: BlkRequest,
  status: RequestStatusCode,
  generation: number,
  interrupt: InterruptSink,
): boolean {
  let published: boolean;
  let notify: boolean;
  queue.lockUsed();
  try {
    published = returnRequest(queue, memory, request, status, generation);
    notify = published && queue.needsInterrupt();
  } finally {
    queue.unlockUsed();
  }
  if (notify) interrupt.usedBuffers(queueIndex);
  return published;
}
