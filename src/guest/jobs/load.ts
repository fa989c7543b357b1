/**
 * The UOS's fio-like load generator over one {@linkcode VirtioBlkDriver}.
 *
 * It keeps `depth` requests in flight with the driver's low-level calls
 * (submit → kick → reap, sleeping in `waitSync` only when nothing has
 * completed), so the same code runs in a vCPU Worker, where completions come
 * from other threads, and in-process, where the device completes each
 * request inside `kick()` and `waitSync` returns at once. Each in-flight
 * slot owns a preallocated guest buffer; the steady state allocates nothing.
 * A request carries its data in that one buffer: seg_max counts segments
 * and is at least 1, and the driver does not negotiate SIZE_MAX, so no
 * device limit asks for a request to be split.
 *
 * Phases: with `ramp_time`, a ramp (the run's load for that long, counted
 * nowhere but in the failures: fio's warm-up), then the run (sequential or
 * permuted blocks, reads/writes by the mix,
 * until the region is covered or the runtime passes), an optional flush
 * (`end_fsync`), then, with `verify=crc32c` and writes, a verify pass that
 * reads back every block written and checks it (see `verify.ts`). Reads
 * during the run are checked too: in a pure read load against any
 * generation written with the same seed (data from an earlier run), in a
 * mixed load against the generation this run last wrote there.
 *
 * @module
 */

import { RequestStatus, RequestType } from "../../blk/spec.ts";
import { BlkFeature } from "../../blk/spec.ts";
import { VirtioBlkError } from "../../errors.ts";
import type { SharedGuestMemory } from "../../memory/shared_memory.ts";
import { hasFeature } from "../../virtio/spec.ts";
import type { GuestAllocator } from "../allocator.ts";
import { type Buffers, RequestFailed, type VirtioBlkDriver } from "../virtio_blk_driver.ts";
import { BlockOrder, Random } from "./block_order.ts";
import { LatencyHistogram, type LatencyHistogramState, type LatencySummary } from "./latency.ts";
import type { LoadOptions } from "./load_options.ts";
import { type LoadDisk, type LoadPlan, planLoad } from "./load_plan.ts";
import {
  checkBlock,
  fillBlock,
  headerAddress,
  headerGeneration,
  payloadPattern,
  VerifyStatus,
  type VerifyStatusCode,
  verifyStatusText,
} from "./verify.ts";

/** What the load runs on: a bound driver and the guest memory it uses. */
export interface LoadTarget {
  readonly driver: VirtioBlkDriver;
  /** The guest memory the driver was initialised with. */
  readonly memory: SharedGuestMemory;
  /** Where the load allocates its per-slot buffers. */
  readonly allocator: GuestAllocator;
}

/**
 * The load's phase: the ramp before the run (no progress is reported for
 * it), the run itself, or reading back what it wrote.
 */
export type LoadPhase = "ramp" | "run" | "verify";

/** A snapshot for progress output. */
export interface LoadProgress {
  /** The phase this snapshot is of. */
  readonly phase: LoadPhase;
  /** Milliseconds since the phase started. */
  readonly elapsedMs: number;
  /** Estimated share of the phase done, 0–1. */
  readonly fraction: number;
  /** Reads completed OK so far in this phase, and their bytes. */
  readonly read: { readonly ios: number; readonly bytes: number };
  /** Writes completed OK so far in this phase, and their bytes. */
  readonly write: { readonly ios: number; readonly bytes: number };
  /** Requests that completed with another status so far. */
  readonly errors: number;
  /** Blocks that failed verification so far. */
  readonly mismatches: number;
  /**
   * Requests of this phase completed so far (every direction, failed ones
   * too) and the sum of their latencies: two snapshots give the mean
   * latency between them (a live chart).
   */
  readonly latency: { readonly count: number; readonly totalNs: number };
}

/** Callbacks and limits around a run. */
export interface LoadHooks {
  /** Called about every `progressIntervalMs` and at each phase's start and end (not the ramp's). */
  readonly onProgress?: (progress: LoadProgress) => void;
  /** Default 1000. */
  readonly progressIntervalMs?: number;
  /** Stops submitting when `aborted` turns true (an AbortSignal, or a view of a shared flag). */
  readonly signal?: { readonly aborted: boolean };
  /** Longest wait for any completion before the device is declared hung (default 30 s). */
  readonly timeoutMs?: number;
}

