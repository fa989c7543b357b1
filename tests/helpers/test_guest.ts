/**
 * A guest program for tests, run in the vCPU Worker of a `VirtualMachine`:
 * boots like the built-in guest (PCI scan, driver binding) and runs the job
 * the test asks for, then posts the result.
 */

import { bootGuest, type GuestMachine, prepareVcpu } from "../../src/guest/boot.ts";
import { configRead, configWrite } from "../../src/guest/pci_scan.ts";
import { RequestType } from "../../src/blk/spec.ts";
import type { VcpuInit, VcpuMessage } from "../../src/dm/vm.ts";
import { parentChannel } from "../../src/runtime/thread.ts";
import { STREAM_BLOCK, streamBlock } from "./stream_block.ts";
import { fillByte } from "./fill_pattern.ts";
import type { IoSize } from "../../src/dm/io_mailbox.ts";
import { PoolWord } from "../../src/blockif/pool_layout.ts";
import { ResetGate } from "./reset_gate.ts";

export type TestJob =
  | { kind: "disks" }
  | { kind: "roundtrip"; disk: number; sector: number; bytes: number[] }
  | { kind: "accesses"; accesses: Access[] }
  | {
    kind: "stress";
    disk: number;
    requests: number;
    depth: number;
    maxSectors: number;
    seed: number;
  }
  | { kind: "write-stream"; disk: number; depth: number; flush: boolean }
  | { kind: "info" }
  | { kind: "write-all"; disk: number; chunk: number; seed: number }
  | { kind: "read-all"; disk: number; chunk: number }
  | {
    kind: "reset-in-flight";
    disk: number;
    requests: number;
    bytes: number;
    /** Requests the workers hold in the medium before the reset (one per worker). */
    inFlight: number;
    /** The disk's request pool (src/blockif/pool_layout.ts), to see what is in flight. */
    pool: SharedArrayBuffer;
    /** The gate shared with the thread that releases the medium (medium_gate_worker.ts). */
    gate: SharedArrayBuffer;
  };

export type Access =
  | { op: "config-read"; slot: number; func: number; offset: number; size: IoSize }
  | { op: "config-write"; slot: number; func: number; offset: number; size: IoSize; value: number }
  | { op: "port-read"; port: number; size: IoSize }
  | { op: "port-write"; port: number; size: IoSize; value: number };

const parent = await parentChannel();
parent.onMessage(async (message) => {
  const { init, job } = message as { init: VcpuInit; job: TestJob };
  const post = (reply: VcpuMessage) => parent.postMessage(reply);
  try {
    await prepareVcpu(init);
    post({ type: "done", result: run(init, job) });
  } catch (error) {
    post({
      type: "error",
      message: error instanceof Error ? `${error.message}\n${error.stack}` : String(error),
    });
  }
});

function run(init: VcpuInit, job: TestJob): unknown {
  if (job.kind === "accesses") return accesses(init, job.accesses);
  const guest = bootGuest(init, { indirect: true });
  switch (job.kind) {
    case "disks":
      return guest.disks.map((d) => ({
        name: d.name,
        slot: d.pci.slot,
        func: d.pci.func,
        capacity: d.driver.info.capacity,
        readOnly: d.driver.info.readOnly,
        serial: d.driver.getIdSync(),
      }));
    case "roundtrip": {
      const driver = guest.disks[job.disk].driver;
      driver.writeSync(job.sector, new Uint8Array(job.bytes));
      return [...driver.readSync(job.sector, job.bytes.length)];
    }
    case "stress":
      return stress(guest, job);
    case "info":
      return guest.disks.map((d) => ({ name: d.name, ...d.driver.info }));
    case "write-all":
      return writeAll(guest, job);
    case "read-all":
      return readAll(guest, job);
    case "reset-in-flight":
      return resetInFlight(guest, job);
    case "write-stream":
      return writeStream(
        guest,
        job,
        (text) => parent.postMessage({ type: "stdout", text } satisfies VcpuMessage),
      );
  }
}

function accesses(init: VcpuInit, list: Access[]): number[] {
  // Only the mailbox: no driver, so the test sees raw register behaviour.
  const guest = { io: bootGuestIo(init) };
  return list.map((a) => {
    switch (a.op) {
      case "config-read":
        return configRead(guest.io, a.slot, a.func, a.offset, a.size);
      case "config-write":
        configWrite(guest.io, a.slot, a.func, a.offset, a.size, a.value);
        return 0;
      case "port-read":
        return guest.io.read(a.port, a.size);
      case "port-write":
        guest.io.write(a.port, a.size, a.value);
        return 0;
    }
  });
}

