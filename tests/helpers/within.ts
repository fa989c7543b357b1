/**
 * The bound that turns "never" into a failure: a test that waits for
 * something that may never happen (a reply, a close, a process exit) waits
 * through {@linkcode within} or {@linkcode until}, so a hang fails the test with what it waited
 * for instead of hanging the test run. Not a timing assertion: the bound is
 * far above what the wait takes.
 *
 * Plain JavaScript: runs on Node too.
 *
 * @module
 */

/**
 * Resolves with `promise`'s value, or rejects naming `what` when it has not
 * settled after `ms`.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves once `condition()` holds, looking every 10 ms; rejects naming
 * `what` after `ms`, and then stops looking (a look after the test ended
 * could read a front end's memory after it was unmapped).
 */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() >= end) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
