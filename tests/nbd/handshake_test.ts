/**
 * The handshake against servers that behave, that are old, and that
 * misbehave (a fake server in-process; real servers are in
 * nbdkit_test.ts): NBD_OPT_GO with block sizes when offered, the fallbacks
 * proto.md names (NBD_OPT_EXPORT_NAME after NBD_REP_ERR_UNSUP, a plain
 * newstyle server), and a one-line BAD_BACKING_FILE refusal naming the
 * problem for everything else, before any request is sent.
 */

import assert from "node:assert/strict";
import { VirtioBlkError } from "../../src/errors.ts";
import { NbdClient } from "../../src/nbd/client.ts";
import {
  ChunkType,
  ClientFlag,
  CLISERV_MAGIC,
  HandshakeFlag,
  IHAVEOPT,
  NBD_MAGIC,
  Option,
  OptionReply,
  TransmissionFlag,
} from "../../src/nbd/protocol.ts";
import { ALL_FLAGS, FakeServer, type FakeSession } from "./fake_server.ts";
import { pattern } from "./pattern.ts";

/** Connects to a fake server running `script`; the refusal it must produce. */
async function refused(
  script: (session: FakeSession) => Promise<void>,
  message: RegExp,
  options: { connectTimeoutMs?: number } = {},
): Promise<FakeServer> {
  const server = await FakeServer.start(script);
  await assert.rejects(NbdClient.connect(server.uri, options), (error: unknown) => {
    assert.ok(error instanceof VirtioBlkError, String(error));
    assert.equal(error.code, "BAD_BACKING_FILE");
    assert.ok(error.message.startsWith(`${server.uri}: `), error.message);
    assert.match(error.message, message);
    assert.ok(!error.message.includes("\n"), "one line");
    return true;
  });
  return server;
}

/** Answers reads with the pattern of seed 1 (simple replies, or one data chunk each), until DISC. */
async function serveReads(session: FakeSession, structured: boolean): Promise<void> {
  for (;;) {
    const request = await session.request();
    if (request.type === 2) return;
    const data = pattern(request.offset, request.length, 1);
    if (structured) session.offsetData(request.cookie, request.offset, data, true);
    else session.simpleReply(request.cookie, 0, data);
  }
}

Deno.test("NBD_OPT_GO: the export, its flags and its block sizes; the client asks for block sizes", async () => {
  let infoRequests: number[] = [];
  await using server = await FakeServer.start(async (session) => {
    await session.greet();
    assert.equal(session.clientFlags, ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES);
    let { option } = await session.option();
    assert.equal(option, Option.STRUCTURED_REPLY);
    session.optionReply(option, OptionReply.ACK);
    const go = await session.option();
    assert.equal(go.option, Option.GO);
    const view = new DataView(go.data.buffer);
    const nameLength = view.getUint32(0);
    assert.equal(new TextDecoder().decode(go.data.subarray(4, 4 + nameLength)), "fake");
    const count = view.getUint16(4 + nameLength);
    infoRequests = Array.from({ length: count }, (_, i) => view.getUint16(6 + nameLength + 2 * i));
    option = go.option;
    // An information type this client does not know first: ignored.
    session.optionReply(option, OptionReply.INFO, new Uint8Array([0, 99, 1, 2, 3]));
    session.infoBlockSize(option, [4096, 4096, 65536]);
    session.infoExport(
      option,
      1 << 20,
      TransmissionFlag.HAS_FLAGS | TransmissionFlag.READ_ONLY | TransmissionFlag.CAN_MULTI_CONN,
    );
    session.optionReply(option, OptionReply.ACK);
    await serveReads(session, true);
  });
  await using client = await NbdClient.connect(server.uri);
  assert.deepEqual(infoRequests, [3], "NBD_INFO_BLOCK_SIZE requested");
  const info = client.export;
  assert.equal(info.size, 1 << 20);
  assert.equal(info.negotiation, "go");
  assert.ok(info.readOnly && info.canMultiConn && !info.canFlush && !info.canTrim);
  assert.deepEqual(
    [info.minimumBlock, info.preferredBlock, info.maximumPayload, info.blockSizeAdvertised],
    [4096, 4096, 65536, true],
  );
  const bytes = new Uint8Array(8192);
  await client.read(4096, bytes);
  assert.deepEqual(bytes, pattern(4096, 8192, 1));
  // The minimum block size binds: a 512-byte read is refused, not sent.
  await assert.rejects(
    client.read(512, new Uint8Array(512)),
    /not aligned to the export's minimum block size 4096/,
  );
});

