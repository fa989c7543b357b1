/**
 * What acknowledged writes survive, and the order that makes them durable:
 * (a) the process running the device is SIGKILLed in the middle of a write
 *     stream, many times; every write the guest saw acknowledged is in the
 *     file afterwards. This proves only that nothing acknowledged was still
 *     held in user space: the page cache survives a process kill, so it
 *     passes with every fdatasync removed. Durability against a power cut is
 *     proven by `power_cut_test.ts`, where the medium's cache is volatile;
 * (b) the order contract, on a recording backend under the real blockif
 *     server code: in write-through the fdatasync covering a write returns
 *     before the write's status is published; in write-back a FLUSH's status
 *     is published only after an fdatasync that started after every write it
 *     covers had completed.
 */

import assert from "node:assert/strict";
import type { BlockBackend } from "../../src/backend/backend.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { NodeFsBackend } from "../../src/backend/node_fs_backend.ts";
import type { EngineContext, RequestEngine } from "../../src/blk/engine.ts";
import { RequestPool } from "../../src/blockif/request_pool.ts";
import { recordSlots } from "../../src/blk/request.ts";
import { fileSpaceUnavailable } from "../../src/backend/file_space.ts";
import { skipWhen } from "../helpers/skip.ts";
import { RangeSegment, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { BlockifServer } from "../../src/blockif/server.ts";
import { createVirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { GuestAllocator } from "../../src/guest/allocator.ts";
import { DirectRegisters, InterruptLine } from "../../src/guest/io.ts";
import { VirtioBlkDriver } from "../../src/guest/virtio_blk_driver.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { QueueWord } from "../../src/virtio/queue_state.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { lostWrites, streamUntilCut } from "../helpers/stream_block.ts";

const IMAGE_BYTES = 1 << 20;
const KILLS_PER_MODE = 5;

for (const mode of ["writethru", "writeback"] as const) {
  Deno.test(`SIGKILL of the device process mid-stream (${mode}): every acknowledged write is in the file (nothing acknowledged was held in user space; the page cache survives, so not a durability proof)`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (let kill = 0; kill < KILLS_PER_MODE; kill++) {
        const image = `${dir}/disk-${kill}.img`;
        await Deno.writeFile(image, new Uint8Array(IMAGE_BYTES));
        const run = await streamUntilCut(image, mode, "honest", 150 + kill * 120, (process) => {
          process.kill("SIGKILL");
        });
        assert.equal(run.status.signal, "SIGKILL", `the child ended on its own: ${run.stderr}`);
        assert.ok(run.acked.size > 0, "the guest acknowledged nothing before the kill");
        assert.deepEqual(lostWrites(await Deno.readFile(image), run.acked), [], `kill ${kill}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

// ---------------------------------------------------------------------------
// (b) The order contract.

interface Event {
  op: "write" | "flush" | "discard" | "write-zeroes";
  /** Used elements published when the call started and when it returned. */
  publishedAtStart: number;
  publishedAtEnd: number;
}

/** A real file backend that records each write and flush against the used ring's progress. */
class RecordingBackend implements BlockBackend {
  readonly events: Event[] = [];
  constructor(readonly inner: BlockBackend, readonly published: () => number) {}
  get size() {
    return this.inner.size;
  }
  get readOnly() {
    return this.inner.readOnly;
  }
  read(offset: number, bytes: Uint8Array, at: number, length: number) {
    this.inner.read(offset, bytes, at, length);
  }
  write(offset: number, bytes: Uint8Array, at: number, length: number) {
    this.#record("write", () => this.inner.write(offset, bytes, at, length));
  }
  flush() {
    this.#record("flush", () => this.inner.flush());
  }
  discard(offset: number, length: number) {
    this.#record("discard", () => this.inner.discard!(offset, length));
  }
  writeZeroes(offset: number, length: number, unmap: boolean) {
    this.#record("write-zeroes", () => this.inner.writeZeroes!(offset, length, unmap));
  }
  close() {
    this.inner.close();
  }
  #record(op: Event["op"], call: () => void) {
    const publishedAtStart = this.published();
    call();
    this.events.push({ op, publishedAtStart, publishedAtEnd: this.published() });
  }
}

/** The blockif server (drain + workers' path), run on this thread at each kick. */
class InThreadBlockif implements RequestEngine {
  readonly #server: BlockifServer;
  constructor(context: EngineContext, backend: BlockBackend) {
    const queues = context.queues.map((state) => new SplitQueue(context.memory, state));
    this.#server = new BlockifServer({
      memory: context.memory,
      queues,
      pool: new RequestPool({ elements: 8, segMax: recordSlots(context.limits) }),
      state: context.state,
      interrupts: context.interrupts,
      backend,
      readOnly: context.readOnly,
      limits: context.limits,
      serial: context.serial,
      dispatch: "device",
      maxChain: context.maxChain,
      pollMaxNs: 0,
    });
  }
  ready() {
    return Promise.resolve();
  }
  notify(index: number) {
    this.#server.drain(index);
    while (this.#server.runOne());
  }
  doorbell(): never {
    throw new Error("not used in-thread");
  }
  quiesce() {}
  attachMemory(): Promise<void> {
    throw new Error("the in-thread blockif serves one guest memory");
  }
  close() {
    return Promise.resolve();
  }
}

async function orderRig(writeback: boolean, discard = false) {
  const dir = await Deno.makeTempDir();
  const image = `${dir}/disk.img`;
  await Deno.writeFile(image, new Uint8Array(IMAGE_BYTES));
  const memory = SharedGuestMemory.allocate(8 << 20);
  let recorder!: RecordingBackend;
  const disk = createVirtioBlkPci(memory, {
    backend: describeFile(image),
    writeback,
    discard: discard ? {} : undefined,
    engine: (context) => {
      const published = () => Atomics.load(context.queues[0].words, QueueWord.NEXT_USED);
      recorder = new RecordingBackend(new NodeFsBackend(describeFile(image)), published);
      return new InThreadBlockif(context, recorder);
    },
  });
  const allocator = new GuestAllocator(0x1000, memory.size);
  const driver = VirtioBlkDriver.init({
    memory,
    registers: new DirectRegisters(disk.pci),
    interrupt: new InterruptLine(disk.transport.buffer),
    allocator,
  });
  return {
    driver,
    /** Sends a one-segment DISCARD or WRITE_ZEROES; its status. */
    ranges(type: number, sector: number, sectors: number): number {
      const table = allocator.alloc(RangeSegment.SIZE, 16);
      const view = new DataView(memory.buffer);
      view.setBigUint64(table + RangeSegment.SECTOR, BigInt(sector), true);
      view.setUint32(table + RangeSegment.NUM_SECTORS, sectors, true);
      view.setUint32(table + RangeSegment.FLAGS, 0, true);
      const buffers = { count: 1, address: [table], length: [RangeSegment.SIZE] };
      return driver.executeSync(type, 0, buffers).status;
    },
    recorder,
    published: () => Atomics.load(disk.device.queueState.words, QueueWord.NEXT_USED),
    async close() {
      recorder.close();
      await disk.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("write-through: the fdatasync covering a write returns before its status is published", async () => {
  const rig = await orderRig(false);
  try {
    for (let i = 0; i < 4; i++) {
      const before = rig.published();
      rig.recorder.events.length = 0;
      rig.driver.writeSync(i * 8, new Uint8Array(4096).fill(i + 1));
      const [write, flush] = rig.recorder.events;
      assert.deepEqual(rig.recorder.events.map((e) => e.op), ["write", "flush"]);
      assert.equal(write.publishedAtEnd, before, "published before the data was written");
      assert.equal(flush.publishedAtEnd, before, "published before fdatasync returned");
      assert.equal(rig.published(), before + 1, "completed once stable");
    }
  } finally {
    await rig.close();
  }
});

Deno.test("write-back: writes complete unsynced; a FLUSH is answered only after an fdatasync that started after them", async () => {
  const rig = await orderRig(true);
  try {
    assert.equal(rig.driver.writeback, true);
    const before = rig.published();
    rig.driver.writeSync(0, new Uint8Array(4096).fill(1));
    rig.driver.writeSync(8, new Uint8Array(4096).fill(2));
    assert.deepEqual(rig.recorder.events.map((e) => e.op), ["write", "write"], "no sync per write");
    rig.driver.flushSync();
    const flush = rig.recorder.events[2];
    assert.equal(flush.op, "flush");
    assert.equal(
      flush.publishedAtStart,
      before + 2,
      "fdatasync started before the covered writes completed",
    );
    assert.equal(flush.publishedAtEnd, before + 2, "FLUSH answered before its fdatasync returned");
    assert.equal(rig.published(), before + 3);
  } finally {
    await rig.close();
  }
});

// Holes are punched through Deno's FFI; on Node the device offers no DISCARD.
const space = skipWhen("DISCARD's durability", fileSpaceUnavailable());

Deno.test(
  "write-through: a DISCARD's and a WRITE_ZEROES's fdatasync returns before the status is published",
  {
    ignore: space.ignore,
  },
  async () => {
    const rig = await orderRig(false, true);
    try {
      for (
        const [type, op] of [[RequestType.DISCARD, "discard"], [
          RequestType.WRITE_ZEROES,
          "write-zeroes",
        ]] as const
      ) {
        const before = rig.published();
        rig.recorder.events.length = 0;
        assert.equal(rig.ranges(type, 8, 16), RequestStatus.OK);
        const [change, flush] = rig.recorder.events;
        assert.deepEqual(rig.recorder.events.map((e) => e.op), [op, "flush"]);
        assert.equal(change.publishedAtEnd, before, "published before the range was changed");
        assert.equal(flush.publishedAtEnd, before, "published before fdatasync returned");
        assert.equal(rig.published(), before + 1, "completed once stable");
      }
    } finally {
      await rig.close();
    }
  },
);

Deno.test("write-back: a DISCARD and a WRITE_ZEROES complete unsynced, as writes do", {
  ignore: space.ignore,
}, async () => {
  const rig = await orderRig(true, true);
  try {
    assert.equal(rig.ranges(RequestType.DISCARD, 0, 8), RequestStatus.OK);
    assert.equal(rig.ranges(RequestType.WRITE_ZEROES, 8, 8), RequestStatus.OK);
    assert.deepEqual(rig.recorder.events.map((e) => e.op), ["discard", "write-zeroes"]);
  } finally {
    await rig.close();
  }
});
