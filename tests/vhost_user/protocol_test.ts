/**
 * The vhost-user-blk back end against a fake front-end that sends what
 * QEMU 7.2 sends (reference vhost-user.md §6–§10), over a real Unix socket
 * with real fds.
 */

import assert from "node:assert/strict";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import type { EngineFactory } from "../../src/blk/engine.ts";
import { BlkFeature, RequestStatus, RequestType } from "../../src/blk/spec.ts";
import { workerEngine } from "../../src/blockif/worker_engine.ts";
import { Random } from "../../src/guest/jobs/block_order.ts";
import { createEventFd, drainEventFd } from "../../src/vhost_user/eventfd.ts";
import { closeFd, cString, libc, Sys } from "../../src/vhost_user/libc.ts";
import { createMemoryFile } from "../../src/vhost_user/mapping.ts";
import {
  decodeConfig,
  decodeU64,
  encodeConfig,
  encodeMemoryTable,
  encodeMessage,
  encodeSingleRegion,
  encodeU64,
  HeaderFlag,
  ProtocolFeature,
  Request,
  VHOST_USER_F_PROTOCOL_FEATURES,
} from "../../src/vhost_user/messages.ts";
import {
  serveVhostUserBlk,
  VHOST_USER_SEG_MAX,
  type VhostUserBlkServer,
} from "../../src/vhost_user/server.ts";
import { MAX_MEMORY_SLOTS } from "../../src/vhost_user/session.ts";
import { MessageHeader } from "../../src/vhost_user/sys_structs.ts";
import { MAX_FDS_PER_MESSAGE } from "../../src/vhost_user/unix_socket.ts";
import { AvailRing } from "../../src/virtio/ring_layout.ts";
import { DESCRIPTOR_SIZE, DescriptorFlag, RingFeature } from "../../src/virtio/spec.ts";
import { pattern } from "../helpers/harness.ts";
import { IO_VARIANTS, type TestMedium } from "../helpers/io_variants.ts";
import { within } from "./child_back_end.ts";
import { DATA_BUFFER, FakeFrontEnd, QemuFeatures } from "./front_end.ts";
import { makeFd } from "./fuzz_fds.ts";
import { sendWithFds } from "./protocol_fuzzer.ts";

const DISK_BYTES = 4 << 20;

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

interface Fixture {
  server: VhostUserBlkServer;
  disk: Uint8Array;
  path: string;
  logs: string[];
  dir: string;
}

