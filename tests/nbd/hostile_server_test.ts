/**
 * A server that breaks the protocol in the transmission phase is never
 * believed: each violation is refused with a line naming what was wrong,
 * the connection is dropped, and every request in flight on it fails with
 * ECONNRESET: none hangs, none completes with data that was not checked,
 * and memory outside what the server may describe stays untouched. Errors
 * the protocol allows (error chunks, with or without DONE) fail only their
 * request, and the connection keeps serving.
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/io/errno.ts";
import { NbdClient } from "../../src/nbd/client.ts";
import { ESHUTDOWN, NbdRequestError } from "../../src/nbd/errors.ts";
import { MAX_FRAGMENTS } from "../../src/nbd/coverage.ts";
import { ChunkType, Command, EXTENDED_REPLY_MAGIC, ReplyFlag } from "../../src/nbd/protocol.ts";
import { FakeServer, type FakeSession, type ReceivedRequest } from "./fake_server.ts";
import { pattern } from "./pattern.ts";

const KiB = 1024;

/** A cookie no request has (the client's cookies are slot, use ≥ 1). */
const STRANGER = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 9]);

interface Violation {
  readonly name: string;
  /** How the server answers the first of two 4 KiB reads (at 0 and 4096). */
  readonly reply: (session: FakeSession, first: ReceivedRequest) => void;
  /** The line that names it (in the log and the requests' errors). */
  readonly problem: RegExp;
  readonly structured?: boolean;
  /** The violation comes after a correct, complete reply to the first read. */
  readonly firstAnswered?: boolean;
}

