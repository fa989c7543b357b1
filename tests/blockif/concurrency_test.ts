import assert from "node:assert/strict";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";

const guestProgram = new URL("../helpers/test_guest.ts", import.meta.url);

interface StressResult {
  completed: number;
  mismatches: number;
  outOfOrder: number;
  failures: number;
  reads: number;
  writes: number;
}

async function stress(
  device: Parameters<typeof VirtualMachine.create>[0]["disks"][number]["device"],
  job: { requests: number; depth: number; maxSectors: number; seed: number },
): Promise<StressResult> {
  const vm = await VirtualMachine.create({
    memoryBytes: 64 << 20,
    disks: [{ slot: 4, func: 0, device }],
  });
  try {
    return await vm.runVcpu(guestProgram, { kind: "stress", disk: 0, ...job }) as StressResult;
  } finally {
    await vm.close();
  }
}

for (const io of IO_VARIANTS) {
  Deno.test(
    `10^5 random reads and writes, 64 in flight from a guest Worker, all match the model of the disk (${io.name})`,
    {
      ignore: io.skip.ignore,
    },
    async () => {
      using medium = io.medium(8 << 20);
      const result = await stress(
        { backend: medium.backend },
        { requests: 100_000, depth: 64, maxSectors: 16, seed: 42 },
      );
      assert.equal(result.completed, 100_000);
      assert.equal(result.failures, 0);
      assert.equal(result.mismatches, 0);
      assert.ok(result.reads > 40_000 && result.writes > 40_000, JSON.stringify(result));
      assert.ok(result.outOfOrder > 0, "8 workers must complete requests out of order");
    },
  );

  Deno.test(`device dispatch (ACRN's model): the same load, same answers (${io.name})`, {
    ignore: io.skip.ignore,
  }, async () => {
    using medium = io.medium(4 << 20);
    const result = await stress(
      { backend: medium.backend, engine: workerEngine({ dispatch: "device" }) },
      { requests: 20_000, depth: 64, maxSectors: 16, seed: 7 },
    );
    assert.deepEqual([result.completed, result.failures, result.mismatches], [20_000, 0, 0]);
  });

  Deno.test(
    `a queue larger than the request pool: chains wait for free elements, none is dropped (${io.name})`,
    {
      ignore: io.skip.ignore,
    },
    async () => {
      using medium = io.medium(4 << 20);
      const result = await stress(
        {
          backend: medium.backend,
          queueSize: 256,
          engine: workerEngine({ poolSize: 4, workers: 3 }),
        },
        { requests: 20_000, depth: 200, maxSectors: 8, seed: 9 },
      );
      assert.deepEqual([result.completed, result.failures, result.mismatches], [20_000, 0, 0]);
    },
  );
}