/** Statistics of one direction in one phase. */
export interface DirectionResult {
  /** Requests completed with status OK. */
  readonly ios: number;
  /** Bytes those requests moved. */
  readonly bytes: number;
  /** Requests completed with another status. */
  readonly errors: number;
  /** Wall time of the phase. */
  readonly runtimeMs: number;
  /** Requests completed OK per second. */
  readonly iops: number;
  /** Bytes per second. */
  readonly bandwidth: number;
  /** Submission to completion, every request (failed ones included). */
  readonly latency: LatencySummary;
  /** The histogram behind `latency`, to merge the shares of a load spread over vCPUs. */
  readonly histogram?: LatencyHistogramState;
}

/** A request that completed with a status other than OK. */
export interface IoErrorRecord {
  /** What the request was. */
  readonly direction: "read" | "write" | "flush";
  /** Byte address on the disk (0 for a flush). */
  readonly address: number;
  /** The status byte (1 IOERR, 2 UNSUPP). */
  readonly status: number;
}

/** A block that failed verification. */
export interface MismatchRecord {
  /** The phase whose read found it. */
  readonly phase: LoadPhase;
  /** Byte address of the block on the disk. */
  readonly address: number;
  /** What the check found. */
  readonly status: VerifyStatusCode;
  /** The same, in words. */
  readonly reason: string;
  /** The address the block's header claims. */
  readonly foundAddress: number;
  /** The generation the block's header claims, and the one expected (0: any). */
  readonly foundGeneration: number;
  /** The generation expected (0: any). */
  readonly expectedGeneration: number;
}

/** What verification found. */
export interface VerifyResult {
  /** How blocks are checked. */
  readonly method: "crc32c";
  /** Blocks read and checked (run and verify phase). */
  readonly checked: number;
  /** Blocks that failed a check. */
  readonly mismatches: number;
  /** Reads in a mixed load of blocks this run had not written yet (content unknown). */
  readonly unverifiedReads: number;
  /** The first {@linkcode MAX_RECORDS} failures. */
  readonly failures: readonly MismatchRecord[];
  /** Reads of the verify phase, or null when there was none. */
  readonly phase: DirectionResult | null;
}

/** Why the run ended. */
export type StopReason = "done" | "runtime" | "error" | "aborted";

/** Everything a load measured and found. */
export interface LoadResult {
  /** The load as fitted to the disk. */
  readonly plan: LoadPlan;
  /** Why the run ended. */
  readonly stoppedBy: StopReason;
  /** Reads of the run phase. */
  readonly read: DirectionResult;
  /** Writes of the run phase. */
  readonly write: DirectionResult;
  /** What verification found, or null without `verify`. */
  readonly verify: VerifyResult | null;
  /** Failed requests in all phases. */
  readonly errorCount: number;
  /** The first {@linkcode MAX_RECORDS} failed requests. */
  readonly errors: readonly IoErrorRecord[];
  /** Whether an end_fsync flush completed. */
  readonly flushed: boolean;
  /** Remarks for the report (a read-only disk, a region clipped to the disk, …). */
  readonly notes: readonly string[];
}

/** Polling cap of `--hipri`, in microseconds: about two wake-ups of a sleeping thread here. */
export const HIPRI_POLL_US = 50;

/** How many errors and mismatches are kept with details. */
export const MAX_RECORDS = 32;

/** Verification keeps a byte per block; regions with more blocks are refused. */
export const MAX_VERIFIED_BLOCKS = 2 ** 28;

/** Per-block state byte: the last generation written (1–127; 0 unknown) and a busy bit. */
const GENERATION_MASK = 0x7f;
const BUSY = 0x80;

/** The disk facts {@linkcode planLoad} needs, read from a driver. */
export function loadDiskOf(driver: VirtioBlkDriver): LoadDisk {
  return {
    capacity: driver.info.capacity * 512,
    logicalBlockSize: driver.info.logicalBlockSize,
    readOnly: driver.info.readOnly,
    queueSize: driver.queueSize,
    indirect: driver.usesIndirect,
  };
}

class DirectionStats {
  ios = 0;
  bytes = 0;
  errors = 0;
  readonly latency = new LatencyHistogram();

  result(runtimeMs: number): DirectionResult {
    const seconds = runtimeMs / 1000;
    return {
      ios: this.ios,
      bytes: this.bytes,
      errors: this.errors,
      runtimeMs,
      iops: seconds > 0 ? this.ios / seconds : 0,
      bandwidth: seconds > 0 ? this.bytes / seconds : 0,
      latency: this.latency.summary(),
      histogram: this.latency.state(),
    };
  }
}