const VIOLATIONS: Violation[] = [
  {
    name: "a reply for a cookie that is not in flight",
    reply: (s) => s.simpleReply(STRANGER, 0),
    problem: /a simple reply for cookie 0xdeadbeef00000009, which is not in flight/,
    structured: false,
  },
  {
    name: "a chunk for a cookie that is not in flight",
    reply: (s) => s.none(STRANGER),
    problem: /NBD_REPLY_TYPE_NONE chunk for cookie 0xdeadbeef00000009, which is not in flight/,
  },
  {
    name: "a second reply to a request already answered",
    reply: (s, first) => {
      s.offsetData(first.cookie, 0, pattern(0, 4 * KiB, 1), true);
      s.none(first.cookie);
    },
    problem: /NBD_REPLY_TYPE_NONE chunk for cookie 0x[0-9a-f]{16}, which is not in flight/,
    firstAnswered: true,
  },
  {
    name: "a wrong reply magic",
    reply: (s, first) => s.simpleReply(first.cookie, 0, undefined, 0x12345678),
    problem: /reply magic 0x12345678 \(expected 0x67446698 or 0x668e33ef\)/,
  },
  {
    name: "an extended reply header that was never negotiated",
    reply: (s, first) => s.simpleReply(first.cookie, 0, undefined, EXTENDED_REPLY_MAGIC),
    problem: /an extended reply header \(never negotiated\)/,
  },
  {
    name: "a structured chunk when structured replies were not agreed",
    reply: (s, first) => s.none(first.cookie),
    problem: /structured reply chunk, but structured replies were not agreed/,
    structured: false,
  },
  {
    name: "a simple reply to a read when structured replies were agreed",
    reply: (s, first) => s.simpleReply(first.cookie, 0, pattern(0, 4 * KiB, 1)),
    problem: /simple reply to NBD_CMD_READ of 4096 bytes at 0, but structured replies were agreed/,
  },
  {
    name: "a data chunk longer than the read (an oversized chunk)",
    reply: (s, first) =>
      s.chunk(first.cookie, ChunkType.OFFSET_DATA, ReplyFlag.DONE, new Uint8Array(8), 8 + 8 * KiB),
    problem: /OFFSET_DATA chunk of 8200 bytes \(more data than the request asked for\)/,
  },
  {
    name: "an error chunk of 1 GiB (refused before a byte of it is read)",
    reply: (s, first) =>
      s.chunk(first.cookie, ChunkType.ERROR, ReplyFlag.DONE, new Uint8Array(0), 1 << 30),
    problem: /NBD_REPLY_TYPE_ERROR chunk of 1073741824 bytes \(more than the 4160 accepted\)/,
  },
  {
    name: "a NONE chunk with a payload",
    reply: (s, first) => s.chunk(first.cookie, ChunkType.NONE, ReplyFlag.DONE, new Uint8Array(4)),
    problem: /NBD_REPLY_TYPE_NONE chunk of 4 bytes \(it MUST be empty\)/,
  },
  {
    name: "a NONE chunk without DONE",
    reply: (s, first) => s.chunk(first.cookie, ChunkType.NONE, 0, new Uint8Array(0)),
    problem: /NBD_REPLY_TYPE_NONE chunk of 0 bytes without NBD_REPLY_FLAG_DONE/,
  },
  {
    name: "a hole chunk of the wrong length",
    reply: (s, first) =>
      s.chunk(first.cookie, ChunkType.OFFSET_HOLE, ReplyFlag.DONE, new Uint8Array(13)),
    problem: /NBD_REPLY_TYPE_OFFSET_HOLE chunk of 13 bytes \(it MUST be 12\)/,
  },
  {
    name: "a data chunk outside the request",
    reply: (s, first) => s.offsetData(first.cookie, 4 * KiB, pattern(4 * KiB, 4 * KiB, 1), true),
    problem: /OFFSET_DATA chunk for bytes 4096\.\.8192, outside NBD_CMD_READ of 4096 bytes at 0/,
  },
  {
    name: "a hole chunk reaching past the request",
    reply: (s, first) => s.hole(first.cookie, 2 * KiB, 4 * KiB, true),
    problem: /OFFSET_HOLE chunk for bytes 2048\.\.6144, outside NBD_CMD_READ of 4096 bytes at 0/,
  },
  {
    name: "a data chunk at an offset of 2^63",
    reply: (s, first) => s.offsetData(first.cookie, 2 ** 63, new Uint8Array(512), true),
    problem: /OFFSET_DATA chunk for bytes ≥ 2\^53\.\., outside NBD_CMD_READ/,
  },
  {
    name: "an empty hole",
    reply: (s, first) => s.hole(first.cookie, 0, 0, true),
    problem: /an empty NBD_REPLY_TYPE_OFFSET_HOLE chunk/,
  },
  {
    name: "overlapping chunks",
    reply: (s, first) => {
      s.offsetData(first.cookie, 0, pattern(0, 2 * KiB, 1), false);
      s.hole(first.cookie, KiB, 3 * KiB, true);
    },
    problem: /OFFSET_HOLE chunk for bytes 1024\.\.4096 that overlap an earlier chunk/,
  },
  {
    name: "success claimed after half the data (stale memory passed off as data)",
    reply: (s, first) => {
      s.offsetData(first.cookie, 0, pattern(0, 2 * KiB, 1), false);
      s.none(first.cookie);
    },
    problem: /ended its reply to NBD_CMD_READ of 4096 bytes at 0 after 2048 bytes/,
  },
  {
    name: "a reply split into more separate chunks than accepted",
    reply: (s, first) => {
      // Every other byte, backwards: no two chunks join.
      for (let i = MAX_FRAGMENTS; i >= 0; i--) {
        s.offsetData(first.cookie, 2 * i, new Uint8Array(1), false);
      }
    },
    problem: /split its reply to NBD_CMD_READ of 4096 bytes at 0 into too many separate chunks/,
  },
  {
    name: "a chunk type never asked for (block status)",
    reply: (s, first) =>
      s.chunk(first.cookie, ChunkType.BLOCK_STATUS, ReplyFlag.DONE, new Uint8Array(12)),
    problem: /NBD_REPLY_TYPE_BLOCK_STATUS chunk of 12 bytes \(a type this client never asked for\)/,
  },
  {
    name: "an error chunk whose message does not fit it",
    reply: (s, first) => {
      const payload = new Uint8Array(10);
      new DataView(payload.buffer).setUint32(0, 5);
      new DataView(payload.buffer).setUint16(4, 100);
      s.chunk(first.cookie, ChunkType.ERROR, ReplyFlag.DONE, payload);
    },
    problem: /NBD_REPLY_TYPE_ERROR chunk whose message of 100 bytes does not fit its 10 bytes/,
  },
  {
    name: "an error chunk with error 0",
    reply: (s, first) => s.errorChunk(first.cookie, 0, "", true),
    problem: /NBD_REPLY_TYPE_ERROR chunk with error value 0 \(it MUST be nonzero\)/,
  },
  {
    name: "an error offset outside the request",
    reply: (s, first) => s.errorChunk(first.cookie, 5, "bad", true, { offset: 1 << 20 }),
    problem: /NBD_REPLY_TYPE_ERROR_OFFSET chunk for offset 1048576, outside the request/,
  },
];