Deno.test("a fixed-newstyle server without NBD_OPT_GO: NBD_OPT_EXPORT_NAME (with or without the 124 zeroes)", async () => {
  for (const noZeroes of [true, false]) {
    await using server = await FakeServer.start(async (session) => {
      await session.greet(HandshakeFlag.FIXED_NEWSTYLE | (noZeroes ? HandshakeFlag.NO_ZEROES : 0));
      assert.equal(
        session.clientFlags,
        ClientFlag.C_FIXED_NEWSTYLE | (noZeroes ? ClientFlag.C_NO_ZEROES : 0),
      );
      for (;;) {
        const { option, data } = await session.option();
        if (option !== Option.EXPORT_NAME) {
          session.optionReply(option, OptionReply.ERR_UNSUP);
          continue;
        }
        assert.equal(new TextDecoder().decode(data), "fake");
        const reply = new Uint8Array(10 + (noZeroes ? 0 : 124));
        new DataView(reply.buffer).setBigUint64(0, 2048n);
        new DataView(reply.buffer).setUint16(8, TransmissionFlag.HAS_FLAGS | ALL_FLAGS);
        session.write(reply);
        break;
      }
      await serveReads(session, false);
    });
    await using client = await NbdClient.connect(server.uri);
    assert.equal(client.export.negotiation, "export-name");
    assert.equal(client.export.structuredReplies, false);
    assert.equal(client.export.size, 2048);
    const bytes = new Uint8Array(1024);
    await client.read(1024, bytes);
    assert.deepEqual(bytes, pattern(1024, 1024, 1), `NO_ZEROES ${noZeroes}`);
  }
});

Deno.test("a plain newstyle server (no FIXED_NEWSTYLE): only NBD_OPT_EXPORT_NAME, client flags 0", async () => {
  await using server = await FakeServer.start(async (session) => {
    await session.greet(0);
    assert.equal(session.clientFlags, 0);
    const { option } = await session.option();
    assert.equal(option, Option.EXPORT_NAME, "no other option before it");
    const reply = new Uint8Array(10 + 124);
    new DataView(reply.buffer).setBigUint64(0, 4096n);
    new DataView(reply.buffer).setUint16(8, TransmissionFlag.HAS_FLAGS);
    session.write(reply);
    await serveReads(session, false);
  });
  await using client = await NbdClient.connect(server.uri);
  assert.equal(client.export.negotiation, "newstyle");
  const bytes = new Uint8Array(512);
  await client.read(0, bytes);
  assert.deepEqual(bytes, pattern(0, 512, 1));
  // The export offers nothing but reads and writes.
  await assert.rejects(client.flush(), /does not offer NBD_CMD_FLUSH/);
});

Deno.test("structured replies refused (NBD_REP_ERR_UNSUP): simple replies serve reads", async () => {
  await using server = await FakeServer.start(async (session) => {
    await session.handshake({ size: 1 << 16, structured: false });
    await serveReads(session, false);
  });
  await using client = await NbdClient.connect(server.uri);
  assert.equal(client.export.structuredReplies, false);
  const bytes = new Uint8Array(32768);
  await client.read(4096, bytes);
  assert.deepEqual(bytes, pattern(4096, 32768, 1));
});

/** A fixed-newstyle handshake up to NBD_OPT_GO, then `answer` to it. */
function goAnswer(answer: (session: FakeSession) => void): (session: FakeSession) => Promise<void> {
  return async (session) => {
    await session.greet();
    for (;;) {
      const { option } = await session.option();
      if (option === Option.GO) break;
      session.optionReply(option, OptionReply.ACK);
    }
    answer(session);
    // A refused client sends NBD_OPT_ABORT or just closes.
    await session.option().catch(() => {});
    await session.closedByClient();
  };
}

