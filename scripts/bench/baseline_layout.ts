/**
 * The control words the raw baseline's runner and its worker threads share
 * (one Int32Array over a SharedArrayBuffer). This module owns every offset
 * of that region, and the messages that start and end a measurement.
 *
 * @module
 */

import type { CaseAccess } from "./cases.ts";

/** Word indexes of the control region. */
export const ControlWord = {
  /** Workers that took the job and wait for GO. */
  READY: 0,
  /** Bumped (and notified) to start every waiting worker at once. */
  GO: 1,
  /** 1 when the workers must stop after their current request. */
  STOP: 2,
  /** Next block of a sequential job, shared so the threads form one stream. */
  CURSOR: 3,
  /** Words in the region. */
  COUNT: 4,
} as const;

/** A new control region. */
export function createControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(ControlWord.COUNT * Int32Array.BYTES_PER_ELEMENT));
}

/** What each worker of a measurement does. */
export interface BaselineJob {
  readonly rw: CaseAccess;
  /** Bytes per request. */
  readonly bs: number;
  /** Blocks of `bs` bytes in the file. */
  readonly blocks: number;
  /** fdatasync after every write (write-through). */
  readonly sync: boolean;
  /** Seed of this worker's random block order. */
  readonly seed: number;
  /**
   * Time one request in this many (1: all). A clock read costs ~0.3 µs
   * here, a large share of a ~2 µs cached 4 KiB pread, so fast cases sample.
   */
  readonly sampleEvery: number;
  /** The value of GO the worker waits to see change. */
  readonly go: number;
}

/** Messages from the runner to a worker. */
export type ToBaselineWorker =
  | { readonly type: "open"; readonly control: SharedArrayBuffer; readonly path: string }
  | { readonly type: "run"; readonly job: BaselineJob }
  | { readonly type: "close" };

/** Messages from a worker to the runner. */
export type FromBaselineWorker =
  | { readonly type: "opened" }
  | {
    readonly type: "done";
    readonly ios: number;
    readonly bytes: number;
    readonly errors: number;
    /** Latency counts of the timed requests (see latency_counts.ts). */
    readonly counts: Float64Array;
  }
  | { readonly type: "error"; readonly message: string };
