/**
 * Runs the ring property (`ring_fuzz.ts`) off the test's thread, so that a
 * device that hangs shows as a timeout instead of a test run that never
 * ends. Posts `{ ok: true, stats }` or `{ ok: false, message }`.
 */

import fc from "fast-check";
import { checkCase, fuzzCase, newStats } from "./ring_fuzz.ts";

/** The worker's global scope, as much of it as this file uses. */
const scope = self as unknown as {
  onmessage: (event: MessageEvent<{ numRuns: number; seed?: number }>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = async (event) => {
  const { numRuns, seed } = event.data;
  try {
    const stats = newStats();
    await fc.assert(fc.asyncProperty(fuzzCase, (c) => checkCase(c, stats)), { numRuns, seed });
    scope.postMessage({ ok: true, stats });
  } catch (error) {
    scope.postMessage({
      ok: false,
      message: error instanceof Error ? error.message : String(error),
    });
  }
};