async function withServer(
  body: (f: Fixture) => Promise<void>,
  options: {
    readOnly?: boolean;
    writeback?: boolean;
    engine?: EngineFactory;
    /** Another medium than the RAM disk (`disk` is then its bytes as the test started). */
    medium?: TestMedium;
    /** Request queues (mq=, QEMU's num-queues). */
    queues?: number;
  } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vhost-user-test-" });
  const path = `${dir}/blk.sock`;
  const ram = options.medium
    ? undefined
    : MemoryBackend.create(DISK_BYTES, { readOnly: options.readOnly });
  const backend = options.medium?.backend ?? ram!;
  const logs: string[] = [];
  const server = serveVhostUserBlk({
    socketPath: path,
    device: {
      backend,
      writeback: options.writeback,
      serial: "vhost-test",
      engine: options.engine,
      queues: options.queues,
    },
    log: (message) => logs.push(message),
  });
  try {
    const disk = ram ? new Uint8Array(ram.buffer) : options.medium!.bytes();
    await body({ server, disk, path, logs, dir });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits until `condition` holds (the back end runs on the same event loop). */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting for: ${what}`);
}

Deno.test("vhost-user: QEMU's connect handshake gets the features, one queue and the config bytes", async () => {
  await withServer(async ({ server }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      const { features, protocol } = await fe.handshake();
      // §5: bit 30 and VERSION_1 always; the device's own bits as the device offers them.
      assert.ok(features & bit(VHOST_USER_F_PROTOCOL_FEATURES));
      assert.ok(features & bit(RingFeature.VERSION_1));
      for (
        const b of [
          BlkFeature.SEG_MAX,
          BlkFeature.BLK_SIZE,
          BlkFeature.FLUSH,
          BlkFeature.CONFIG_WCE,
        ]
      ) {
        assert.ok(features & bit(b), `feature ${b} offered`);
      }
      assert.equal(features & bit(BlkFeature.RO), 0n, "a writable disk does not offer RO");
      // §5.2: CONFIG is mandatory; REPLY_ACK, MQ and CONFIGURE_MEM_SLOTS are offered.
      for (const b of [ProtocolFeature.CONFIG, ProtocolFeature.REPLY_ACK, ProtocolFeature.MQ]) {
        assert.ok(protocol & bit(b), `protocol feature ${b} offered`);
      }
      assert.ok(protocol & bit(ProtocolFeature.CONFIGURE_MEM_SLOTS));
      assert.equal(await fe.getU64(Request.GET_MAX_MEM_SLOTS), BigInt(MAX_MEMORY_SLOTS));

      // #17/#18: GET_CONFIG offset 0 size 57, the reply echoes offset/size/flags.
      fe.send(
        Request.GET_CONFIG,
        encodeConfig({ offset: 0, size: 57, flags: 0, data: new Uint8Array(57) }),
      );
      const reply = decodeConfig((await fe.reply(Request.GET_CONFIG)).payload);
      assert.ok(reply !== undefined);
      assert.equal(reply.offset, 0);
      assert.equal(reply.size, 57);
      const expected = new Uint8Array(57);
      const v = new DataView(expected.buffer);
      v.setBigUint64(0, BigInt(DISK_BYTES / 512), true); // capacity
      v.setUint32(12, VHOST_USER_SEG_MAX, true); // seg_max
      v.setUint32(20, 512, true); // blk_size
      v.setUint16(26, 1, true); // min_io_size
      v.setUint32(28, 1, true); // opt_io_size
      v.setUint16(34, 1, true); // num_queues
      // WRITE_ZEROES (offered on every writable medium): a whole-disk segment, one per
      // request; no unmap without `discard`.
      v.setUint32(48, DISK_BYTES / 512, true); // max_write_zeroes_sectors
      v.setUint32(52, 1, true); // max_write_zeroes_seg
      assert.deepEqual(reply.data, expected);
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: a modern ring start with ADD_MEM_REG serves writes and reads, and GET_VRING_BASE reports the position", async () => {
  await withServer(async ({ server, disk }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      await fe.handshake();
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
      const data = pattern(4096, 7);
      fe.bytes.set(data, DATA_BUFFER);
      const write = await fe.request(RequestType.OUT, 16, { gpa: DATA_BUFFER, length: 4096 });
      assert.equal(write.status, RequestStatus.OK);
      assert.deepEqual(disk.subarray(16 * 512, 16 * 512 + 4096), data);

      fe.bytes.fill(0, DATA_BUFFER, DATA_BUFFER + 4096);
      const read = await fe.request(RequestType.IN, 16, { gpa: DATA_BUFFER, length: 4096 });
      assert.equal(read.status, RequestStatus.OK);
      assert.equal(read.usedLength, 4096 + 1);
      assert.deepEqual(fe.bytes.subarray(DATA_BUFFER, DATA_BUFFER + 4096), data);

      assert.equal(await fe.stopRing(), 2, "two requests taken");

      // A second start (Linux after SeaBIOS): new ring, base 0, no memory message (§7.3).
      fe.ringBase = 0x2_0000;
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN });
      const again = await fe.request(RequestType.IN, 16, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(again.status, RequestStatus.OK);
      assert.equal(await fe.stopRing(), 1);
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: a legacy guest's SET_FEATURES without VERSION_1 is accepted (SeaBIOS and Linux)", async () => {
  await withServer(async ({ server, disk }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      await fe.handshake();
      // SeaBIOS: only bit 30 (§10).
      await fe.startRing({ features: QemuFeatures.SEABIOS_LEGACY, memory: "add" });
      const first = await fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(first.status, RequestStatus.OK);
      assert.equal(await fe.stopRing(), 1);
      // Linux legacy: the modern set minus VERSION_1.
      fe.ringBase = 0x3_0000;
      await fe.startRing({ features: QemuFeatures.LINUX_LEGACY });
      fe.bytes.fill(0x5a, DATA_BUFFER, DATA_BUFFER + 1024);
      const write = await fe.request(RequestType.OUT, 2, { gpa: DATA_BUFFER, length: 1024 });
      assert.equal(write.status, RequestStatus.OK);
      assert.ok(disk.subarray(1024, 2048).every((b) => b === 0x5a));
      assert.equal(await fe.stopRing(), 1);
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: without CONFIGURE_MEM_SLOTS, SET_MEM_TABLE at every start replaces the table", async () => {
  await withServer(async ({ server }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      // The CONFIG + REPLY_ACK run of §5.2 (mask 0x208).
      await fe.handshake(bit(ProtocolFeature.CONFIG) | bit(ProtocolFeature.REPLY_ACK));
      for (let start = 0; start < 3; start++) {
        fe.ringBase = 0x1_0000 * (start + 1);
        await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "table" });
        const done = await fe.request(RequestType.IN, start, { gpa: DATA_BUFFER, length: 512 });
        assert.equal(done.status, RequestStatus.OK);
        assert.equal(server.session?.regions.length, 1, "one region mapped, not one per start");
        assert.equal(await fe.stopRing(), 1);
      }
    } finally {
      fe.close();
    }
    // CONFIG only (mask 0x200): no REPLY_ACK, so SET_MEM_TABLE comes without NEED_REPLY and
    // gets no reply at all (the next message read must be the GET_VRING_BASE answer).
    const plain = FakeFrontEnd.connect(server.socketPath);
    try {
      const { protocol } = await plain.handshake(bit(ProtocolFeature.CONFIG));
      assert.equal(protocol, bit(ProtocolFeature.CONFIG));
      for (let start = 0; start < 2; start++) {
        plain.ringBase = 0x1_0000 * (start + 1);
        await plain.startRing({
          features: QemuFeatures.LINUX_MODERN,
          memory: "table",
          acked: false,
        });
        const done = await plain.request(RequestType.IN, start, { gpa: DATA_BUFFER, length: 512 });
        assert.equal(done.status, RequestStatus.OK);
        assert.equal(server.session?.regions.length, 1);
        assert.equal(await plain.stopRing(), 1, "answered: no stray ack came before it");
      }
    } finally {
      plain.close();
    }
  });
});

Deno.test("vhost-user: SET_VRING_CALL replaces the call fd; interrupts go to the new one only", async () => {
  await withServer(async ({ server }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      await fe.handshake();
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
      assert.equal(
        (await fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 })).status,
        RequestStatus.OK,
      );
      const old = fe.setCall();
      // Kicks and messages travel on different fds: a reply orders them.
      await fe.getU64(Request.GET_FEATURES);
      try {
        const done = await fe.request(RequestType.IN, 1, { gpa: DATA_BUFFER, length: 512 });
        assert.equal(done.status, RequestStatus.OK);
        // The in-process engine signals before the request is seen complete: whatever the
        // back end sent the old fd is in its counter by now. Read without waiting.
        assert.equal(drainEventFd(old), 0, "the replaced call fd stays quiet");
      } finally {
        closeFd(old);
      }
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: SET_CONFIG toggles the write cache; GET_CONFIG shows it and it survives a new memory table", async () => {
  await withServer(async ({ server }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    const writeback = async () => {
      fe.send(
        Request.GET_CONFIG,
        encodeConfig({ offset: 0, size: 57, flags: 0, data: new Uint8Array(57) }),
      );
      return decodeConfig((await fe.reply(Request.GET_CONFIG)).payload)!.data[32];
    };
    try {
      await fe.handshake();
      assert.equal(await writeback(), 0, "write-through by default");
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "table" });
      // §8: flags 0x9, offset 32, size 1, payload 0x01.
      const ack = await fe.acked(
        Request.SET_CONFIG,
        encodeConfig({ offset: 32, size: 1, flags: 0, data: new Uint8Array([1]) }),
      );
      assert.equal(ack, 0n);
      assert.equal(await writeback(), 1);
      assert.equal(server.session?.device.state.writeCache, true, "FLUSH negotiated: write-back");
      await fe.stopRing();
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "table" });
      assert.equal(await writeback(), 1, "the device built for the new table keeps it");
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: unknown and malformed requests are refused with a failing ack and the session goes on", async () => {
  await withServer(async ({ server, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      await fe.handshake();
      assert.notEqual(await fe.acked(Request.RESET_DEVICE), 0n, "not offered, refused");
      assert.notEqual(await fe.acked(Request.SET_FEATURES, new Uint8Array(3)), 0n);
      // A queue size above the back end's maximum is refused, not clamped.
      assert.notEqual(
        await fe.acked(Request.SET_VRING_NUM, new Uint8Array([0, 0, 0, 0, 0, 0x80, 0, 0])),
        0n,
      );
      for (
        const line of [
          /request 34 refused: not supported/,
          /request 2 refused/,
          /queue size 32768 refused/,
          /request 8 refused/,
        ]
      ) {
        assert.ok(logs.some((logged) => line.test(logged)), `logged: ${line} in ${logs}`);
      }
      assert.equal((await fe.getU64(Request.GET_FEATURES)) !== 0n, true, "still serving");
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: a message with more fds than the back end takes (MSG_CTRUNC) is answered when it needs none, and refused when it needs them", async () => {
  await withServer(async ({ server, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    const fds = Array.from({ length: MAX_FDS_PER_MESSAGE + 1 }, () => createEventFd());
    try {
      await fe.handshake();
      const header = new MessageHeader(fds.length);
      const send = (request: number, flags: number, payload?: Uint8Array) =>
        sendWithFds(header, fe.connection.fd, encodeMessage(request, flags, payload), fds);
      // QEMU waits for this reply (§4.1): a refusal without one would hang it.
      send(Request.GET_QUEUE_NUM, HeaderFlag.VERSION);
      const queues = await within(
        fe.reply(Request.GET_QUEUE_NUM),
        10_000,
        "GET_QUEUE_NUM answered",
      );
      assert.equal(decodeU64(queues.payload), 1n);
      send(Request.SET_VRING_CALL, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY, encodeU64(0n));
      const ack = await within(fe.reply(Request.SET_VRING_CALL), 10_000, "SET_VRING_CALL acked");
      assert.notEqual(decodeU64(ack.payload), 0n, "a call fd that may be lost is refused");
      assert.ok(logs.some((line) => /request 13 refused: .*MSG_CTRUNC/.test(line)), `${logs}`);
    } finally {
      fds.forEach(closeFd);
      fe.close();
    }
  });
});

Deno.test("vhost-user: a kick fd that is not an eventfd (a pipe at end of file) ends its watch with a log line that says so; the session goes on", async () => {
  await withServer(async ({ server, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      await fe.handshake();
      const pipe = makeFd("pipe-read-no-writer", new Random(1));
      fe.send(Request.SET_VRING_KICK, encodeU64(0n), { fds: [pipe] });
      closeFd(pipe);
      await eventually(() => logs.some((line) => line.includes("kick fd failed")), "the log line");
      assert.ok(logs.some((line) => /kick fd failed: .*not an eventfd/.test(line)), `${logs}`);
      assert.notEqual(await fe.getU64(Request.GET_FEATURES), 0n, "still serving");
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: ring addresses outside guest memory signal the err fd", async () => {
  await withServer(async ({ server, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      await fe.handshake();
      // The descriptor table 16 bytes before the end of guest memory: it does not fit.
      await fe.startRing({
        features: QemuFeatures.LINUX_MODERN,
        memory: "add",
        desc: fe.memoryBytes - 16,
      });
      assert.ok(await fe.interrupted(fe.err), "err fd signalled");
      assert.ok(logs.some((line) => line.includes("outside the guest memory")));
      assert.equal(await fe.stopRing(), 0, "never started");
      // A correct start afterwards works.
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN });
      const done = await fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(done.status, RequestStatus.OK);
    } finally {
      fe.close();
    }
  });
});

Deno.test("vhost-user: end of file drops the mappings and the next connection is served", async () => {
  await withServer(async ({ server }) => {
    const first = FakeFrontEnd.connect(server.socketPath);
    await first.handshake();
    await first.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
    const data = pattern(512, 3);
    first.bytes.set(data, DATA_BUFFER);
    await first.request(RequestType.OUT, 5, { gpa: DATA_BUFFER, length: 512 });
    const session = server.session!;
    assert.equal(session.regions.length, 1);
    // QEMU killed: no stop message, just EOF.
    first.close();
    await eventually(() => server.session === undefined, "the session ends at EOF");
    assert.equal(session.regions.length, 0, "mappings dropped");

    const second = FakeFrontEnd.connect(server.socketPath);
    try {
      await second.handshake();
      await second.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
      const read = await second.request(RequestType.IN, 5, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(read.status, RequestStatus.OK);
      assert.deepEqual(second.bytes.subarray(DATA_BUFFER, DATA_BUFFER + 512), data);
      assert.equal(server.connections, 2);
    } finally {
      second.close();
    }
  });
});

Deno.test("vhost-user: a read-only disk offers RO and fails writes", async () => {
  await withServer(async ({ server, disk }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    try {
      const { features } = await fe.handshake();
      assert.ok(features & bit(BlkFeature.RO));
      await fe.startRing({
        features: QemuFeatures.LINUX_MODERN | bit(BlkFeature.RO),
        memory: "add",
      });
      fe.bytes.fill(1, DATA_BUFFER, DATA_BUFFER + 512);
      const write = await fe.request(RequestType.OUT, 0, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(write.status, RequestStatus.IOERR);
      assert.ok(disk.every((b) => b === 0), "the disk is unchanged");
    } finally {
      fe.close();
    }
  }, { readOnly: true });
});

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `vhost-user (worker engine, ${io.name}): a ring stop lets requests in flight complete, so the reported base loses none`,
    ignore: io.skip.ignore,
    async fn() {
      using medium = io.medium(DISK_BYTES);
      await withServer(async ({ server }) => {
        const fe = FakeFrontEnd.connect(server.socketPath);
        try {
          await fe.handshake();
          await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
          const heads: { head: number; status: number }[] = [];
          for (let i = 0; i < 32; i++) {
            heads.push(
              fe.post(RequestType.IN, 8 * i, { gpa: DATA_BUFFER + 4096 * i, length: 4096 }),
            );
          }
          fe.kickRing();
          const base = await fe.stopRing();
          const used = fe.takeUsed();
          assert.equal(used.length, base, "every request taken off the ring was completed");
          for (const { id } of used) {
            const request = heads.find((h) => h.head === id)!;
            assert.equal(fe.bytes[request.status], RequestStatus.OK);
          }
          // Nothing completes after the stop returned (io_uring: no operation left in flight).
          await new Promise((resolve) => setTimeout(resolve, 50));
          assert.deepEqual(fe.takeUsed(), [], "no completion after the ring stopped");
        } finally {
          fe.close();
        }
      }, { engine: workerEngine({ workers: 2 }), medium });
    },
  });
}

for (const io of IO_VARIANTS) {
  Deno.test({
    name:
      `vhost-user (worker engine, ${io.name}): mq=2 serves two rings independently (num-queues=2), each interrupting on its own call fd; stopping one leaves the other running, and RESET_OWNER stops both`,
    ignore: io.skip.ignore,
    async fn() {
      using medium = io.medium(DISK_BYTES);
      await withServer(async ({ server }) => {
        const fe = FakeFrontEnd.connect(server.socketPath, { queues: 2 });
        try {
          // GET_QUEUE_NUM answers 2 (asserted by the handshake) and config num_queues is 2.
          const { features } = await fe.handshake();
          assert.ok(features & bit(BlkFeature.MQ), "VIRTIO_BLK_F_MQ offered");
          fe.send(
            Request.GET_CONFIG,
            encodeConfig({ offset: 0, size: 57, flags: 0, data: new Uint8Array(57) }),
          );
          const config = decodeConfig((await fe.reply(Request.GET_CONFIG)).payload)!;
          assert.equal(config.data[34] | (config.data[35] << 8), 2, "num_queues (offset 34)");
          const modern = QemuFeatures.LINUX_MODERN | bit(BlkFeature.MQ);
          await fe.startRing({ features: modern, memory: "add", queue: 0 });
          await fe.startRing({ features: modern, queue: 1 });

          // Both rings at once: ring 0 writes sectors 0.., ring 1 sectors 512..
          const buffer = (queue: number, i: number) => DATA_BUFFER + 0x4_0000 * queue + 4096 * i;
          const posted = [0, 1].map((queue) =>
            Array.from({ length: 16 }, (_, i) => {
              fe.bytes.set(pattern(4096, 16 * queue + i), buffer(queue, i));
              return fe.post(RequestType.OUT, 512 * queue + 8 * i, {
                gpa: buffer(queue, i),
                length: 4096,
              }, queue);
            })
          );
          fe.kickRing(0);
          fe.kickRing(1);
          for (const queue of [0, 1]) {
            const used: { id: number }[] = [];
            while (used.length < 16) {
              assert.ok(await fe.interrupted(fe.callOf(queue)), `ring ${queue} interrupts`);
              used.push(...fe.takeUsed(queue));
            }
            assert.deepEqual(
              used.map((u) => u.id).sort((a, b) => a - b),
              posted[queue].map((p) => p.head).sort((a, b) => a - b),
              `ring ${queue} returns its own heads, once each`,
            );
            for (const p of posted[queue]) assert.equal(fe.bytes[p.status], RequestStatus.OK);
          }
          // Read back across the rings: ring 1 reads what ring 0 wrote, and the other way round.
          for (const queue of [0, 1]) {
            const other = 1 - queue;
            const read = await fe.request(RequestType.IN, 512 * other, {
              gpa: buffer(queue, 15),
              length: 4096,
            }, queue);
            assert.equal(read.status, RequestStatus.OK);
            assert.deepEqual(
              fe.bytes.subarray(buffer(queue, 15), buffer(queue, 15) + 4096),
              pattern(4096, 16 * other),
            );
          }

          // Stopping ring 1 reports its position and leaves ring 0 serving.
          assert.equal(await fe.stopRing(1), 17, "ring 1 took 16 writes and one read");
          const stillServed = await fe.request(RequestType.IN, 0, {
            gpa: buffer(0, 0),
            length: 512,
          }, 0);
          assert.equal(stillServed.status, RequestStatus.OK);

          // A reset (RESET_OWNER) stops every ring: a kick on ring 0 is no longer served.
          await fe.startRing({ features: modern, queue: 1 });
          assert.equal(await fe.acked(Request.RESET_OWNER), 0n);
          fe.post(RequestType.IN, 0, { gpa: buffer(0, 1), length: 512 }, 0);
          fe.post(RequestType.IN, 0, { gpa: buffer(1, 1), length: 512 }, 1);
          fe.kickRing(0);
          fe.kickRing(1);
          assert.equal(await fe.interrupted(fe.callOf(0), 200), false, "ring 0 stopped");
          assert.equal(await fe.interrupted(fe.callOf(1), 200), false, "ring 1 stopped");
          assert.deepEqual([fe.takeUsed(0), fe.takeUsed(1)], [[], []]);
        } finally {
          fe.close();
        }
      }, { engine: workerEngine({ workers: 2 }), medium, queues: 2 });
    },
  });
}

Deno.test("vhost-user: a region reaching past the end of its memory file is refused (touching it would raise SIGBUS)", async () => {
  await withServer(async ({ server, logs }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    const short = createMemoryFile("short-guest-ram", 64 << 10);
    try {
      await fe.handshake();
      const tooLong = { ...fe.region(), size: 1n << 20n };
      assert.notEqual(
        await fe.acked(Request.ADD_MEM_REG, encodeSingleRegion(tooLong), [short]),
        0n,
        "ADD_MEM_REG refused",
      );
      assert.notEqual(
        await fe.acked(Request.SET_MEM_TABLE, encodeMemoryTable([tooLong]), [short]),
        0n,
        "SET_MEM_TABLE refused",
      );
      const pastEnd = { ...fe.region(), size: 60n << 10n, mmapOffset: 8n << 10n };
      assert.notEqual(
        await fe.acked(Request.ADD_MEM_REG, encodeSingleRegion(pastEnd), [short]),
        0n,
        "mmap offset + size beyond the file refused",
      );
      assert.equal(server.session!.regions.length, 0, "nothing was mapped");
      assert.ok(logs.some((line) => line.includes("past the end of its file")));
      // A region its file covers is served as usual.
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
      const done = await fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(done.status, RequestStatus.OK);
    } finally {
      closeFd(short);
      fe.close();
    }
  });
});

Deno.test("vhost-user: a memory file not sealed against shrinking is refused, and the log says how to give QEMU one", async () => {
  await withServer(async ({ server, logs, dir }) => {
    const fe = FakeFrontEnd.connect(server.socketPath);
    const unsealed = createMemoryFile("unsealed-guest-ram", 1 << 20, { sealed: false });
    // What memory-backend-file hands over: a plain file (on /dev/shm, tmpfs won't seal it).
    const path = `${dir}/guest-ram`;
    await Deno.writeFile(path, new Uint8Array(1 << 20));
    const plainFile = libc().open(cString(path), Sys.O_RDWR | Sys.O_CLOEXEC);
    assert.ok(plainFile >= 0);
    try {
      await fe.handshake();
      assert.notEqual(
        await fe.acked(Request.ADD_MEM_REG, encodeSingleRegion(fe.region()), [unsealed]),
        0n,
        "an unsealed memfd is refused",
      );
      assert.notEqual(
        await fe.acked(Request.SET_MEM_TABLE, encodeMemoryTable([fe.region()]), [plainFile]),
        0n,
        "a file that cannot be sealed is refused",
      );
      assert.equal(server.session!.regions.length, 0, "nothing was mapped");
      const refusals = logs.filter((line) => line.includes("not sealed against shrinking"));
      assert.equal(refusals.length, 2, logs.join("\n"));
      assert.ok(refusals.every((line) => line.includes("memory-backend-memfd")));
      // QEMU's memfds are sealed: served as usual.
      await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory: "add" });
      const done = await fe.request(RequestType.IN, 0, { gpa: DATA_BUFFER, length: 512 });
      assert.equal(done.status, RequestStatus.OK);
    } finally {
      closeFd(unsealed);
      closeFd(plainFile);
      fe.close();
    }
  });
});

/**
 * Puts `count` requests on the fake's ring (from its start), each an indirect
 * table of `entries` descriptors: 16-byte readable buffers, then the status
 * byte. Slow to walk, and answered IOERR (readable data on a read).
 */
function postIndirect(fe: FakeFrontEnd, count: number, entries: number, tables: number): void {
  const { desc, avail } = fe.ringAddresses();
  for (let k = 0; k < count; k++) {
    const table = tables + k * entries * DESCRIPTOR_SIZE;
    for (let e = 0; e < entries; e++) {
      const at = table + e * DESCRIPTOR_SIZE;
      const last = e === entries - 1;
      fe.view.setBigUint64(at, BigInt(last ? DATA_BUFFER + k : DATA_BUFFER + 512), true);
      fe.view.setUint32(at + 8, last ? 1 : 16, true);
      fe.view.setUint16(at + 12, last ? DescriptorFlag.WRITE : DescriptorFlag.NEXT, true);
      fe.view.setUint16(at + 14, last ? 0 : e + 1, true);
    }
    fe.view.setBigUint64(desc + k * DESCRIPTOR_SIZE, BigInt(table), true);
    fe.view.setUint32(desc + k * DESCRIPTOR_SIZE + 8, entries * DESCRIPTOR_SIZE, true);
    fe.view.setUint16(desc + k * DESCRIPTOR_SIZE + 12, DescriptorFlag.INDIRECT, true);
    fe.view.setUint16(avail + AvailRing.RING + 2 * k, k, true);
  }
  fe.view.setUint16(avail + AvailRing.IDX, count, true);
}

Deno.test("vhost-user (worker engine): a ring stop while a worker is still taking requests one by one loses none", async () => {
  await withServer(async ({ server }) => {
    const fe = FakeFrontEnd.connect(server.socketPath, { memoryBytes: 4 << 20 });
    try {
      await fe.handshake();
      // One pool element: the worker takes a request off the ring only once the last one
      // is done, and a long indirect chain keeps it a while in the middle of taking one.
      for (let round = 0; round < 20; round++) {
        const memory = round === 0 ? "add" : "none";
        await fe.startRing({ features: QemuFeatures.LINUX_MODERN, memory });
        postIndirect(fe, 128, 1024, 1 << 20);
        fe.kickRing();
        const base = await fe.stopRing();
        const used = fe.takeUsed().length;
        assert.equal(used, base, `round ${round}: every request taken was completed`);
      }
    } finally {
      fe.close();
    }
  }, { engine: workerEngine({ workers: 1, poolSize: 1 }) });
});
