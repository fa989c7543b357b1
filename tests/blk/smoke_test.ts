import assert from "node:assert/strict";
import { harness, pattern } from "../helpers/harness.ts";

Deno.test("smoke: write then read back", async () => {
  const h = harness();
  const data = pattern(4096, 1);
  await h.driver.write(8, data);
  assert.deepEqual(h.medium.subarray(4096, 8192), data);
  assert.deepEqual(await h.driver.read(8, 4096), data);
  assert.equal(await h.driver.getId(), h.driver.getIdSync());
  await h.close();
});