import { PortIo } from "../../src/dm/io_mailbox.ts";
function bootGuestIo(init: VcpuInit): PortIo {
  return new PortIo(init.mailbox, init.vcpu, init.ioEvents);
}

/**
 * Keeps `depth` random reads and writes in flight. The device runs
 * conflicting requests in submission order, so a read must return exactly
 * what the model holds when the read is submitted (every earlier write
 * applied, no later one).
 */
function stress(guest: GuestMachine, job: Extract<TestJob, { kind: "stress" }>) {
  const { driver } = guest.disks[job.disk];
  const sectors = driver.info.capacity;
  const model = new Uint8Array(sectors * 512);
  const bytes = new Uint8Array(guest.memory.buffer);
  const maxBytes = job.maxSectors * 512;
  const slotBuffer: number[] = [];
  const free: number[] = [];
  for (let i = 0; i < job.depth; i++) {
    slotBuffer.push(guest.allocator.alloc(maxBytes, 512));
    free.push(i);
  }
  const slotOf = new Int32Array(driver.queueSize).fill(-1);
  const expected: (Uint8Array | undefined)[] = new Array(job.depth);
  const length = new Int32Array(job.depth);
  const order = new Int32Array(job.depth);
  let seed = job.seed >>> 0 || 1;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x1_0000_0000;
  };
  let submitted = 0,
    completed = 0,
    mismatches = 0,
    outOfOrder = 0,
    failures = 0,
    reads = 0,
    writes = 0;
  let lastCompletedOrder = -1;
  const onComplete = (token: number, status: number) => {
    const slot = slotOf[token];
    slotOf[token] = -1;
    if (status !== 0) failures++;
    const want = expected[slot];
    if (want) {
      const at = slotBuffer[slot];
      for (let i = 0; i < length[slot]; i++) {
        if (bytes[at + i] !== want[i]) {
          mismatches++;
          break;
        }
      }
    }
    if (order[slot] < lastCompletedOrder) outOfOrder++;
    lastCompletedOrder = Math.max(lastCompletedOrder, order[slot]);
    expected[slot] = undefined;
    free.push(slot);
    completed++;
  };
  while (completed < job.requests) {
    while (submitted < job.requests && free.length > 0 && driver.hasRoom(1)) {
      const slot = free.pop()!;
      const count = 1 + Math.floor(random() * job.maxSectors);
      const sector = Math.floor(random() * (sectors - count + 1));
      const isWrite = random() < 0.5;
      const at = slotBuffer[slot];
      const len = count * 512;
      length[slot] = len;
      order[slot] = submitted;
      if (isWrite) {
        for (let i = 0; i < len; i++) bytes[at + i] = (submitted * 31 + i * 7) & 0xff;
        model.set(bytes.subarray(at, at + len), sector * 512);
        writes++;
      } else {
        bytes.fill(0xee, at, at + len);
        expected[slot] = model.slice(sector * 512, sector * 512 + len);
        reads++;
      }
      const token = driver.submit(isWrite ? RequestType.OUT : RequestType.IN, sector, {
        count: 1,
        address: [at],
        length: [len],
      });
      slotOf[token] = slot;
      submitted++;
    }
    driver.kick();
    if (driver.reap(onComplete) === 0) {
      if (!driver.waitSync(10_000)) {
        throw new Error(`stalled at ${completed}/${job.requests} completed`);
      }
    }
  }
  return { completed, mismatches, outOfOrder, failures, reads, writes };
}

/**
 * Writes every block of the disk, round after round, `depth` at a time, and
 * reports each write the device acknowledged ("ack <index> <round>"): at its
 * completion, or (with `flush`) once a FLUSH submitted after its completion
 * has completed. Runs until the process is killed.
 */
function writeStream(
  guest: GuestMachine,
  job: Extract<TestJob, { kind: "write-stream" }>,
  report: (text: string) => void,
): never {
  const { driver } = guest.disks[job.disk];
  const blocks = Math.floor((driver.info.capacity * 512) / STREAM_BLOCK);
  const bytes = new Uint8Array(guest.memory.buffer);
  const buffers = Array.from(
    { length: job.depth },
    () => guest.allocator.alloc(STREAM_BLOCK, 4096),
  );
  const free = buffers.map((_, i) => i);
  const written: string[] = [];
  let next = 0;
  for (;;) {
    while (free.length > 0 && driver.hasRoom(1)) {
      const slot = free.pop()!;
      const index = next % blocks;
      const round = Math.floor(next / blocks);
      next++;
      bytes.set(streamBlock(index, round), buffers[slot]);
      driver.submit(RequestType.OUT, (index * STREAM_BLOCK) / 512, {
        count: 1,
        address: [buffers[slot]],
        length: [STREAM_BLOCK],
      }, (_, status) => {
        free.push(slot);
        if (status !== 0) throw new Error(`write of block ${index} failed: status ${status}`);
        if (job.flush) written.push(`ack ${index} ${round}`);
        else report(`ack ${index} ${round}`);
      });
    }
    driver.kick();
    if (driver.reap() === 0) driver.waitSync(10_000);
    if (job.flush && written.length >= job.depth) {
      const covered = written.splice(0);
      driver.flushSync();
      report(covered.join("\n"));
    }
  }
}

