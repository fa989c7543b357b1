/**
 * Runs the ring property (`ring_fuzz.ts`) off the test's thread, so that a
 * device that hangs shows as a timeout instead of a test run that never
 * ends. Posts `{ ok: true, stats }` or `{ ok: false, message }`.
 */

import fc from "fast-check";
import { parentChannel } from "../../src/runtime/thread.ts";
import { checkCase, FOUND_CASES, fuzzCase, newStats } from "./ring_fuzz.ts";
import type { RawGuestOptions } from "../helpers/raw_guest.ts";

const parent = await parentChannel();
parent.onMessage(async (message) => {
  const { numRuns, seed, medium } = message as {
    numRuns: number;
    seed?: number;
    medium?: RawGuestOptions["medium"];
  };
  try {
    const stats = newStats();
    await fc.assert(fc.asyncProperty(fuzzCase, (c) => checkCase(c, stats, medium)), {
      numRuns,
      seed,
      examples: FOUND_CASES.map((c) => [c]),
    });
    parent.postMessage({ ok: true, stats });
  } catch (error) {
    parent.postMessage({
      ok: false,
      message: error instanceof Error ? error.message : String(error),
    });
  }
});
