/**
 * The raw baseline: the benchmark file read or written directly from 1, 2,
 * 8… threads of the same runtime, each doing one positional request at a
 * time (so queue depth = threads), with no ring. The threads are started
 * once and reused for every measurement.
 *
 * @module
 */

import { startThread, type Thread } from "../../src/runtime/thread.ts";
import {
  type BaselineJob,
  ControlWord,
  createControl,
  type FromBaselineWorker,
} from "./baseline_layout.ts";
import { type BenchCase, isWrite } from "./cases.ts";
import { LatencyCounts } from "./latency_counts.ts";
import { type Measurement, measurementOf } from "./measurement.ts";
import { markUsage, usageSince } from "./proc_stats.ts";

/** Requests of at least this size, and synced writes, are all timed (see BaselineJob). */
const TIME_ALL_FROM_BYTES = 64 * 1024;
/** Otherwise one request in this many is timed. */
const SAMPLE_EVERY = 8;

interface BaselineThread {
  readonly thread: Thread;
  /** Resolves with the thread's next message. */
  next(): Promise<FromBaselineWorker>;
}

/** Raw positional I/O threads over one file. */
export class BaselinePool {
  readonly #path: string;
  readonly #size: number;
  readonly #cores: number;
  readonly #control = createControl();
  readonly #threads: BaselineThread[] = [];
  #seed = 1;

  /**
   * @param path the benchmark file
   * @param size its size in bytes
   * @param cores the machine's cores (for the noise figure)
   */
  constructor(path: string, size: number, cores: number) {
    this.#path = path;
    this.#size = size;
    this.#cores = cores;
  }

  /** Runs `benchCase` on `threads` threads for `seconds` and measures it. */
  async measure(benchCase: BenchCase, threads: number, seconds: number): Promise<Measurement> {
    await this.#ensure(threads);
    const words = this.#control;
    Atomics.store(words, ControlWord.READY, 0);
    Atomics.store(words, ControlWord.STOP, 0);
    Atomics.store(words, ControlWord.CURSOR, 0);
    const go = Atomics.load(words, ControlWord.GO);
    const sync = isWrite(benchCase) && !benchCase.writeback;
    const replies: Promise<FromBaselineWorker>[] = [];
    for (let i = 0; i < threads; i++) {
      const job: BaselineJob = {
        rw: benchCase.rw,
        bs: benchCase.bs,
        blocks: Math.floor(this.#size / benchCase.bs),
        sync,
        seed: this.#seed++,
        sampleEvery: sync || benchCase.bs >= TIME_ALL_FROM_BYTES ? 1 : SAMPLE_EVERY,
        go,
      };
      replies.push(this.#threads[i].next());
      this.#threads[i].thread.postMessage({ type: "run", job });
    }
    let failure: string | undefined;
    for (const reply of replies) {
      reply.then((r) => {
        if (r.type === "error") failure ??= r.message;
      });
    }
    // Start them together once all wait for GO.
    for (;;) {
      const ready = Atomics.load(words, ControlWord.READY);
      if (ready >= threads) break;
      if (failure !== undefined) {
        // Release the threads that do wait, straight into a stop.
        Atomics.store(words, ControlWord.STOP, 1);
        Atomics.add(words, ControlWord.GO, 1);
        Atomics.notify(words, ControlWord.GO);
        await Promise.all(replies);
        throw new Error(`baseline thread: ${failure}`);
      }
      await Atomics.waitAsync(words, ControlWord.READY, ready, 100).value;
    }
    const mark = markUsage();
    Atomics.add(words, ControlWord.GO, 1);
    Atomics.notify(words, ControlWord.GO);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    Atomics.store(words, ControlWord.STOP, 1);
    const results = await Promise.all(replies);
    const usage = usageSince(mark);

    const latency = new LatencyCounts();
    let ios = 0, bytes = 0, errors = 0;
    for (const result of results) {
      if (result.type !== "done") {
        throw new Error(
          `baseline thread: ${result.type === "error" ? result.message : result.type}`,
        );
      }
      ios += result.ios;
      bytes += result.bytes;
      errors += result.errors;
      latency.add(new LatencyCounts(result.counts));
    }
    return measurementOf({
      ios,
      bytes,
      errors,
      seconds: usage.wallSeconds,
      p50Ns: latency.percentile(50),
      p99Ns: latency.percentile(99),
      cpuSeconds: usage.cpuSeconds,
      machineBusySeconds: usage.machineBusySeconds,
      cores: this.#cores,
    });
  }

  /** Stops every thread. */
  async close(): Promise<void> {
    for (const t of this.#threads) t.thread.postMessage({ type: "close" });
    await Promise.all(this.#threads.map((t) => t.thread.terminate()));
    this.#threads.length = 0;
  }

  /** Starts threads (each opening the file) until there are `count`. */
  async #ensure(count: number): Promise<void> {
    const url = new URL("./baseline_worker.ts", import.meta.url);
    while (this.#threads.length < count) {
      const thread = await startThread(url, `baseline-${this.#threads.length}`);
      const waiting: ((message: FromBaselineWorker) => void)[] = [];
      const early: FromBaselineWorker[] = [];
      thread.onMessage((message) => {
        const resolve = waiting.shift();
        if (resolve) resolve(message as FromBaselineWorker);
        else early.push(message as FromBaselineWorker);
      });
      let failure: unknown;
      thread.onError((error) => {
        failure = error;
        for (const resolve of waiting.splice(0)) {
          resolve({ type: "error", message: String(error) });
        }
      });
      const next = () =>
        early.length > 0
          ? Promise.resolve(early.shift()!)
          : failure !== undefined
          ? Promise.resolve<FromBaselineWorker>({ type: "error", message: String(failure) })
          : new Promise<FromBaselineWorker>((resolve) => waiting.push(resolve));
      const entry = { thread, next };
      this.#threads.push(entry);
      const opened = next();
      thread.postMessage({ type: "open", control: this.#control.buffer, path: this.#path });
      const reply = await opened;
      if (reply.type !== "opened") {
        throw new Error(
          `baseline thread cannot open ${this.#path}: ${
            reply.type === "error" ? reply.message : reply.type
          }`,
        );
      }
    }
  }
}