/** Writes the whole disk in `chunk`-byte requests; returns how many succeeded and failed. */
function writeAll(guest: GuestMachine, job: Extract<TestJob, { kind: "write-all" }>) {
  const { driver } = guest.disks[job.disk];
  const size = driver.info.capacity * 512;
  const data = new Uint8Array(job.chunk);
  let ok = 0, failed = 0;
  for (let offset = 0; offset < size; offset += job.chunk) {
    for (let i = 0; i < job.chunk; i++) data[i] = fillByte(offset + i, job.seed);
    try {
      driver.writeSync(offset / 512, data);
      ok++;
    } catch {
      failed++;
    }
  }
  try {
    driver.flushSync();
  } catch {
    failed++;
  }
  return { ok, failed };
}

/** Reads the whole disk in `chunk`-byte requests. */
function readAll(guest: GuestMachine, job: Extract<TestJob, { kind: "read-all" }>): Uint8Array {
  const { driver } = guest.disks[job.disk];
  const size = driver.info.capacity * 512;
  const all = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += job.chunk) {
    all.set(driver.readSync(offset / 512, Math.min(job.chunk, size - offset)), offset);
  }
  return all;
}

/**
 * Submits `requests` reads of a medium that holds them (paused, see
 * nbd_medium.ts), waits until the workers have taken `inFlight` of them
 * (they are then blocked in the medium), and resets the device (STATUS = 0,
 * served synchronously by the device model). The reset must wait for the
 * reads in flight and drop the others; once it has returned, guest memory
 * must not change any more (bug class 15). After the reset returns, the
 * guest tells the gate thread, which then releases the medium if it has not
 * yet, and waits until no worker runs a request before it looks again.
 */
function resetInFlight(guest: GuestMachine, job: Extract<TestJob, { kind: "reset-in-flight" }>) {
  const { driver } = guest.disks[job.disk];
  const bytes = new Uint8Array(guest.memory.buffer);
  const pool = new Int32Array(job.pool);
  const gate = new Int32Array(job.gate);
  const FILL = 0xab;
  const buffers: number[] = [];
  for (let i = 0; i < job.requests; i++) {
    const at = guest.allocator.alloc(job.bytes, 4096);
    buffers.push(at);
    bytes.fill(FILL, at, at + job.bytes);
    // 1 MiB apart: no read is served from what the page cache read ahead for another.
    driver.submit(RequestType.IN, i * 2048, { count: 1, address: [at], length: [job.bytes] });
  }
  driver.kick();
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const until = (done: () => boolean, what: string) => {
    // A bound against a hang, not a measurement: the medium holds nothing for this long.
    for (let waited = 0; !done(); waited++) {
      if (waited === 60_000) throw new Error(`gave up waiting until ${what}`);
      Atomics.wait(tick, 0, 0, 1);
    }
  };
  until(() => Atomics.load(pool, PoolWord.BUSY_COUNT) === job.inFlight, "the workers hold reads");
  const inFlightAtReset = Atomics.load(pool, PoolWord.BUSY_COUNT);
  Atomics.store(gate, ResetGate.RESETTING, 1);
  Atomics.notify(gate, ResetGate.RESETTING);
  driver.resetDevice();
  const afterReset = buffers.map((at) => bytes.slice(at, at + job.bytes));
  Atomics.store(gate, ResetGate.RESET_RETURNED, 1);
  Atomics.notify(gate, ResetGate.RESET_RETURNED);
  until(() => Atomics.load(pool, PoolWord.BUSY_COUNT) === 0, "no worker runs a request");
  const state = (b: Uint8Array) =>
    b.every((x) => x === FILL) ? "untouched" : b.every((x) => x === 0) ? "read" : "other";
  return {
    inFlightAtReset,
    /** Buffers by what they held when the reset returned. */
    atReset: afterReset.map(state),
    changedAfterReset:
      buffers.filter((at, i) =>
        !bytes.subarray(at, at + job.bytes).every((x, j) => x === afterReset[i][j])
      ).length,
  };
}
