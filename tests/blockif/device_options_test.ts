/**
 * ACRN's device options through the whole stack (file backend, blockif
 * workers, a guest in its vCPU Worker): ro, range=, sectorsize=, a full
 * file system — each through the threads' synchronous calls and through
 * io_uring — and a reset with requests in flight (held in a medium that
 * releases them when the test says; one request per worker thread).
 */

import assert from "node:assert/strict";
import { diskConfig, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { BlkFeature } from "../../src/blk/spec.ts";
import { hasFeature } from "../../src/virtio/spec.ts";
import { fillByte } from "../helpers/fill_pattern.ts";
import { IO_VARIANTS } from "../helpers/io_variants.ts";
import { needsTools, skipWhen } from "../helpers/skip.ts";
import { TmpfsMount, tmpfsUnavailable } from "../backend/file_fixtures.ts";
import { NBD_MEDIUM_TOOLS, NbdMedium } from "../helpers/nbd_medium.ts";
import { ResetGate } from "../helpers/reset_gate.ts";
import { WorkerEngine } from "../../src/blockif/worker_engine.ts";
import { siblingModule, startThread } from "../../src/runtime/thread.ts";

const NO_TMPFS = skipWhen("a full file system (device options)", tmpfsUnavailable());
const NO_PAUSED_MEDIUM = needsTools(...NBD_MEDIUM_TOOLS);

const guestProgram = new URL("../helpers/test_guest.ts", import.meta.url);

async function withVm<T>(specs: string[], body: (vm: VirtualMachine) => Promise<T>): Promise<T> {
  const vm = await VirtualMachine.create({
    memoryBytes: 64 << 20,
    disks: specs.map((spec) => diskConfig(parseSlotSpec(spec))),
  });
  try {
    return await body(vm);
  } finally {
    await vm.close();
  }
}

for (const io of IO_VARIANTS) {
  Deno.test(
    `ro: the guest sees RO, every write fails, the file's bytes and mtime are unchanged (${io.name})`,
    { ignore: io.skip.ignore },
    async () => {
      const dir = await Deno.makeTempDir();
      try {
        const image = `${dir}/ro.img`;
        await Deno.writeFile(image, new Uint8Array(256 << 10).fill(0x3c));
        const before = await Deno.stat(image);
        await withVm([`6,virtio-blk,${image},ro${io.slotOption}`], async (vm) => {
          const [info] = await vm.runVcpu(guestProgram, { kind: "info" }) as {
            readOnly: boolean;
            features: number;
          }[];
          assert.equal(info.readOnly, true);
          assert.ok(hasFeature(info.features, BlkFeature.RO));
          const result = await vm.runVcpu(guestProgram, {
            kind: "write-all",
            disk: 0,
            chunk: 4096,
            seed: 1,
          });
          assert.deepEqual(result, { ok: 0, failed: 64 }, "64 writes failed, the flush succeeded");
        });
        assert.deepEqual(await Deno.readFile(image), new Uint8Array(256 << 10).fill(0x3c));
        assert.equal((await Deno.stat(image)).mtime!.getTime(), before.mtime!.getTime());
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  Deno.test(
    `range=: the guest sees exactly the window; bytes outside it never change (${io.name})`,
    { ignore: io.skip.ignore },
    async () => {
      const dir = await Deno.makeTempDir();
      try {
        const image = `${dir}/range.img`;
        const original = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
        await Deno.writeFile(image, original);
        // 4096-byte logical sectors: the window is bytes [8 * 4096, 72 * 4096).
        const start = 8 * 4096, end = 72 * 4096;
        await withVm(
          [`6,virtio-blk,${image},sectorsize=4096,range=8/64${io.slotOption}`],
          async (vm) => {
            const seen = await vm.runVcpu(guestProgram, {
              kind: "read-all",
              disk: 0,
              chunk: 65536,
            }) as Uint8Array;
            assert.deepEqual(
              seen,
              original.subarray(start, end),
              "reads see the window, and only it",
            );
            const result = await vm.runVcpu(guestProgram, {
              kind: "write-all",
              disk: 0,
              chunk: 8192,
              seed: 5,
            });
            assert.deepEqual(result, { ok: 32, failed: 0 });
          },
        );
        const after = await Deno.readFile(image);
        assert.deepEqual(after.subarray(0, start), original.subarray(0, start));
        assert.deepEqual(after.subarray(end), original.subarray(end));
        for (let i = start; i < end; i++) {
          if (after[i] !== fillByte(i - start, 5)) {
            assert.fail(`byte ${i} of the window was not written`);
          }
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  Deno.test(`sectorsize=: blk_size and physical_block_exp as the guest reads them (${io.name})`, {
    ignore: io.skip.ignore,
  }, async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/a.img`, new Uint8Array(1 << 20));
      await Deno.writeFile(`${dir}/b.img`, new Uint8Array(1 << 20));
      await withVm([
        `6,virtio-blk,${dir}/a.img,sectorsize=512/4096${io.slotOption}`,
        `7,virtio-blk,${dir}/b.img,sectorsize=4096${io.slotOption}`,
      ], async (vm) => {
        const info = await vm.runVcpu(guestProgram, { kind: "info" }) as Record<string, number>[];
        assert.deepEqual(info.map((d) => [d.logicalBlockSize, d.physicalBlockSize, d.capacity]), [
          [512, 4096, 2048],
          [4096, 4096, 2048],
        ]);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(
    `a full file system: the failing write gets IOERR and the device keeps serving (${io.name})`,
    {
      ignore: NO_TMPFS.ignore || io.skip.ignore,
    },
    async () => {
      // A sparse 2 MiB image on a 1 MiB file system: writes run out of space halfway.
      using tmpfs = new TmpfsMount(1 << 20);
      const image = tmpfs.sparseFile("sparse.img", 2 << 20);
      await withVm([`6,virtio-blk,${image}${io.slotOption}`], async (vm) => {
        const result = await vm.runVcpu(guestProgram, {
          kind: "write-all",
          disk: 0,
          chunk: 65536,
          seed: 2,
        }) as {
          ok: number;
          failed: number;
        };
        assert.ok(result.failed > 0 && result.ok > 0, JSON.stringify(result));
        // Blocks that exist can still be read and rewritten.
        const read = await vm.runVcpu(guestProgram, {
          kind: "roundtrip",
          disk: 0,
          sector: 0,
          bytes: [1, 2, 3, ...new Array(509).fill(9)],
        });
        assert.deepEqual((read as number[]).slice(0, 3), [1, 2, 3]);
      });
    },
  );
}

Deno.test(
  "reset with requests in flight: it waits for the reads the workers hold, drops the others, and guest memory never changes once it returned",
  {
    ignore: NO_PAUSED_MEDIUM.ignore,
  },
  async () => {
    // The disk's reads are held in the medium until the gate thread releases
    // them, which it does only once the reset is waiting for them.
    await using medium = await NbdMedium.start({ plugin: { memory: 64 << 20 }, pausable: true });
    await withVm([`6,virtio-blk,${medium.path}`], async (vm) => {
      const engine = vm.disks[0].function.device.engine;
      assert.ok(engine instanceof WorkerEngine);
      const workers = engine.settings.workers;
      const gate = new SharedArrayBuffer(4 * ResetGate.COUNT);
      const thread = await startThread(
        siblingModule(import.meta.url, "../helpers/medium_gate_worker"),
        "medium-gate",
      );
      try {
        const replies: unknown[] = [];
        let next: (() => void) | undefined;
        thread.onMessage((reply) => {
          replies.push(reply);
          next?.();
        });
        const reply = async () => {
          while (replies.length === 0) await new Promise<void>((resolve) => (next = resolve));
          return replies.shift();
        };
        thread.postMessage({ control: medium.control, gate, pool: engine.pool.buffer });
        assert.deepEqual(await reply(), { paused: true });
        const requests = 2 * workers;
        const result = await vm.runVcpu(guestProgram, {
          kind: "reset-in-flight",
          disk: 0,
          requests,
          bytes: 64 << 10,
          inFlight: workers,
          pool: engine.pool.buffer,
          gate,
        }) as { inFlightAtReset: number; atReset: string[]; changedAfterReset: number };
        const gateReport = await reply();
        assert.equal(result.inFlightAtReset, workers, "every worker held a read at the reset");
        assert.equal(result.changedAfterReset, 0, "guest memory changed after the reset returned");
        assert.deepEqual(
          gateReport,
          { resumedWhileResetWaited: true },
          "the reset waited for the reads the workers held",
        );
        const count = (state: string) => result.atReset.filter((s) => s === state).length;
        assert.deepEqual(
          { read: count("read"), untouched: count("untouched") },
          { read: workers, untouched: requests - workers },
          "when the reset returned, the held reads had filled their buffers and the dropped ones never will",
        );
      } finally {
        await thread.terminate();
      }
    });
  },
);
