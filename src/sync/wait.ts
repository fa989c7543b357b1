/**
 * Waiting on a shared word from a thread that may not be allowed to block.
 * A web page's main thread cannot `Atomics.wait` (it throws: the agent
 * cannot suspend); every other thread here can (Deno's and Node's main
 * threads, Web Workers). Code that may run on a page's main thread — the
 * device model's side of a device built there — waits through
 * {@linkcode waitFor}, which blocks where it may and spins where it may not.
 * Those waits are short: a lock held for a few hundred instructions, or the
 * requests in flight at a reset (the page's device model is better run in
 * a Worker, where it blocks instead).
 *
 * @module
 */

let canBlock: boolean | undefined;

/** Whether this thread may block in `Atomics.wait`. */
export function threadCanBlock(): boolean {
  if (canBlock === undefined) {
    // The check comes before the value is compared: "not-equal" at once where
    // waiting is allowed, a TypeError where it is not.
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1);
      canBlock = true;
    } catch {
      canBlock = false;
    }
  }
  return canBlock;
}

/**
 * Waits while `words[index]` is `value`, for at most `timeoutMs` (default:
 * no limit): `Atomics.wait` where this thread may block, else a spin that
 * looks at the word and the clock.
 */
export function waitFor(
  words: Int32Array,
  index: number,
  value: number,
  timeoutMs = Infinity,
): void {
  if (threadCanBlock()) {
    Atomics.wait(words, index, value, timeoutMs);
    return;
  }
  const deadline = performance.now() + timeoutMs;
  while (Atomics.load(words, index) === value && performance.now() < deadline) {
    // Spin: this thread may not sleep.
  }
}
