/**
 * Running a parsed request against a backend, and returning it to the
 * driver. Both executors (the in-process one and the blockif workers) call
 * these, so a request means the same thing whichever thread runs it.
 *
 * @module
 */

import type { BlockBackend } from "../backend/backend.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { SplitQueue } from "../virtio/split_queue.ts";
import type { InterruptSink } from "../virtio/transport_state.ts";
import type { BlkState } from "./blk_state.ts";
import { type BlkRequest, RequestKind } from "./request.ts";
import { ID_BYTES, RequestStatus, type RequestStatusCode } from "./spec.ts";

/** What an executor needs besides the request. */
export interface ExecutionContext {
  readonly memory: GuestMemory;
  readonly backend: BlockBackend;
  /** The device offers VIRTIO_BLK_F_RO: every write fails. */
  readonly readOnly: boolean;
  /** The live cache mode. */
  readonly state: BlkState;
  /** The 20 GET_ID bytes. */
  readonly serial: Uint8Array;
}

/** Counts of what went wrong, for diagnostics. */
export interface ExecutionStats {
  /** Requests the medium failed (answered IOERR). */
  mediumErrors: number;
}

/**
 * Executes `request` and returns the status to report. Never throws: a
 * failure of the medium (an exception from the backend, including a short
 * transfer) becomes IOERR.
 */
export function executeRequest(
  request: BlkRequest,
  context: ExecutionContext,
  stats?: ExecutionStats,
): RequestStatusCode {
  switch (request.kind) {
    case RequestKind.READ:
    case RequestKind.WRITE:
      return transfer(request, context, request.kind === RequestKind.WRITE, stats);
    case RequestKind.FLUSH:
      try {
        context.backend.flush();
        return RequestStatus.OK;
      } catch {
        if (stats) stats.mediumErrors++;
        return RequestStatus.IOERR;
      }
    case RequestKind.GET_ID:
      return writeSerial(request, context);
    case RequestKind.UNSUPPORTED:
      return RequestStatus.UNSUPP;
    default:
      return RequestStatus.IOERR;
  }
}

function transfer(
  request: BlkRequest,
  context: ExecutionContext,
  isWrite: boolean,
  stats?: ExecutionStats,
): RequestStatusCode {
  const { memory, backend } = context;
  if (isWrite && context.readOnly) return RequestStatus.IOERR;
  try {
    let offset = request.offset;
    for (let i = 0; i < request.segmentCount; i++) {
      const address = request.segmentAddress(i);
      const length = request.segmentLength(i);
      const region = memory.regionFor(address, length);
      if (region === undefined) return RequestStatus.IOERR;
      if (isWrite) backend.write(offset, region.bytes, address - region.gpa, length);
      else backend.read(offset, region.bytes, address - region.gpa, length);
      offset += length;
    }
    // Write-through: the data is stable before the write completes (§5.2.6.2).
    if (isWrite && !context.state.writeCache) backend.flush();
    return RequestStatus.OK;
  } catch {
    if (stats) stats.mediumErrors++;
    return RequestStatus.IOERR;
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
 * Returns a request to the driver: under the used-ring lock, and only if the
 * queue has not been reset since the chain was popped (`generation`),
 * writes the status byte, publishes the used element and, if the driver
 * wants one, raises the interrupt. Returns whether it was published.
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
  const statusAddress = request.statusAddress;
  let published = false;
  let notify = false;
  queue.lockUsed();
  try {
    if (queue.generation === generation) {
      if (statusAddress >= 0) {
        const region = memory.regionFor(statusAddress, 1);
        if (region !== undefined) region.bytes[statusAddress - region.gpa] = status;
      }
      published = queue.publish(request.head, usedLength(request, status), generation);
      notify = published && queue.needsInterrupt();
    }
  } finally {
    queue.unlockUsed();
  }
  if (notify) interrupt.usedBuffers(queueIndex);
  return published;
}
