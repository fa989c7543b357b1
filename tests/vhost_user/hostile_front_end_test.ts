/**
 * What a front end may do with the resources it shares with the back end —
 * its guest memory file, its end of the socket — and that must neither
 * kill nor stall the back end. The back end runs as a child process (the
 * CLI): one that dies or blocks fails the test instead of taking the test
 * process with it.
 */

import assert from "node:assert/strict";
import { RequestType } from "../../src/blk/spec.ts";
import { waitReadable } from "../../src/vhost_user/eventfd.ts";
import { Errno, lastErrno, libc, Sys } from "../../src/vhost_user/libc.ts";
import { encodeMessage, HeaderFlag, Request } from "../../src/vhost_user/messages.ts";
import { PollSet } from "../../src/vhost_user/sys_structs.ts";
import { connectedFrontEnd, withChildBackEnd, within } from "./child_back_end.ts";
import { DATA_BUFFER, FakeFrontEnd, QemuFeatures } from "./front_end.ts";

const BOUND_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("vhost-user: a front end that shrinks the guest memory it handed over cannot kill the back end (SIGBUS)", async () => {
  await withChildBackEnd(async (backEnd) => {
    // Guest RAM in a memfd without seals, as a front end that means harm would send it.
    const fe = FakeFrontEnd.connect(backEnd.socket, { sealed: false });
    try {
      await fe.handshake();
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add", acked: false });
      fe.post(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      // A round trip: the back end has handled the region (mapped it, or refused it).
      await within(fe.getU64(Request.GET_FEATURES), BOUND_MS, "the back end answers");
      // Shrink the file under any mapping of it: a page past the end raises SIGBUS when
      // touched (the fake itself must not touch its memory from here on).
      assert.equal(libc().ftruncate(fe.memfd, 0n), 0);
      fe.kickRing();
      await within(fe.getU64(Request.GET_FEATURES), BOUND_MS, "the back end still answers");
      await backEnd.said(/not sealed against shrinking/);
      assert.match(backEnd.stderr(), /memory-backend-memfd/);
    } finally {
      fe.close();
    }
    const next = await connectedFrontEnd(backEnd);
    next.close();
  });
});

Deno.test("vhost-user: a front end that sends requests but never reads the replies is disconnected, and the next one is served", async () => {
  await withChildBackEnd(async (backEnd) => {
    const fe = await connectedFrontEnd(backEnd);
    try {
      // Our own end nonblocking, so that the flood never blocks the test.
      const fd = fe.connection.fd;
      assert.ok(libc().fcntl(fd, Sys.F_SETFL, Sys.O_NONBLOCK) >= 0);
      const one = encodeMessage(Request.GET_FEATURES, HeaderFlag.VERSION);
      const batch = new Uint8Array(one.length * 4096);
      for (let i = 0; i < 4096; i++) batch.set(one, i * one.length);
      const hungUp = new PollSet([fd], [Sys.POLLRDHUP]);
      const closedByPeer = async () => (await waitReadable(hungUp, 0)) === 0;
      // GET_FEATURES always gets a reply (§4.1); none is read. Send until the back end
      // hangs up, or stops taking requests for a second.
      let sent = 0;
      let idle = 0;
      while (sent < 400 * batch.length && idle < 200 && !(await closedByPeer())) {
        const at = sent % batch.length;
        const result = Number(libc().write(fd, batch.subarray(at), BigInt(batch.length - at)));
        if (result > 0) {
          sent += result;
          idle = 0;
          continue;
        }
        // EPIPE or ECONNRESET: the back end hung up in the middle of a write.
        if (lastErrno() !== Errno.EAGAIN) break;
        idle++;
        await sleep(5);
      }
      await within(
        waitReadable(hungUp).then((index) => assert.equal(index, 0)),
        BOUND_MS,
        "the back end hangs up on a front end that does not read",
      );
      await backEnd.said(/does not read/);
    } finally {
      fe.close();
    }
    const next = await within(connectedFrontEnd(backEnd), BOUND_MS, "the next connection served");
    next.close();
  });
});