/**
 * Runs a load to completion, blocking the thread (in a Worker it sleeps in
 * `waitSync` between completions). Throws {@linkcode VirtioBlkError} for
 * options the disk cannot take ("INVALID_CONFIG") and for a device that
 * stops answering or needs a reset ("IO_ERROR"); failed requests and
 * verification failures are results, not exceptions.
 *
 * @example
 * ```ts
 * const options = parseLoadOptions({ rw: "randwrite", bs: "4k", iodepth: "16", verify: "crc32c" });
 * const result = runLoad({ driver, memory, allocator }, options);
 * console.log(formatLoadReport(result));
 * ```
 */
export function runLoad(
  target: LoadTarget,
  options: LoadOptions,
  hooks: LoadHooks = {},
): LoadResult {
  const plan = planLoad(options, loadDiskOf(target.driver));
  const { driver } = target;
  if (driver.info.segMax < 1) {
    throw new VirtioBlkError("UNSUPPORTED", "the device accepts no data segments (seg_max 0)");
  }
  if (!driver.usesIndirect && driver.queueSize < 3) {
    throw new VirtioBlkError(
      "UNSUPPORTED",
      `a ring of ${driver.queueSize} descriptors cannot hold a request (header, data, status)`,
    );
  }
  if (options.verify === "crc32c" && plan.readPercent < 100 && plan.blocks > MAX_VERIFIED_BLOCKS) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `--verify=crc32c tracks each of the region's ${plan.blocks} blocks; at most 2^28 are ` +
        `supported (use a larger --bs or a smaller --size)`,
    );
  }
  if (!options.hipri) return new LoadRun(target, plan, hooks).run();
  // hipri: polled completions for the run, as fio's polled I/O (see VirtioBlkDriver.pollUs).
  const pollUs = driver.pollUs;
  driver.pollUs = HIPRI_POLL_US;
  try {
    return new LoadRun(target, plan, hooks).run();
  } finally {
    driver.pollUs = pollUs;
  }
}

class LoadRun {
  readonly #driver: VirtioBlkDriver;
  readonly #allocator: GuestAllocator;
  readonly #plan: LoadPlan;
  readonly #hooks: LoadHooks;
  readonly #bs: number;
  readonly #verify: boolean;
  readonly #timeoutMs: number;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  readonly #view: DataView;
  readonly #gpaBase: number;

  // Slots: one per request in flight, each with its own guest buffer.
  readonly #depth: number;
  #bufferGpa = -1;
  readonly #slotOffset: Float64Array;
  readonly #slotBuffers: Buffers[] = [];
  readonly #slotBlock: Float64Array;
  readonly #slotWrite: Uint8Array;
  readonly #slotGeneration: Uint8Array;
  readonly #slotStart: Float64Array;
  readonly #freeSlots: Int32Array;
  #freeCount: number;
  readonly #tokenSlot: Int32Array;
  #inFlight = 0;

  readonly #order: BlockOrder;
  readonly #mix: Random;
  readonly #pattern: Uint32Array | null;
  /** Per-block generation and busy bit, when a load with writes verifies. */
  readonly #state: Uint8Array | null;
  #pendingBlock = -1;
  #pendingWrite = false;
  #verifyCursor = 0;
  /** Blocks the verify phase will read. */
  #verifyTotal = 0;
  #exhausted = false;

  #phase: LoadPhase = "run";
  #completionTime = 0;
  #phaseCompleted = 0;
  #stopReason: StopReason | null = null;
  #read = new DirectionStats();
  #write = new DirectionStats();
  readonly #verifyRead = new DirectionStats();
  #errorCount = 0;
  readonly #errors: IoErrorRecord[] = [];
  #checked = 0;
  #mismatches = 0;
  #unverifiedReads = 0;
  readonly #failures: MismatchRecord[] = [];
  readonly #onComplete: (token: number, status: number) => void;

