/**
 * The NBD client against nbdkit (its memory plugin, and filters that make
 * the server old, strict, failing, slow or silent): simple replies from a
 * real server, the plain newstyle handshake, refusals, block-size
 * constraints obeyed (requests split and aligned, as nbdkit's log filter
 * records them), durable writes (FUA, or a FLUSH before completion),
 * injected errors, and timeouts followed by a new connection.
 */

import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { VirtioBlkError } from "../../src/errors.ts";
import { ERRNO } from "../../src/io/errno.ts";
import { NbdClient } from "../../src/nbd/client.ts";
import { NbdRequestError } from "../../src/nbd/errors.ts";
import { needsTools } from "../helpers/skip.ts";
import { NbdServer } from "./nbd_server.ts";
import { pattern } from "./pattern.ts";

const skip = needsTools("nbdkit");
const KiB = 1024;
const MiB = 1 << 20;

/** One request as nbdkit's log filter recorded it. */
interface Logged {
  readonly connection: number;
  readonly op: string;
  readonly offset: number;
  readonly count: number;
  readonly fua: boolean;
}

/** The requests in a log filter's file, in the order nbdkit's threads ran them. */
function loggedRequests(file: string): Logged[] {
  const requests: Logged[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match =
      /connection=(\d+) (\w+) id=\d+ (?:offset=0x([0-9a-f]+) count=0x([0-9a-f]+))?(?: fua=(\d))?/
        .exec(line);
    if (match === null) continue;
    requests.push({
      connection: Number(match[1]),
      op: match[2],
      offset: parseInt(match[3] ?? "0", 16),
      count: parseInt(match[4] ?? "0", 16),
      fua: match[5] === "1",
    });
  }
  return requests;
}

async function expectErrno(
  promise: Promise<void>,
  errno: number,
  message?: RegExp,
): Promise<NbdRequestError> {
  let caught: NbdRequestError | undefined;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof NbdRequestError, String(error));
    assert.equal(error.errno, errno, error.message);
    if (message) assert.match(error.message, message);
    caught = error;
    return true;
  });
  return caught!;
}

/**
 * Runs `attempt` until it does not fail with ETIMEDOUT (at most 20 times):
 * for requests that must succeed on a client whose timeout is short so
 * that the stuck ones fail soon, on a machine that may be slow.
 */
async function eventually(attempt: () => Promise<void>): Promise<void> {
  for (let tries = 1;; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (tries === 20 || (error as NbdRequestError).errno !== ERRNO.ETIMEDOUT) throw error;
    }
  }
}

for (const transport of ["unix", "tcp"] as const) {
  Deno.test({
    name: `nbdkit memory over ${transport}: what is written reads back; it offers CAN_MULTI_CONN`,
    ignore: skip.ignore,
    fn: async () => {
      await using server = await NbdServer.nbdkit(() => ["memory", "16M"], { transport });
      await using client = await NbdClient.connect(server.uri);
      assert.ok(client.export.canMultiConn && client.export.structuredReplies);
      await client.write(MiB, pattern(MiB, 3 * MiB, 1));
      const bytes = new Uint8Array(4 * MiB).fill(0xee);
      await client.read(0, bytes);
      assert.ok(bytes.subarray(0, MiB).every((byte) => byte === 0), "never written: zeros");
      assert.deepEqual(bytes.subarray(MiB), pattern(MiB, 3 * MiB, 1));
    },
  });
}

const OLD_SERVERS: [string, string[], (client: NbdClient) => void][] = [
  [
    "--no-sr: simple replies carry reads and writes",
    ["--no-sr"],
    (client) => assert.equal(client.export.structuredReplies, false),
  ],
  [
    "--mask-handshake=0: a plain newstyle server is served with NBD_OPT_EXPORT_NAME",
    ["--mask-handshake=0"],
    (client) => assert.equal(client.export.negotiation, "newstyle"),
  ],
];

for (const [name, flags, check] of OLD_SERVERS) {
  Deno.test({
    name: `nbdkit ${name}`,
    ignore: skip.ignore,
    fn: async () => {
      await using server = await NbdServer.nbdkit(() => [...flags, "memory", "8M"]);
      await using client = await NbdClient.connect(server.uri);
      check(client);
      await client.write(4096, pattern(4096, 2 * MiB, 2));
      const bytes = new Uint8Array(2 * MiB);
      await client.read(4096, bytes);
      assert.deepEqual(bytes, pattern(4096, 2 * MiB, 2));
    },
  });
}

Deno.test({
  name: "nbdkit refusals: an oldstyle server, an export of 1000 bytes",
  ignore: skip.ignore,
  fn: async () => {
    const refusals: [string[], RegExp][] = [
      [["-o", "memory", "1M"], /the server speaks the oldstyle protocol, which is not supported/],
      [["memory", "1000"], /the export size 1000 bytes is not a multiple of 512/],
    ];
    for (const [args, message] of refusals) {
      await using server = await NbdServer.nbdkit(() => args);
      await assert.rejects(NbdClient.connect(server.uri), (error: unknown) => {
        assert.ok(error instanceof VirtioBlkError);
        assert.equal(error.code, "BAD_BACKING_FILE");
        assert.match(error.message, message);
        return true;
      });
    }
  },
});