const GO_REFUSALS: [string, (session: FakeSession) => void, RegExp][] = [
  [
    "an unknown export",
    (s) =>
      s.optionReply(Option.GO, OptionReply.ERR_UNKNOWN, new TextEncoder().encode("no such export")),
    /the server has no export "fake" \(NBD_OPT_GO: NBD_REP_ERR_UNKNOWN: no such export\)/,
  ],
  [
    "TLS required",
    (s) => s.optionReply(Option.GO, OptionReply.ERR_TLS_REQD),
    /the server requires TLS, which is not supported \(NBD_OPT_GO: NBD_REP_ERR_TLS_REQD\)/,
  ],
  [
    "a server shutting down",
    (s) => s.optionReply(Option.GO, OptionReply.ERR_SHUTDOWN),
    /the server is shutting down/,
  ],
  [
    "a policy refusal",
    (s) => s.optionReply(Option.GO, OptionReply.ERR_POLICY, new TextEncoder().encode("go away")),
    /the server's policy refuses export "fake" \(NBD_OPT_GO: NBD_REP_ERR_POLICY: go away\)/,
  ],
  [
    "an error type proto.md does not name",
    (s) => s.optionReply(Option.GO, 0x80000077),
    /the server refused export "fake" \(NBD_OPT_GO: reply type 0x80000077\)/,
  ],
  [
    "an export size that is not a multiple of 512",
    (s) => {
      s.infoExport(Option.GO, 1000, TransmissionFlag.HAS_FLAGS);
      s.optionReply(Option.GO, OptionReply.ACK);
    },
    /the export size 1000 bytes is not a multiple of 512/,
  ],
  [
    "an export size of 2^53 bytes or more",
    (s) => {
      s.infoExport(Option.GO, 1n << 60n, TransmissionFlag.HAS_FLAGS);
      s.optionReply(Option.GO, OptionReply.ACK);
    },
    /the export size is 2\^53 bytes or more/,
  ],
  [
    "transmission flags without HAS_FLAGS",
    (s) => {
      s.infoExport(Option.GO, 4096, TransmissionFlag.SEND_FLUSH);
      s.optionReply(Option.GO, OptionReply.ACK);
    },
    /transmission flags 0x4 lack NBD_FLAG_HAS_FLAGS/,
  ],
  [
    "success without NBD_INFO_EXPORT",
    (s) => s.optionReply(Option.GO, OptionReply.ACK),
    /NBD_OPT_GO succeeded without NBD_INFO_EXPORT/,
  ],
  [
    "a minimum block size that is not a power of two",
    (s) => {
      s.infoBlockSize(Option.GO, [3, 4096, 65536]);
      s.infoExport(Option.GO, 4096, TransmissionFlag.HAS_FLAGS);
      s.optionReply(Option.GO, OptionReply.ACK);
    },
    /NBD_INFO_BLOCK_SIZE: minimum block size 3 is not a power of two up to 65536/,
  ],
  [
    "a maximum payload below the preferred block size",
    (s) => {
      s.infoBlockSize(Option.GO, [512, 4096, 1024]);
      s.infoExport(Option.GO, 4096, TransmissionFlag.HAS_FLAGS);
      s.optionReply(Option.GO, OptionReply.ACK);
    },
    /maximum payload 1024 is below the preferred block size 4096/,
  ],
  [
    "NBD_INFO_EXPORT of the wrong length",
    (s) => s.optionReply(Option.GO, OptionReply.INFO, new Uint8Array(11)),
    /NBD_INFO_EXPORT of 11 bytes \(expected 12\)/,
  ],
  [
    "an option reply announcing 1 GiB (refused before reading it)",
    (s) => s.optionReply(Option.GO, OptionReply.INFO, new Uint8Array(0), 1 << 30),
    /NBD_REP_INFO reply to NBD_OPT_GO of 1073741824 bytes \(more than 4160\)/,
  ],
  [
    "a reply to another option",
    (s) => s.optionReply(Option.LIST, OptionReply.ACK),
    /the server replied to NBD_OPT_LIST when asked NBD_OPT_GO/,
  ],
  [
    "a reply type that is not an answer to NBD_OPT_GO",
    (s) => s.optionReply(Option.GO, OptionReply.SERVER, new Uint8Array(4)),
    /unexpected NBD_REP_SERVER in reply to NBD_OPT_GO/,
  ],
  [
    "NBD_REP_INFO without end",
    (s) => {
      for (let i = 0; i < 100; i++) {
        s.optionReply(Option.GO, OptionReply.INFO, new Uint8Array([0, 9]));
      }
    },
    /more than 64 NBD_REP_INFO replies to NBD_OPT_GO/,
  ],
];

for (const [name, answer, message] of GO_REFUSALS) {
  Deno.test(`refused at NBD_OPT_GO: ${name}`, async () => {
    await using _server = await refused(goAnswer(answer), message);
  });
}

Deno.test("a refused NBD_OPT_GO is followed by NBD_OPT_ABORT (a soft disconnect)", async () => {
  let after: number | undefined;
  await using _server = await refused(async (session) => {
    await session.greet();
    for (;;) {
      const { option } = await session.option();
      if (option === Option.GO) break;
      session.optionReply(option, OptionReply.ACK);
    }
    session.optionReply(Option.GO, OptionReply.ERR_UNKNOWN);
    after = (await session.option()).option;
    await session.closedByClient();
  }, /no export "fake"/);
  assert.equal(after, Option.ABORT);
});