  constructor(target: LoadTarget, plan: LoadPlan, hooks: LoadHooks) {
    this.#driver = target.driver;
    this.#allocator = target.allocator;
    this.#plan = plan;
    this.#hooks = hooks;
    this.#bs = plan.options.bs;
    this.#verify = plan.options.verify === "crc32c";
    this.#timeoutMs = hooks.timeoutMs ?? 30_000;
    // The region's views cover all of it, up to 4 GiB (2^32 >>> 2 would be 0).
    const region = target.memory.regions[0];
    this.#bytes = region.bytes;
    this.#words = region.u32;
    this.#view = new DataView(target.memory.buffer);
    this.#gpaBase = region.gpa;

    const depth = plan.depth;
    this.#depth = depth;
    this.#slotOffset = new Float64Array(depth);
    this.#slotBlock = new Float64Array(depth);
    this.#slotWrite = new Uint8Array(depth);
    this.#slotGeneration = new Uint8Array(depth);
    this.#slotStart = new Float64Array(depth);
    this.#freeSlots = new Int32Array(depth);
    this.#freeCount = 0;
    this.#tokenSlot = new Int32Array(this.#driver.queueSize).fill(-1);

    this.#order = new BlockOrder(plan.blocks, plan.random, plan.options.seed);
    this.#mix = new Random(plan.options.seed ^ 0x3c6ef372);
    this.#pattern = this.#verify ? payloadPattern(plan.options.seed, this.#bs) : null;
    this.#state = this.#verify && plan.readPercent < 100 ? new Uint8Array(plan.blocks) : null;
    this.#onComplete = (token, status) => this.#complete(token, status);
  }

