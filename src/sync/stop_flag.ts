/**
 * A request to stop, shared between threads: one Int32 word of a
 * SharedArrayBuffer that one thread sets and another polls between pieces of
 * work (the built-in guest's load checks it before each submission, in its
 * vCPU Worker, where no message can arrive while it runs).
 *
 * @module
 */

/** The flag's one word. */
const STOP = 0;

/** A stop request any thread holding its buffer can make or see. */
export class StopFlag {
  readonly #words: Int32Array;

  /**
   * Opens the flag in `buffer`, or makes a new, unset one.
   *
   * @param buffer the {@linkcode StopFlag.buffer} of a flag made in another thread
   */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.#words = new Int32Array(buffer, 0, 1);
  }

  /** The shared buffer, to post to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.#words.buffer as SharedArrayBuffer;
  }

  /** Asks every holder to stop. */
  request(): void {
    Atomics.store(this.#words, STOP, 1);
  }

  /** Whether a stop was asked for (the shape of `AbortSignal.aborted`). */
  get aborted(): boolean {
    return Atomics.load(this.#words, STOP) !== 0;
  }
}
