/**
 * The notifier fds a front-end hands over (SET_VRING_CALL / SET_VRING_ERR /
 * SET_VRING_KICK) are the front-end's files: it shares them with the back
 * end and can change their flags and counters at any time. Whatever it
 * does, signalling or reading them must never stall the back end. The back
 * end runs as a child process (the CLI), so that a back end that does stall
 * fails the test instead of hanging it.
 */

import assert from "node:assert/strict";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { createEventFd, drainEventFd, signalEventFd } from "../../src/vhost_user/eventfd.ts";
import { closeFd, libc, Sys } from "../../src/vhost_user/libc.ts";
import { encodeU64, Request } from "../../src/vhost_user/messages.ts";
import { RingFeature } from "../../src/virtio/spec.ts";
import { connectedFrontEnd, withChildBackEnd, within } from "./child_back_end.ts";
import { DATA_BUFFER, type FakeFrontEnd, QemuFeatures } from "./front_end.ts";

/** How long a back end that works gets for anything here; a stalled one never answers. */
const BOUND_MS = 10_000;

/** The largest count an eventfd holds before a write waits (eventfd(2)). */
const FULL_COUNT = 0xffff_ffff_ffff_fffen;

/** A blocking eventfd (no O_NONBLOCK) at its largest count: one more write(2) waits. */
function saturatedBlockingEventFd(): number {
  const fd = createEventFd();
  const largest = new Uint8Array(8);
  new DataView(largest.buffer).setBigUint64(0, FULL_COUNT, true);
  assert.ok(signalEventFd(fd, largest));
  return fd;
}

function flagsOf(fd: number): number {
  const flags = libc().fcntl(fd, Sys.F_GETFL, 0);
  assert.ok(flags >= 0);
  return flags;
}

function clearNonBlocking(fd: number): void {
  assert.ok(libc().fcntl(fd, Sys.F_SETFL, flagsOf(fd) & ~Sys.O_NONBLOCK) >= 0);
}

/** Reads (and resets) an eventfd's counter, exactly (a Number would round it). */
function counterOf(fd: number): bigint {
  const bytes = new Uint8Array(8);
  assert.equal(Number(libc().read(fd, bytes, 8n)), 8);
  return new DataView(bytes.buffer).getBigUint64(0, true);
}

/** A round trip: every message sent before it has been handled by the back end. */
async function roundTrip(fe: FakeFrontEnd): Promise<void> {
  await within(fe.getU64(Request.GET_FEATURES), BOUND_MS, "GET_FEATURES answered");
}

/** Waits until `count` used elements were published; returns them. */
async function usedElements(fe: FakeFrontEnd, count: number): Promise<{ id: number }[]> {
  const used: { id: number }[] = [];
  const collect = async () => {
    while (used.length < count) {
      used.push(...fe.takeUsed());
      if (used.length < count) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await within(collect(), BOUND_MS, `${count} request(s) completed`);
  return used;
}

Deno.test("vhost-user: a call fd the front end makes unwritable (blocking again, counter full) does not stall the back end", async () => {
  const saturated = saturatedBlockingEventFd();
  try {
    await withChildBackEnd(async (backEnd) => {
      const fe = await connectedFrontEnd(backEnd);
      try {
        // Without EVENT_IDX every completion interrupts.
        const features = QemuFeatures.LINUX_MODERN & ~(1n << BigInt(RingFeature.EVENT_IDX));
        await fe.startRing({ features, memory: "add" });
        fe.send(Request.SET_VRING_CALL, encodeU64(0n), { fds: [saturated] });
        await roundTrip(fe);
        // The back end has the file now; the front end makes it blocking again (a back end
        // that set O_NONBLOCK on receipt is undone by this).
        clearNonBlocking(saturated);
        const { head, status } = fe.post(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
        fe.kickRing();
        const used = await usedElements(fe, 1);
        assert.equal(used[0].id, head);
        assert.equal(fe.bytes[status], RequestStatus.OK, "the request completed");
        // QEMU's ring stop waits for every request: no thread may be stuck in that signal.
        assert.equal(await within(fe.stopRing(), BOUND_MS, "GET_VRING_BASE answered"), 1);
        assert.equal(flagsOf(saturated) & Sys.O_NONBLOCK, 0, "the front end's flags are its own");
        await roundTrip(fe);
      } finally {
        fe.close();
      }
    });
  } finally {
    closeFd(saturated);
  }
});

Deno.test("vhost-user: an err fd the front end makes unwritable does not stall the main thread", async () => {
  const saturated = saturatedBlockingEventFd();
  try {
    await withChildBackEnd(async (backEnd) => {
      const fe = await connectedFrontEnd(backEnd);
      try {
        fe.send(Request.SET_VRING_ERR, encodeU64(0n), { fds: [saturated] });
        await roundTrip(fe);
        clearNonBlocking(saturated);
        // A descriptor table outside guest memory: the main thread signals "needs reset".
        await fe.startRing({
          features: QemuFeatures.LINUX_MODERN,
          memory: "add",
          desc: fe.memoryBytes - 16,
        });
        await roundTrip(fe);
        // The signal was delivered all the same (the counter is at its very top now), not dropped.
        assert.equal(counterOf(saturated), FULL_COUNT + 1n);
      } finally {
        fe.close();
      }
    });
  } finally {
    closeFd(saturated);
  }
});

Deno.test("vhost-user: a blocking kick fd whose counter the front end empties itself never stalls the device model", async () => {
  await withChildBackEnd(async (backEnd) => {
    const fe = await connectedFrontEnd(backEnd);
    try {
      await fe.startRing({
        features: QemuFeatures.LINUX_MODERN,
        memory: "add",
        blockingKick: true,
      });
      await roundTrip(fe);
      // Blocking, whatever the back end did to the shared file on receipt.
      clearNonBlocking(fe.kick);
      // A counter emptied by someone else: the front end kicks and reads its own kick
      // back at once, racing the back end's poll and read, many times over. A back end
      // that reads after the front end emptied the counter waits in read(2).
      for (let round = 0; round < 2000; round++) {
        signalEventFd(fe.kick);
        drainEventFd(fe.kick);
      }
      await roundTrip(fe);
      // A real kick is still served.
      const { head, status } = fe.post(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      fe.kickRing();
      const used = await usedElements(fe, 1);
      assert.equal(used[0].id, head);
      assert.equal(fe.bytes[status], RequestStatus.OK, "the request completed");
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: reading an empty blocking eventfd returns 0 instead of waiting for a kick", async () => {
  const fd = createEventFd();
  const worker = new Worker(new URL("./drain_worker.ts", import.meta.url), { type: "module" });
  try {
    const answer = new Promise<number>((resolve) => {
      worker.onmessage = (event: MessageEvent<number>) => resolve(event.data);
    });
    worker.postMessage(fd);
    let count: number;
    try {
      count = await within(answer, BOUND_MS, "drainEventFd returned");
    } catch (error) {
      // It waits in read(2): let it go, so the test process can end, and fail.
      signalEventFd(fd);
      await answer;
      throw error;
    }
    assert.equal(count, 0);
  } finally {
    worker.terminate();
    closeFd(fd);
  }
});
