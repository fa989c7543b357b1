/**
 * A medium that hangs (nbdkit's pause filter behind a FUSE file) under the
 * CLI back end in a child process: a ring stop waits for it for as long as
 * it hangs and then loses no request, and meanwhile the back end's event
 * loop goes on (SIGTERM ends it).
 *
 * The first two hold the medium hung for {@linkcode HANG_MS}, longer than the
 * 5 s a ring stop used to give requests in flight before it dropped those
 * not started and blocked the main thread on the rest.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import { RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { closeFd } from "../../src/vhost_user/libc.ts";
import { createMemoryFile } from "../../src/vhost_user/mapping.ts";
import { serveVhostUserBlk } from "../../src/vhost_user/server.ts";
import { waitReadable } from "../../src/vhost_user/eventfd.ts";
import {
  decodeVringState,
  encodeSingleRegion,
  encodeVringState,
  Request,
} from "../../src/vhost_user/messages.ts";
import { PollSet } from "../../src/vhost_user/sys_structs.ts";
import { pattern } from "../helpers/harness.ts";
import { NBD_MEDIUM_TOOLS, NbdMedium } from "../helpers/nbd_medium.ts";
import { holdings } from "./back_end_health.ts";
import { needsTools } from "../helpers/skip.ts";
import {
  type ChildBackEnd,
  connectedFrontEnd,
  until,
  withChildBackEnd,
  within,
} from "./child_back_end.ts";
import { DATA_BUFFER, FakeFrontEnd, QemuFeatures } from "./front_end.ts";

const skip = needsTools(...NBD_MEDIUM_TOOLS);

const MEDIUM_BYTES = 1 << 20;
const HANG_MS = 6000;
const BOUND_MS = 30_000;
const REQUESTS = 8;
const LENGTH = 4096;

/** A request on the fake's ring: its head and where its status byte is. */
type Posted = { head: number; status: number };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `body` with a front end whose ring holds {@linkcode REQUESTS} writes
 * that the back end (one worker) has all taken off the ring while the
 * medium hangs: one runs (stuck in the medium), the others wait their turn.
 */
async function withStuckWrites(
  body: (
    fe: FakeFrontEnd,
    medium: NbdMedium,
    backEnd: ChildBackEnd,
    posted: Posted[],
  ) => Promise<void>,
): Promise<void> {
  const medium = await NbdMedium.start({ plugin: { memory: MEDIUM_BYTES }, pausable: true });
  try {
    await withChildBackEnd(async (backEnd) => {
      const fe = await connectedFrontEnd(backEnd);
      try {
        await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
        await medium.pause();
        const posted: Posted[] = [];
        for (let i = 0; i < REQUESTS; i++) {
          const gpa = DATA_BUFFER + i * LENGTH;
          fe.bytes.set(pattern(LENGTH, i + 1), gpa);
          posted.push(
            fe.post(RequestType.OUT, (i * LENGTH) / 512, { gpa, length: LENGTH }, 0, {
              publish: false,
            }),
          );
        }
        // All at once: a worker still awake from the ring's start would
        // otherwise take the first few, start one, and hang in the medium
        // before the rest were posted (with one worker, nothing takes them).
        fe.publishAvail();
        fe.kickRing();
        await until(
          () => fe.takenByDevice() === REQUESTS,
          BOUND_MS,
          "the device takes every request off the ring",
        );
        await body(fe, medium, backEnd, posted);
      } finally {
        fe.close();
        // A process with a thread in a paused FUSE request cannot even die: resume first.
        await medium.resume();
      }
    }, { image: medium.path, deviceOptions: "workers=1" });
  } finally {
    await medium.close();
  }
}

Deno.test({
  name:
    "vhost-user: a ring stop waits for a hung medium as long as it hangs, then reports a base that loses no request",
  ignore: skip.ignore,
  fn: () =>
    withStuckWrites(async (fe, medium, _backEnd, posted) => {
      fe.send(Request.SET_VRING_ENABLE, encodeVringState(0, 0));
      fe.send(Request.GET_VRING_BASE, encodeVringState(0, 0));
      await sleep(HANG_MS);
      assert.equal(
        await waitReadable(new PollSet([fe.connection.fd]), 0),
        -1,
        "no answer while requests the ring took are stuck on the medium",
      );
      await medium.resume();
      const reply = await within(fe.reply(Request.GET_VRING_BASE), BOUND_MS, "the stop answered");
      assert.equal(decodeVringState(reply.payload)?.num, REQUESTS, "every request was taken");
      const used = fe.takeUsed();
      assert.equal(used.length, REQUESTS, "every request taken was completed");
      for (const { head, status } of posted) {
        assert.ok(used.some(({ id }) => id === head), `request ${head} completed`);
        assert.equal(fe.bytes[status], RequestStatus.OK);
      }
      const disk = await Deno.readFile(medium.path);
      for (let i = 0; i < REQUESTS; i++) {
        assert.deepEqual(disk.subarray(i * LENGTH, (i + 1) * LENGTH), pattern(LENGTH, i + 1));
      }
    }),
});