Deno.test({
  name:
    "nbdkit blocksize-policy (minimum 4 KiB, maximum 64 KiB): requests are split to 64 KiB and kept aligned",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit((dir) => [
      "--filter=log",
      "--filter=blocksize-policy",
      "memory",
      "4M",
      `logfile=${dir}/log`,
      "blocksize-minimum=4096",
      "blocksize-preferred=4096",
      "blocksize-maximum=65536",
      "blocksize-error-policy=error",
    ]);
    await using client = await NbdClient.connect(server.uri);
    assert.deepEqual(
      [client.export.minimumBlock, client.export.maximumPayload],
      [4096, 65536],
    );
    await client.write(MiB, pattern(MiB, MiB, 4));
    const bytes = new Uint8Array(MiB + 8 * KiB);
    await client.read(MiB - 4 * KiB, bytes);
    assert.deepEqual(bytes.subarray(4 * KiB, 4 * KiB + MiB), pattern(MiB, MiB, 4));
    await expectErrno(
      client.read(512, new Uint8Array(512)),
      ERRNO.EINVAL,
      /minimum block size 4096/,
    );
    await expectErrno(
      client.write(4096, new Uint8Array(1024)),
      ERRNO.EINVAL,
      /minimum block size 4096/,
    );
    const requests = loggedRequests(`${server.dir}/log`);
    // nbdkit's threads log requests as they run them: in offset order for the comparison.
    const writes = requests.filter((r) => r.op === "Write").sort((a, b) => a.offset - b.offset);
    const reads = requests.filter((r) => r.op === "Read");
    assert.deepEqual(
      writes.map((r) => [r.offset, r.count]),
      Array.from({ length: 16 }, (_, i) => [MiB + 64 * KiB * i, 64 * KiB]),
    );
    assert.equal(reads.length, 17);
    assert.ok(
      reads.every((r) => r.count <= 64 * KiB && r.offset % 4096 === 0 && r.count % 4096 === 0),
    );
    assert.equal(reads.reduce((sum, r) => sum + r.count, 0), MiB + 8 * KiB);
  },
});

Deno.test({
  name:
    "durable writes: FUA where the export offers it, else the write then a FLUSH, both before completion",
  ignore: skip.ignore,
  fn: async () => {
    for (const offersFua of [true, false]) {
      // nbdkit's fua filter (default mode) hides FUA from the client.
      await using server = await NbdServer.nbdkit((dir) => [
        "--filter=log",
        ...(offersFua ? [] : ["--filter=fua"]),
        "memory",
        "1M",
        `logfile=${dir}/log`,
      ]);
      await using client = await NbdClient.connect(server.uri);
      assert.equal(client.export.canFua, offersFua);
      await client.write(0, pattern(0, 8 * KiB, 5), { fua: true });
      // The promise resolved: nbdkit has answered everything it needed.
      const durable = loggedRequests(`${server.dir}/log`);
      assert.deepEqual(
        durable.map((r) => [r.op, r.fua]),
        offersFua ? [["Write", true]] : [["Write", false], ["Flush", false]],
        `offers FUA: ${offersFua}`,
      );
      assert.ok(
        readFileSync(`${server.dir}/log`, "utf8").includes(
          offersFua ? "...Write id=1 return=0" : "...Flush id=2 return=0",
        ),
        "answered before the write completed",
      );
      await client.write(8 * KiB, pattern(8 * KiB, 8 * KiB, 5));
      const plain = loggedRequests(`${server.dir}/log`).slice(durable.length);
      assert.deepEqual(
        plain.map((r) => [r.op, r.fua]),
        [["Write", false]],
        "a plain write: no FUA, no FLUSH",
      );
    }
  },
});

Deno.test({
  name:
    "nbdkit error filter: EIO on reads, ENOSPC on writes fail only their request; the connection serves on",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit((dir) => [
      "--filter=error",
      "memory",
      "1M",
      "error-pread=EIO",
      "error-pread-rate=100%",
      `error-pread-file=${dir}/fail-reads`,
      "error-pwrite=ENOSPC",
      "error-pwrite-rate=100%",
      `error-pwrite-file=${dir}/fail-writes`,
    ]);
    const lines: string[] = [];
    await using client = await NbdClient.connect(server.uri, { log: (line) => lines.push(line) });
    await client.write(0, pattern(0, 64 * KiB, 6));
    writeFileSync(`${server.dir}/fail-reads`, "");
    writeFileSync(`${server.dir}/fail-writes`, "");
    await expectErrno(
      client.read(0, new Uint8Array(4 * KiB)),
      ERRNO.EIO,
      /NBD_CMD_READ of 4096 bytes at 0 failed: EIO/,
    );
    await expectErrno(
      client.write(0, new Uint8Array(4 * KiB)),
      ERRNO.ENOSPC,
      /NBD_CMD_WRITE of 4096 bytes at 0 failed: ENOSPC/,
    );
    // A split read: one failing part fails the whole read.
    rmSync(`${server.dir}/fail-writes`);
    await client.write(64 * KiB, pattern(64 * KiB, 64 * KiB, 6));
    rmSync(`${server.dir}/fail-reads`);
    const bytes = new Uint8Array(128 * KiB);
    await client.read(0, bytes);
    assert.deepEqual(bytes, pattern(0, 128 * KiB, 6), "the failed write changed nothing");
    assert.equal(client.reconnects, 0);
    assert.deepEqual(lines, []);
  },
});