  run(): LoadResult {
    this.#allocateBuffers();
    let drained = false;
    try {
      const notes = [...this.#plan.notes];
      if (this.#plan.options.rampMs > 0) {
        this.#runPhase("ramp");
        // What the ramp moved is not measured; its failures stay counted in errorCount.
        this.#read = new DirectionStats();
        this.#write = new DirectionStats();
      }
      const runMs = this.#runPhase("run");
      const flushed = this.#endFsync(notes);
      let verifyMs = -1;
      const stopped = this.#stopReason === "error" || this.#stopReason === "aborted";
      if (this.#state !== null && !stopped && this.#write.ios > 0) {
        verifyMs = this.#runPhase("verify");
      }
      drained = true;
      return {
        plan: this.#plan,
        stoppedBy: this.#stopReason ?? "done",
        read: this.#read.result(runMs),
        write: this.#write.result(runMs),
        verify: this.#verify
          ? {
            method: "crc32c",
            checked: this.#checked,
            mismatches: this.#mismatches,
            unverifiedReads: this.#unverifiedReads,
            failures: this.#failures,
            phase: verifyMs < 0 ? null : this.#verifyRead.result(verifyMs),
          }
          : null,
        errorCount: this.#errorCount,
        errors: this.#errors,
        flushed,
        notes,
      };
    } finally {
      // Buffers the device may still write into are never handed back.
      if (drained || this.#inFlight === 0) this.#allocator.free(this.#bufferGpa);
    }
  }

  #allocateBuffers(): void {
    const total = this.#depth * this.#bs;
    const alignment = Math.max(4096, this.#driver.info.logicalBlockSize);
    try {
      this.#bufferGpa = this.#allocator.alloc(total, alignment);
    } catch (error) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `iodepth ${this.#depth} × bs ${this.#bs} = ${total} bytes of buffers do not fit in guest ` +
          `memory (${this.#allocator.available} bytes free)`,
        { cause: error },
      );
    }
    const fillPattern = payloadPattern(this.#plan.options.seed, this.#bs);
    for (let slot = 0; slot < this.#depth; slot++) {
      const gpa = this.#bufferGpa + slot * this.#bs;
      const offset = gpa - this.#gpaBase;
      this.#slotOffset[slot] = offset;
      this.#slotBuffers.push({ count: 1, address: [gpa], length: [this.#bs] });
      // Unverified writes send this pattern (fio also writes non-zero data by default).
      this.#words.set(fillPattern, offset >>> 2);
      this.#freeSlots[this.#freeCount++] = slot;
    }
  }

  /** Runs one phase to its end; returns its wall time in milliseconds. */
  #runPhase(phase: LoadPhase): number {
    this.#phase = phase;
    this.#phaseCompleted = 0;
    this.#exhausted = false;
    this.#pendingBlock = -1;
    this.#verifyCursor = 0;
    if (phase === "verify") {
      this.#verifyTotal = this.#state!.reduce(
        (n, s) => n + ((s & GENERATION_MASK) === 0 ? 0 : 1),
        0,
      );
    }
    const driver = this.#driver;
    const start = performance.now();
    const { runtimeMs: runtime, rampMs } = this.#plan.options;
    const deadline = phase === "ramp"
      ? start + rampMs
      : phase === "run" && runtime !== null
      ? start + runtime
      : Infinity;
    const interval = this.#hooks.progressIntervalMs ?? 1000;
    let nextProgress = start + interval;
    let stopping = false;
    this.#progress(start, start);
    for (;;) {
      const now = performance.now();
      if (!stopping) {
        if (this.#stopReason === "error") {
          stopping = true;
        } else if (this.#hooks.signal?.aborted) {
          this.#stopReason = "aborted";
          stopping = true;
        } else if (now >= deadline) {
          // The ramp's end is the run's start, not a reason the load stopped.
          if (phase !== "ramp") this.#stopReason ??= "runtime";
          stopping = true;
        }
      }
      const submitted = stopping || this.#exhausted ? 0 : this.#fill(now, deadline);
      if (submitted > 0) driver.kick();
      if (this.#inFlight === 0) {
        if (stopping || this.#exhausted) break;
        if (submitted === 0) throw new Error("load: nothing in flight and nothing submitted");
        continue;
      }
      this.#completionTime = performance.now();
      if (driver.reap(this.#onComplete) === 0) {
        if (!driver.waitSync(this.#timeoutMs)) {
          throw new VirtioBlkError(
            "IO_ERROR",
            `the device completed none of ${this.#inFlight} requests within ${this.#timeoutMs} ms`,
          );
        }
        if (driver.needsReset) throw new VirtioBlkError("IO_ERROR", "the device needs a reset");
        this.#completionTime = performance.now();
        driver.reap(this.#onComplete);
      }
      if (this.#completionTime >= nextProgress) {
        this.#progress(start, this.#completionTime);
        nextProgress = this.#completionTime + interval;
      }
    }
    const end = performance.now();
    this.#progress(start, end);
    return end - start;
  }

  /** Submits requests while slots and ring room last; returns how many. */
  #fill(now: number, deadline: number): number {
    let submitted = 0;
    while (this.#freeCount > 0 && this.#driver.hasRoom(1)) {
      if (this.#pendingBlock < 0 && !this.#pick(now < deadline)) break;
      const block = this.#pendingBlock;
      const state = this.#state;
      if (state !== null && (state[block] & BUSY) !== 0) break; // wait for the request on it
      const slot = this.#freeSlots[this.#freeCount - 1];
      const write = this.#pendingWrite;
      const address = this.#plan.offset + block * this.#bs;
      let generation = 0;
      if (write && this.#pattern !== null && state !== null) {
        generation = (state[block] & GENERATION_MASK) % GENERATION_MASK + 1;
        fillBlock(
          this.#bytes,
          this.#words,
          this.#view,
          this.#slotOffset[slot],
          this.#pattern,
          address,
          this.#plan.options.seed,
          generation,
        );
      }
      const token = this.#driver.submit(
        write ? RequestType.OUT : RequestType.IN,
        address / 512,
        this.#slotBuffers[slot],
      );
      if (token < 0) break;
      this.#freeCount--;
      if (state !== null) state[block] |= BUSY;
      this.#tokenSlot[token] = slot;
      this.#slotBlock[slot] = block;
      this.#slotWrite[slot] = write ? 1 : 0;
      this.#slotGeneration[slot] = generation;
      this.#slotStart[slot] = now;
      this.#inFlight++;
      this.#pendingBlock = -1;
      submitted++;
    }
    return submitted;
  }

  /** Chooses the next block and direction; false when the phase has no more. */
  #pick(beforeDeadline: boolean): boolean {
    if (this.#phase === "verify") {
      const state = this.#state!;
      while (
        this.#verifyCursor < state.length && (state[this.#verifyCursor] & GENERATION_MASK) === 0
      ) {
        this.#verifyCursor++;
      }
      if (this.#verifyCursor === state.length) {
        this.#exhausted = true;
        return false;
      }
      this.#pendingBlock = this.#verifyCursor++;
      this.#pendingWrite = false;
      return true;
    }
    let block = this.#order.next();
    if (block < 0 && this.#plan.options.timeBased && beforeDeadline) {
      this.#order.nextPass();
      block = this.#order.next();
    }
    if (block < 0) {
      this.#exhausted = true;
      return false;
    }
    const reads = this.#plan.readPercent;
    this.#pendingBlock = block;
    this.#pendingWrite = reads === 100 ? false : reads === 0 ? true : this.#mix.below(100) >= reads;
    return true;
  }

  #complete(token: number, status: number): void {
    const slot = this.#tokenSlot[token];
    this.#tokenSlot[token] = -1;
    const block = this.#slotBlock[slot];
    const write = this.#slotWrite[slot] === 1;
    const stats = this.#phase === "verify" ? this.#verifyRead : write ? this.#write : this.#read;
    stats.latency.record((this.#completionTime - this.#slotStart[slot]) * 1e6);
    const state = this.#state;
    const address = this.#plan.offset + block * this.#bs;
    if (status !== RequestStatus.OK) {
      stats.errors++;
      this.#recordError(write ? "write" : "read", address, status);
      // A failed write leaves the block's content unknown: stop checking it.
      if (state !== null) state[block] = write ? 0 : state[block] & GENERATION_MASK;
    } else {
      stats.ios++;
      stats.bytes += this.#bs;
      if (write) {
        if (state !== null) state[block] = this.#slotGeneration[slot];
      } else {
        if (this.#verify) this.#check(slot, block, address);
        if (state !== null) state[block] &= GENERATION_MASK;
      }
    }
    this.#freeSlots[this.#freeCount++] = slot;
    this.#inFlight--;
    this.#phaseCompleted++;
  }

  #check(slot: number, block: number, address: number): void {
    let expected = 0;
    if (this.#state !== null) {
      expected = this.#state[block] & GENERATION_MASK;
      if (expected === 0) {
        this.#unverifiedReads++;
        return;
      }
    }
    this.#checked++;
    const at = this.#slotOffset[slot];
    const seed = this.#plan.options.seed;
    const result = checkBlock(this.#bytes, this.#view, at, this.#bs, address, seed, expected);
    if (result === VerifyStatus.OK) return;
    this.#mismatches++;
    if (this.#failures.length < MAX_RECORDS) {
      this.#failures.push({
        phase: this.#phase,
        address,
        status: result,
        reason: verifyStatusText(result),
        foundAddress: headerAddress(this.#view, at),
        foundGeneration: headerGeneration(this.#view, at),
        expectedGeneration: expected,
      });
    }
  }

  #recordError(direction: IoErrorRecord["direction"], address: number, status: number): void {
    this.#errorCount++;
    if (this.#errors.length < MAX_RECORDS) this.#errors.push({ direction, address, status });
    if (!this.#plan.options.continueOnError) this.#stopReason = "error";
  }

  #endFsync(notes: string[]): boolean {
    if (!this.#plan.options.endFsync || this.#write.ios === 0) return false;
    if (!hasFeature(this.#driver.info.features, BlkFeature.FLUSH)) {
      notes.push("end_fsync: the device offers no FLUSH; nothing to flush");
      return false;
    }
    try {
      this.#driver.flushSync();
      return true;
    } catch (error) {
      if (!(error instanceof RequestFailed)) throw error;
      this.#recordError("flush", 0, error.status);
      return false;
    }
  }

  #progress(start: number, now: number): void {
    const onProgress = this.#hooks.onProgress;
    if (onProgress === undefined || this.#phase === "ramp") return;
    const elapsedMs = now - start;
    const runtime = this.#plan.options.runtimeMs;
    let fraction: number;
    if (this.#phase === "verify") {
      fraction = this.#phaseCompleted / Math.max(1, this.#verifyTotal);
    } else {
      const byBlocks = this.#plan.options.timeBased ? 0 : this.#phaseCompleted / this.#plan.blocks;
      fraction = Math.max(byBlocks, runtime === null ? 0 : elapsedMs / runtime);
    }
    onProgress({
      phase: this.#phase,
      elapsedMs,
      fraction: Math.min(1, fraction),
      // Counts of this phase, so that they and elapsedMs give its rates.
      read: this.#phase === "verify"
        ? { ios: this.#verifyRead.ios, bytes: this.#verifyRead.bytes }
        : { ios: this.#read.ios, bytes: this.#read.bytes },
      write: this.#phase === "verify"
        ? { ios: 0, bytes: 0 }
        : { ios: this.#write.ios, bytes: this.#write.bytes },
      errors: this.#errorCount,
      mismatches: this.#mismatches,
      latency: this.#phase === "verify"
        ? { count: this.#verifyRead.latency.count, totalNs: this.#verifyRead.latency.total }
        : {
          count: this.#read.latency.count + this.#write.latency.count,
          totalNs: this.#read.latency.total + this.#write.latency.total,
        },
    });
  }
}
