import assert from "node:assert/strict";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import type { UosJob } from "../../src/guest/uos.ts";
import { runUos } from "../../src/guest/uos_run.ts";
import { QueueWord } from "../../src/virtio/queue_state.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";

/** The next used index queue `index` of the VM's first disk will publish: requests it completed. */
function completed(vm: VirtualMachine, index: number): number {
  return Atomics.load(vm.disks[0].function.device.queueStateOf(index).words, QueueWord.NEXT_USED);
}

const BS = 4096;
const REGION = 1 << 20;

for (const io of IO_VARIANTS) {
  Deno.test(
    `mq=2 with 2 vCPUs (${io.name}): a verified load runs over both queues, each vCPU its own queue and half the depth`,
    { ignore: io.skip.ignore },
    async () => {
      using medium = io.medium(4 << 20);
      const vm = await VirtualMachine.create({
        memoryBytes: 64 << 20,
        vcpus: 2,
        disks: [{ slot: 9, func: 0, device: { backend: medium.backend, queues: 2 } }],
      });
      try {
        const job: UosJob = {
          kind: "load",
          disk: "vda",
          options: parseLoadOptions({
            rw: "randwrite",
            bs: String(BS),
            iodepth: "8",
            size: String(REGION),
            verify: "crc32c",
          }),
          json: false,
          progress: false,
        };
        const output: string[] = [];
        const result = await runUos(vm, job, { stdout: (text) => output.push(text) });
        const load = result.load!;
        assert.equal(result.exitCode, 0, output.join("\n"));
        const blocks = REGION / BS;
        // Every block written once and read back once, over the two vCPUs together.
        assert.equal(load.write.ios, blocks);
        assert.equal(load.verify?.checked, blocks);
        assert.equal(load.verify?.mismatches, 0);
        assert.equal(load.plan.depth, 8);
        assert.ok(
          load.notes.includes(
            `spread over 2 vCPUs, each on its own queue: iodepth 4+4, requests ${blocks / 2}+${
              blocks / 2
            }`,
          ),
          load.notes.join("\n"),
        );
        // The device's side: each queue completed its half of the writes and of the reads.
        assert.deepEqual([completed(vm, 0), completed(vm, 1)], [blocks, blocks]);
        assert.equal(load.write.latency.count, blocks);
      } finally {
        await vm.close();
      }
    },
  );
}

Deno.test("mq=2 with 2 vCPUs: lsblk shows the two queues the guest drives; one vCPU drives one", async () => {
  for (const [vcpus, queues] of [[2, 2], [1, 1]]) {
    using medium = IO_VARIANTS[0].medium(1 << 20);
    const vm = await VirtualMachine.create({
      memoryBytes: 32 << 20,
      vcpus,
      disks: [{ slot: 9, func: 0, device: { backend: medium.backend, queues: 2 } }],
    });
    try {
      const printed: string[] = [];
      await runUos(vm, { kind: "lsblk", json: true }, { stdout: (text) => printed.push(text) });
      assert.equal(JSON.parse(printed.join("")).blockdevices[0].queues, queues);
    } finally {
      await vm.close();
    }
  }
});