Deno.test({
  name:
    "nbdkit delay filter: a read slower than the timeout fails with ETIMEDOUT; a new connection serves what follows",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit(
      () => ["--filter=delay", "memory", "1M", "delay-read=3"],
    );
    const lines: string[] = [];
    await using client = await NbdClient.connect(server.uri, {
      requestTimeoutMs: 300,
      reconnectDelayMs: 10,
      log: (line) => lines.push(line),
    });
    const write = client.write(0, pattern(0, 4 * KiB, 7));
    const read = client.read(0, new Uint8Array(4 * KiB));
    await write;
    await expectErrno(
      read,
      ERRNO.ETIMEDOUT,
      /no reply to NBD_CMD_READ of 4096 bytes at 0 within 300 ms/,
    );
    // Writes are not delayed: served on the next connection.
    await eventually(() => client.write(4 * KiB, pattern(4 * KiB, 4 * KiB, 7)));
    assert.equal(client.reconnects, 1);
    assert.match(
      lines[0],
      /no reply to NBD_CMD_READ of 4096 bytes at 0 within 300 ms; reconnecting/,
    );
    assert.match(lines[1], /reconnected/);
  },
});

/** Pauses (`p`) or resumes (`r`) nbdkit's pause filter; resolves once it confirmed. */
function pauseControl(socketPath: string, command: "p" | "r"): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    socket.on("error", reject);
    socket.on("connect", () => socket.write(command));
    socket.on("data", (data: Uint8Array) => {
      if (data[0] === command.toUpperCase().charCodeAt(0)) {
        socket.end();
        resolve();
      }
    });
  });
}

Deno.test({
  name:
    "nbdkit pause filter: a server that stops answering fails requests in flight within the timeout, serves again once resumed",
  ignore: skip.ignore,
  fn: async () => {
    // One thread per connection: nbdkit 1.32 serves a connection's requests
    // on several threads, and when the client has hung up on the paused
    // ones, the second reply written after the first found the socket
    // closed aborts the server (`raw_send_socket: Assertion 'sock >= 0'`).
    await using server = await NbdServer.nbdkit((dir) => [
      "--threads=1",
      "--filter=pause",
      "memory",
      "1M",
      `pause-control=${dir}/control.sock`,
    ]);
    const control = `${server.dir}/control.sock`;
    const lines: string[] = [];
    await using client = await NbdClient.connect(server.uri, {
      requestTimeoutMs: 300,
      reconnectDelayMs: 10,
      log: (line) => lines.push(line),
    });
    await client.write(0, pattern(0, 8 * KiB, 8));
    await pauseControl(control, "p");
    const stuck = [
      client.read(0, new Uint8Array(4 * KiB)),
      client.read(4 * KiB, new Uint8Array(4 * KiB)),
    ];
    for (const read of stuck) await expectErrno(read, ERRNO.ETIMEDOUT, /within 300 ms/);
    await pauseControl(control, "r");
    const bytes = new Uint8Array(8 * KiB);
    await eventually(() => client.read(0, bytes)).catch((error) => {
      throw new Error(`${(error as Error).message}; nbdkit: ${server.state}`, { cause: error });
    });
    assert.deepEqual(bytes, pattern(0, 8 * KiB, 8));
    assert.ok(client.reconnects >= 1);
    assert.match(lines[0], /no reply to NBD_CMD_READ of 4096 bytes at 0 within 300 ms/);
  },
});

Deno.test({
  name: "close() ends the connection with NBD_CMD_DISC (a soft disconnect)",
  ignore: skip.ignore,
  fn: async () => {
    await using server = await NbdServer.nbdkit(() => ["-v", "memory", "1M"]);
    const client = await NbdClient.connect(server.uri);
    await client.read(0, new Uint8Array(512));
    await client.close();
    await expectErrno(client.read(0, new Uint8Array(512)), ERRNO.ENOTCONN, /the client is closed/);
    await server.stop("SIGTERM");
    assert.match(server.stderr, /client sent NBD_CMD_DISC, closing connection/);
  },
});