/** `promise`, or a failure naming `what` if it has not settled within 10 s (a guard against hangs). */
async function withGuard(promise: Promise<void>, what: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), 10_000);
  });
  try {
    await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** The two reads each violation test has in flight, and their memory. */
async function twoReads(server: FakeServer, structured: boolean) {
  const lines: string[] = [];
  const client = await NbdClient.connect(server.uri, {
    structuredReplies: structured,
    reconnectDelayMs: 60_000,
    log: (line) => lines.push(line),
  });
  const memory = new Uint8Array(12 * KiB).fill(0xaa);
  const results = await Promise.allSettled([
    client.read(0, memory.subarray(0, 4 * KiB)),
    client.read(4 * KiB, memory.subarray(4 * KiB, 8 * KiB)),
  ]);
  return { client, lines, memory, results };
}

for (const violation of VIOLATIONS) {
  Deno.test(`hostile server: ${violation.name} is refused, the connection dropped, every request in flight failed`, async () => {
    let sawClose!: () => void;
    const closeSeen = new Promise<void>((resolve) => (sawClose = resolve));
    await using server = await FakeServer.start(async (session) => {
      await session.handshake({ size: 1 << 20, structured: violation.structured ?? true });
      const first = await session.request();
      await session.request();
      violation.reply(session, first);
      await session.closedByClient();
      sawClose();
    });
    const { client, lines, memory, results } = await twoReads(server, violation.structured ?? true);
    try {
      const failed = violation.firstAnswered ? results.slice(1) : results;
      if (violation.firstAnswered) {
        assert.equal(results[0].status, "fulfilled");
        assert.deepEqual(memory.subarray(0, 4 * KiB), pattern(0, 4 * KiB, 1));
      }
      for (const result of failed) {
        assert.equal(result.status, "rejected");
        const error = (result as PromiseRejectedResult).reason;
        assert.ok(error instanceof NbdRequestError, String(error));
        assert.equal(error.errno, ERRNO.ECONNRESET);
        assert.match(error.message, /ECONNRESET \(protocol violation: the server /);
        assert.match(error.message, violation.problem);
      }
      assert.equal(
        lines.filter((line) => violation.problem.test(line)).length,
        1,
        lines.join("\n"),
      );
      assert.ok(lines[0].includes("protocol violation") && !lines[0].includes("\n"));
      assert.equal(client.connected, false);
      // The second read was never answered: its memory is as it was.
      assert.ok(
        memory.subarray(4 * KiB).every((byte) => byte === 0xaa),
        "unanswered memory untouched",
      );
      // The server sees the connection dropped (bounded, so a failure cannot hang the run).
      await withGuard(closeSeen, "the server did not see the connection dropped");
    } finally {
      await client.close();
    }
  });
}

Deno.test("hostile server: memory outside a refused chunk's range stays untouched", async () => {
  await using server = await FakeServer.start(async (session) => {
    await session.handshake({ size: 1 << 20 });
    const first = await session.request();
    // Data for bytes 512..1536 of a read of 1024 at 0: half inside, half outside.
    session.offsetData(first.cookie, 512, new Uint8Array(1024).fill(0x55), true);
    await session.closedByClient();
  });
  await using client = await NbdClient.connect(server.uri, { reconnectDelayMs: 60_000 });
  const memory = new Uint8Array(4096).fill(0xaa);
  await assert.rejects(
    client.read(0, memory.subarray(0, 1024)),
    /outside NBD_CMD_READ of 1024 bytes at 0/,
  );
  assert.ok(memory.every((byte) => byte === 0xaa), "no byte of the refused chunk was written");
});

Deno.test("hostile server: a disconnect in the middle of a reply fails every request in flight", async () => {
  await using server = await FakeServer.start(async (session) => {
    await session.handshake({ size: 1 << 20 });
    const first = await session.request();
    await session.request();
    // The header and 100 of the 4096 data bytes, then gone.
    const payload = new Uint8Array(8 + 100);
    session.chunk(first.cookie, ChunkType.OFFSET_DATA, ReplyFlag.DONE, payload, 8 + 4096);
    await new Promise((resolve) => setTimeout(resolve, 20));
    session.destroy();
  });
  const { client, lines, results } = await twoReads(server, true);
  try {
    for (const result of results) {
      const error = (result as PromiseRejectedResult).reason;
      assert.ok(error instanceof NbdRequestError, String(error));
      assert.equal(error.errno, ERRNO.ECONNRESET);
      assert.match(error.message, /connection lost/);
    }
    assert.match(lines[0], /connection lost/);
  } finally {
    await client.close();
  }
});

Deno.test("errors the protocol allows fail only their request; the connection keeps serving", async () => {
  await using server = await FakeServer.start(async (session) => {
    await session.handshake({ size: 1 << 20 });
    // 1: an error chunk without DONE, more content after it, then NONE.
    let request = await session.request();
    session.errorChunk(request.cookie, 5, "disk on fire\nreally", false);
    session.offsetData(request.cookie, 0, pattern(0, 4096, 1), false);
    session.none(request.cookie);
    // 2: ERROR_OFFSET for the second half, after data for the first.
    request = await session.request();
    session.offsetData(request.cookie, 4096, pattern(4096, 2048, 1), false);
    session.errorChunk(request.cookie, 28, "no space", true, { offset: 6144 });
    // 3: an error type this client does not know (bit 15 set): still an error.
    request = await session.request();
    session.errorChunk(request.cookie, 1, "new kind", true, { type: 0x8003 });
    // 4: an error value proto.md does not define: EINVAL.
    request = await session.request();
    session.simpleReply(request.cookie, 99);
    // 5: a simple error reply to a read under structured replies (no payload either way).
    request = await session.request();
    session.simpleReply(request.cookie, 5);
    // 6: a read split into data and a hole, out of order: fine.
    request = await session.request();
    session.hole(request.cookie, 8192 + 2048, 2048, false);
    session.offsetData(request.cookie, 8192, pattern(8192, 2048, 1), true);
    // 7: a write answered with ERROR_OFFSET inside it.
    request = await session.request();
    assert.equal(request.type, Command.WRITE);
    session.errorChunk(request.cookie, 28, "", true, { offset: request.offset + 512 });
    await session.closedByClient();
  });
  const lines: string[] = [];
  await using client = await NbdClient.connect(server.uri, { log: (line) => lines.push(line) });
  const expectFailure = async (promise: Promise<void>, errno: number, message: RegExp) => {
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof NbdRequestError);
      assert.equal(error.errno, errno);
      assert.match(error.message, message);
      assert.ok(!error.message.includes("\n"), "the server's message on one line");
      return true;
    });
  };
  await expectFailure(
    client.read(0, new Uint8Array(4096)),
    ERRNO.EIO,
    /NBD_CMD_READ of 4096 bytes at 0 failed: EIO \(disk on fire really\)/,
  );
  await expectFailure(
    client.read(4096, new Uint8Array(4096)),
    ERRNO.ENOSPC,
    /ENOSPC \(no space\)/,
  );
  await expectFailure(client.read(0, new Uint8Array(512)), ERRNO.EPERM, /EPERM \(new kind\)/);
  await expectFailure(client.read(0, new Uint8Array(512)), ERRNO.EINVAL, /EINVAL/);
  await expectFailure(client.read(0, new Uint8Array(512)), ERRNO.EIO, /EIO/);
  const bytes = new Uint8Array(4096).fill(0xee);
  await client.read(8192, bytes);
  assert.deepEqual(bytes.subarray(0, 2048), pattern(8192, 2048, 1));
  assert.ok(bytes.subarray(2048).every((byte) => byte === 0), "the hole reads as zeros");
  await expectFailure(
    client.write(0, new Uint8Array(1024)),
    ERRNO.ENOSPC,
    /NBD_CMD_WRITE of 1024 bytes at 0 failed: ENOSPC/,
  );
  assert.equal(client.connected, true);
  assert.equal(client.reconnects, 0);
  assert.deepEqual(lines, []);
});