Deno.test({
  name:
    "vhost-user: SIGTERM stops a back end whose ring stop waits for a hung medium: socket removed, exit once the medium lets its thread go",
  ignore: skip.ignore,
  fn: () =>
    withStuckWrites(async (fe, medium, backEnd, _posted) => {
      fe.send(Request.SET_VRING_ENABLE, encodeVringState(0, 0));
      fe.send(Request.GET_VRING_BASE, encodeVringState(0, 0));
      await sleep(HANG_MS);
      backEnd.child.kill("SIGTERM");
      await until(
        () => backEnd.stderr().includes("server stopped"),
        BOUND_MS,
        "the back end stops serving on SIGTERM",
      ).catch((error) => {
        throw new Error(`${error.message}; it said: ${backEnd.stderr()}`);
      });
      assert.equal(await Deno.lstat(backEnd.socket).then(() => true, () => false), false);
      assert.match(backEnd.stderr(), /waits for \d+ request\(s\) on the medium/);
      assert.match(backEnd.stderr(), /still running on the medium/);
      // A thread inside a hung FUSE request cannot be killed, not even by exit: the
      // process ends once the medium answers.
      await medium.resume();
      const status = await within(backEnd.child.status, BOUND_MS, "the back end exits");
      assert.equal(status.code, 143, "a run ended by SIGTERM exits 128 + 15");
    }),
});

Deno.test({
  name:
    "vhost-user: a front end that leaves while its requests hang in the medium does not hold up the next one, and its guest memory stays mapped until they finish",
  ignore: skip.ignore,
  fn: () =>
    withStuckWrites(async (fe, medium, backEnd, _posted) => {
      const pid = backEnd.child.pid;
      fe.connection.close();
      await backEnd.said(/still running on the medium/, BOUND_MS);
      // The next front end is served while the medium still hangs.
      const next = await within(connectedFrontEnd(backEnd), BOUND_MS, "the next front end served");
      try {
        // Past the blockif threads' 5 s close grace: a thread held in the medium is not
        // stopped by its end, and its read would land in whatever is mapped there then.
        await sleep(HANG_MS);
        assert.equal(
          holdings(pid).memfdMappings,
          1,
          "the first front end's guest memory is still mapped: its requests may yet write to it",
        );
        await medium.resume();
        await until(
          () => holdings(pid).memfdMappings === 0,
          BOUND_MS,
          "its guest memory unmapped once they finished",
        );
      } finally {
        next.close();
      }
    }),
});

Deno.test({
  name:
    "vhost-user (worker engine): a memory table change while requests are in flight (the medium paused) loses none of them",
  ignore: skip.ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "vhost-hotplug-" });
    const medium = await NbdMedium.start({ plugin: { memory: MEDIUM_BYTES }, pausable: true });
    // In process: the back end waits without blocking the event loop this test runs on.
    const server = serveVhostUserBlk({
      socketPath: `${dir}/blk.sock`,
      device: { backend: describeFile(medium.path), engine: workerEngine({ workers: 1 }) },
      log: () => {},
    });
    const fe = FakeFrontEnd.connect(server.socketPath, { memoryBytes: 8 << 20 });
    const extra = createMemoryFile("hotplugged-guest-ram", 1 << 20);
    try {
      await fe.handshake();
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
      await medium.pause();
      for (let i = 0; i < REQUESTS; i++) {
        fe.post(RequestType.OUT, (i * LENGTH) / 512, { gpa: DATA_BUFFER, length: LENGTH }, 0, {
          publish: false,
        });
      }
      // All at once, as in withStuckWrites: one worker that took a few would hang on them.
      fe.publishAvail();
      fe.kickRing();
      await until(
        () => fe.takenByDevice() === REQUESTS,
        BOUND_MS,
        "the device takes every request off the ring",
      );
      assert.equal(server.session!.device.queue(0).inFlight, REQUESTS, "all in flight, stuck");
      // Memory hot-plug (or any change of QEMU's RAM layout) while they are stuck.
      const region = {
        gpa: 16n << 20n,
        size: 1n << 20n,
        userAddress: fe.userBase + (16n << 20n),
        mmapOffset: 0n,
      };
      const ack = fe.acked(Request.ADD_MEM_REG, encodeSingleRegion(region), [extra]);
      await medium.resume();
      assert.equal(await within(ack, BOUND_MS, "ADD_MEM_REG acked"), 0n);
      assert.equal(await fe.stopRing(), REQUESTS, "every request was taken off the ring");
      assert.equal(fe.takeUsed().length, REQUESTS, "every request taken was completed");
    } finally {
      closeFd(extra);
      fe.close();
      await server.close();
      await medium.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
