import assert from "node:assert/strict";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { harness, pattern } from "../helpers/harness.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";

for (const io of IO_VARIANTS) {
  for (const dispatch of ["worker", "device"] as const) {
    Deno.test(`worker engine (${dispatch} dispatch, ${io.name}): write then read back`, {
      ignore: io.skip.ignore,
    }, async () => {
      using medium = io.medium(1 << 20);
      const h = harness({
        device: { backend: medium.backend, engine: workerEngine({ workers: 4, dispatch }) },
      });
      await h.disk.device.ready();
      const data = pattern(8192, 3);
      await h.driver.write(16, data);
      assert.deepEqual(medium.bytes().subarray(16 * 512, 16 * 512 + 8192), data);
      assert.deepEqual(await h.driver.read(16, 8192), data);
      await h.driver.flush();
      await h.close();
    });
  }
}