Deno.test("NBD_ESHUTDOWN: no more requests on that connection, DISC once it is idle, then a new connection", async () => {
  const seen: number[][] = [[], []];
  await using server = await FakeServer.start(async (session, index) => {
    await session.handshake({ size: 1 << 20 });
    if (index === 0) {
      const first = await session.request();
      const second = await session.request();
      session.simpleReply(first.cookie, ESHUTDOWN);
      await new Promise((resolve) => setTimeout(resolve, 20));
      session.simpleReply(second.cookie, 0);
      // Nothing but NBD_CMD_DISC may follow.
      seen[0].push((await session.request()).type);
      await session.closedByClient();
      return;
    }
    for (;;) {
      const request = await session.request();
      seen[1].push(request.type);
      if (request.type === Command.DISC) return;
      session.offsetData(
        request.cookie,
        request.offset,
        pattern(request.offset, request.length, 1),
        true,
      );
    }
  });
  await using client = await NbdClient.connect(server.uri, { reconnectDelayMs: 10 });
  const first = client.read(0, new Uint8Array(512));
  const second = client.flush();
  await assert.rejects(first, (error: unknown) => (error as NbdRequestError).errno === ESHUTDOWN);
  // Submitted after the ESHUTDOWN: must not go out on the draining connection.
  const third = new Uint8Array(1024);
  const later = client.read(1024, third);
  await second;
  await later;
  assert.deepEqual(third, pattern(1024, 1024, 1));
  assert.deepEqual(seen[0], [Command.DISC]);
  assert.equal(client.reconnects, 1);
  await client.close();
  assert.deepEqual(seen[1], [Command.READ, Command.DISC], "the new connection ends with DISC too");
});