const GREETING_REFUSALS: [string, (session: FakeSession) => Promise<void>, RegExp][] = [
  [
    "not an NBD server",
    (s) => {
      s.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n"));
      return s.closedByClient();
    },
    /not an NBD server \(its greeting is not NBDMAGIC\)/,
  ],
  [
    "an oldstyle server",
    (s) => {
      const bytes = new Uint8Array(16 + 8 + 4 + 124);
      new DataView(bytes.buffer).setBigUint64(0, NBD_MAGIC);
      new DataView(bytes.buffer).setBigUint64(8, CLISERV_MAGIC);
      s.write(bytes);
      return s.closedByClient();
    },
    /the server speaks the oldstyle protocol, which is not supported/,
  ],
  [
    "a wrong second magic",
    (s) => {
      const bytes = new Uint8Array(18);
      new DataView(bytes.buffer).setBigUint64(0, NBD_MAGIC);
      new DataView(bytes.buffer).setBigUint64(8, IHAVEOPT + 1n);
      s.write(bytes);
      return s.closedByClient();
    },
    /not an NBD newstyle server \(0x49484156454f5055 after NBDMAGIC\)/,
  ],
  [
    "a server that closes during the handshake",
    async (s) => {
      await s.greet();
      await s.option();
      s.destroy();
    },
    /the connection closed during the handshake \(NBD_OPT_STRUCTURED_REPLY\)/,
  ],
  [
    "a server that closes in reply to NBD_OPT_EXPORT_NAME (its way to refuse)",
    async (s) => {
      await s.greet(0);
      await s.option();
      s.destroy();
    },
    /the server closed the connection in reply to NBD_OPT_EXPORT_NAME \(no export "fake"\?\)/,
  ],
  [
    "TLS required for structured replies",
    async (s) => {
      await s.greet();
      const { option } = await s.option();
      s.optionReply(option, OptionReply.ERR_TLS_REQD);
      await s.closedByClient();
    },
    /the server requires TLS, which is not supported \(NBD_OPT_STRUCTURED_REPLY: NBD_REP_ERR_TLS_REQD\)/,
  ],
];

for (const [name, script, message] of GREETING_REFUSALS) {
  Deno.test(`refused: ${name}`, async () => {
    await using _server = await refused(script, message);
  });
}

Deno.test("a server that never finishes the handshake: refused after the connect timeout", async () => {
  await using _server = await refused(
    async (session) => {
      await session.greet();
      await session.closedByClient();
    },
    /no handshake within 200 ms/,
    { connectTimeoutMs: 200 },
  );
});

Deno.test("nothing listening: refused, naming the socket's error", async () => {
  const uri = "nbd+unix:///x?socket=/nonexistent/nbd.sock";
  await assert.rejects(NbdClient.connect(uri), (error: unknown) => {
    assert.ok(error instanceof VirtioBlkError);
    assert.equal(error.code, "BAD_BACKING_FILE");
    assert.match(
      error.message,
      /^nbd\+unix:\/\/\/x\?socket=\/nonexistent\/nbd.sock: cannot connect: .*ENOENT/,
    );
    return true;
  });
});

Deno.test("bad client options are refused with one line", async () => {
  await assert.rejects(
    NbdClient.connect("nbd://127.0.0.1:1/x", { requestTimeoutMs: 0 }),
    /nbd:\/\/127.0.0.1:1\/x: option requestTimeoutMs must be a positive integer \(got 0\)/,
  );
});

Deno.test("bytes the server sends right after NBD_OPT_GO's ACK are parsed as replies", async () => {
  await using server = await FakeServer.start(async (session) => {
    await session.greet();
    for (;;) {
      const { option } = await session.option();
      if (option !== Option.GO) {
        session.optionReply(option, OptionReply.ACK);
        continue;
      }
      session.infoExport(option, 4096, TransmissionFlag.HAS_FLAGS);
      session.optionReply(option, OptionReply.ACK);
      // An unsolicited chunk in the same write as the ACK: a reply for nothing.
      session.chunk(new Uint8Array(8), ChunkType.NONE, 1, new Uint8Array(0));
      break;
    }
    await session.closedByClient();
  });
  const lines: string[] = [];
  await using client = await NbdClient.connect(server.uri, {
    log: (line) => lines.push(line),
    reconnectDelayMs: 60_000,
    requestTimeoutMs: 200,
  });
  await assert.rejects(
    client.read(0, new Uint8Array(512)),
    /read of 512 bytes at 0 failed: ETIMEDOUT \(not sent within 200 ms: no connection to the server\)/,
  );
  assert.match(
    lines[0],
    /NBD_REPLY_TYPE_NONE chunk for cookie 0x0000000000000000, which is not in flight/,
  );
});
