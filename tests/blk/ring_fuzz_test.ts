/**
 * Property: whatever descriptor tables, indirect tables and available rings
 * a guest writes, the device never throws, never hangs, returns exactly the
 * chains the queue rules allow (each head one that was made available),
 * breaks the queue exactly when they say so, and answers each chain it
 * returns exactly as the request rules say: the status byte, the used
 * length, the data it reads into guest memory and writes to the disk, and
 * nothing else anywhere. See `ring_fuzz.ts` for the models. On a RAM disk
 * (the threads' synchronous I/O), and on a file served through io_uring.
 */

import assert from "node:assert/strict";
import { siblingModule, startThread } from "../../src/runtime/thread.ts";
import type { FuzzStats, Outcome } from "./ring_fuzz.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";

/** Enough for a few hundred cases on a slow CI machine; a hang is far longer. */
const TIMEOUT_MS = 60_000;
const RUNS = 300;

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `property (${io.name}): random rings and tables never make the device throw or hang, and it answers every chain it returns as the model of the queue, the requests and the disk does`,
    ignore: io.skip.ignore,
    fn: async () => {
      const worker = await startThread(
        siblingModule(import.meta.url, "ring_fuzz_worker"),
        "ring-fuzz",
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const result = await new Promise<
          { ok: boolean; message?: string; timedOut?: boolean; stats?: FuzzStats }
        >(
          (resolve) => {
            worker.onMessage((message) => resolve(message as { ok: boolean }));
            worker.onError((error) => resolve({ ok: false, message: `worker error: ${error}` }));
            timer = setTimeout(() => resolve({ ok: false, timedOut: true }), TIMEOUT_MS);
            worker.postMessage({
              numRuns: RUNS,
              medium: io.name === "io_uring" ? "io_uring" : "ram",
            });
          },
        );
        assert.ok(!result.timedOut, `no answer within ${TIMEOUT_MS} ms: the device hangs`);
        assert.ok(result.ok, result.message);
        // The generator reaches every kind of outcome (so the property is not vacuous).
        const { returned, faults } = result.stats!;
        const outcomes: Outcome[] = [
          "read",
          "write",
          "flush",
          "get-id",
          "unsupported",
          "ioerr",
          "unanswered",
        ];
        for (const outcome of outcomes) {
          assert.ok(
            (returned[outcome] ?? 0) > 0,
            `some chains answered ${outcome}: ${JSON.stringify(returned)}`,
          );
        }
        assert.ok(
          Object.keys(faults).length >= 5,
          `several kinds of fault: ${JSON.stringify(faults)}`,
        );
      } finally {
        clearTimeout(timer);
        await worker.terminate();
      }
    },
  });
}
