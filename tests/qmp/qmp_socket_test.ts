/**
 * The QMP control socket over a real Unix socket, as QEMU 7.2's clients
 * see it: the greeting and negotiation, each command's reply and error
 * shapes (QEMU's classes and messages, the `id` echoed), events, and an
 * untrusted peer: malformed, oversized and fragmented input, a client that
 * leaves in the middle of a command, several clients, one too many, and one
 * that never reads.
 */

import assert from "node:assert/strict";
import { describeFile } from "../../src/backend/file_spec.ts";
import { noMedium } from "../../src/backend/no_medium.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { createVirtioBlkPci, type VirtioBlkPci } from "../../src/dm/virtio_blk_pci.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import type { MediumHolder, QmpDrive } from "../../src/qmp/drive.ts";
import { QmpServer, type QmpServerOptions } from "../../src/qmp/server.ts";
import { QmpClient, type QmpMessage } from "../helpers/qmp_client.ts";

const MiB = 1 << 20;

interface Rig {
  dir: string;
  path: string;
  /** The file behind virtio0 (1 MiB). */
  image: string;
  disks: VirtioBlkPci[];
  server: QmpServer;
  quits: number;
  /** What the server logged (disconnected clients). */
  logs: string[];
}

/**
 * A QMP server over two drives: virtio0 (vda) on a 1 MiB file, and
 * virtio1 (vdb), an empty removable drive that takes files as media.
 */
async function withRig(
  body: (rig: Rig) => Promise<void>,
  options: Partial<QmpServerOptions> & {
    /** Medium changes on virtio0 wait for this (a command that takes as long as a test says). */
    mediumGate?: Promise<void>;
  } = {},
): Promise<void> {
  const { mediumGate, ...serverOptions } = options;
  const dir = await Deno.makeTempDir({ prefix: "qmp-socket-" });
  const image = `${dir}/disk.img`;
  await Deno.writeFile(image, new Uint8Array(MiB));
  const memory = SharedGuestMemory.allocate(4 * MiB);
  const engine = (context: ConstructorParameters<typeof InlineEngine>[0]) =>
    new InlineEngine(context);
  const disks = [
    createVirtioBlkPci(memory, { backend: describeFile(image), engine }),
    createVirtioBlkPci(memory, { backend: noMedium(), engine }),
  ];
  const drives: QmpDrive[] = [
    {
      device: "virtio0",
      qdev: "virtio-disk0",
      nodeName: "vda",
      holder: mediumGate === undefined ? disks[0].device : gated(disks[0].device, mediumGate),
    },
    {
      device: "virtio1",
      qdev: "virtio-disk1",
      nodeName: "vdb",
      holder: disks[1].device,
      openMedium: (path, readOnly) => describeFile(path, { readOnly }),
      fields: { slot: "10" },
    },
  ];
  const rig: Rig = {
    dir,
    path: `${dir}/qmp.sock`,
    image,
    disks,
    server: undefined!,
    quits: 0,
    logs: [],
  };
  rig.server = await QmpServer.listen({
    path: rig.path,
    drives,
    onQuit: () => rig.quits++,
    log: (message) => rig.logs.push(message),
    ...serverOptions,
  });
  try {
    await body(rig);
  } finally {
    await rig.server.close();
    for (const disk of disks) await disk.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The device as a drive's holder, its medium changes held until `gate` resolves. */
function gated(device: MediumHolder, gate: Promise<void>): MediumHolder {
  return {
    get medium() {
      return device.medium;
    },
    get readOnly() {
      return device.readOnly;
    },
    get writeback() {
      return device.writeback;
    },
    changeMedium: async (backend) => {
      await gate;
      await device.changeMedium(backend);
    },
  };
}

function error(reply: QmpMessage, errorClass: string, desc: string | RegExp): void {
  assert.ok("error" in reply, `an error reply, got ${JSON.stringify(reply)}`);
  assert.equal(reply.error.class, errorClass, JSON.stringify(reply));
  if (typeof desc === "string") assert.equal(reply.error.desc, desc);
  else assert.match(reply.error.desc, desc);
  assert.deepEqual(Object.keys(reply.error).sort(), ["class", "desc"]);
}

Deno.test("qmp: the greeting, then CommandNotFound until qmp_capabilities, which works once", async () => {
  await withRig(async ({ path }) => {
    const client = await QmpClient.connect(path);
    try {
      const greeting = await client.next();
      assert.deepEqual(Object.keys(greeting), ["QMP"]);
      assert.deepEqual(greeting.QMP.capabilities, [], "no out-of-band capability offered");
      assert.deepEqual(greeting.QMP.version.qemu, { major: 7, minor: 2, micro: 0 });
      assert.equal(typeof greeting.QMP.version.package, "string");

      for (const command of ["query-block", "quit", "no-such-command"]) {
        error(
          await client.command(command),
          "CommandNotFound",
          "Expecting capabilities negotiation with 'qmp_capabilities'",
        );
      }
      error(
        await client.command("qmp_capabilities", { enable: ["oob"] }),
        "GenericError",
        "Capability 'oob' not available",
      );
      error(
        await client.command("qmp_capabilities", { enable: ["turbo"] }),
        "GenericError",
        "Parameter 'enable' does not accept value 'turbo'",
      );
      assert.deepEqual(await client.command("qmp_capabilities", undefined, 1), {
        return: {},
        id: 1,
      });
      error(
        await client.command("qmp_capabilities"),
        "CommandNotFound",
        "Capabilities negotiation is already complete, command ignored",
      );
      assert.equal((await client.command("query-status")).return.status, "running");
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: every reply echoes the command's id, whatever JSON it is, errors included", async () => {
  await withRig(async ({ path }) => {
    const client = await QmpClient.connect(path, { negotiate: true });
    try {
      for (const id of [7, "abc", { nested: [1, null] }, null, false]) {
        assert.deepEqual((await client.command("query-status", undefined, id)).id, id);
        assert.deepEqual((await client.command("no-such", undefined, id)).id, id);
      }
      const unknown = await client.command("no-such", undefined, "x");
      error(unknown, "CommandNotFound", "The command no-such has not been found");
      // A malformed command with an id: QEMU echoes it too.
      client.send(`{"execute": "query-status", "id": 5, "bogus": 1}`);
      const bogus = await client.next();
      error(bogus, "GenericError", "QMP input member 'bogus' is unexpected");
      assert.equal(bogus.id, 5);
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: query-block in QEMU's shape: a drive with its medium, an empty removable one", async () => {
  await withRig(async ({ path, image }) => {
    const client = await QmpClient.connect(path, { negotiate: true });
    try {
      const [vda, vdb] = (await client.command("query-block")).return;
      assert.deepEqual(
        {
          ...vda,
          inserted: { ...vda.inserted, cache: undefined, image: undefined },
        },
        {
          device: "virtio0",
          qdev: "virtio-disk0",
          type: "unknown",
          removable: false,
          locked: false,
          "io-status": "ok",
          inserted: {
            file: image,
            "node-name": "vda",
            ro: false,
            drv: "raw",
            backing_file_depth: 0,
            encrypted: false,
            detect_zeroes: "off",
            bps: 0,
            bps_rd: 0,
            bps_wr: 0,
            iops: 0,
            iops_rd: 0,
            iops_wr: 0,
            write_threshold: 0,
            cache: undefined,
            image: undefined,
          },
        },
      );
      assert.deepEqual(vda.inserted.cache, { writeback: false, direct: false, "no-flush": false });
      assert.deepEqual(vda.inserted.image, {
        filename: image,
        format: "raw",
        "virtual-size": MiB,
        "dirty-flag": false,
      });
      assert.equal("tray_open" in vda, false, "only a removable drive has a tray");
      assert.deepEqual(vdb, {
        device: "virtio1",
        qdev: "virtio-disk1",
        type: "unknown",
        removable: true,
        locked: false,
        tray_open: false,
        "io-status": "ok",
        slot: "10",
      });
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: block_resize by device or node-name changes the file, the device and query-block; bad arguments are refused", async () => {
  await withRig(async ({ path, image, disks }) => {
    const client = await QmpClient.connect(path, { negotiate: true });
    try {
      const size = async () => (await client.command("query-block")).return[0].inserted.image;
      assert.deepEqual(
        await client.command("block_resize", { device: "virtio0", size: 2 * MiB }, "grow"),
        { return: {}, id: "grow" },
      );
      assert.equal(Deno.statSync(image).size, 2 * MiB, "the file grew");
      assert.equal(disks[0].device.capacity, 2 * MiB / 512, "the device grew");
      assert.equal((await size())["virtual-size"], 2 * MiB);
      assert.deepEqual(
        await client.command("block_resize", { "node-name": "vda", size: MiB / 2 }),
        { return: {} },
      );
      assert.equal(Deno.statSync(image).size, MiB / 2, "the file shrank");
      assert.equal(disks[0].device.capacity, MiB / 2 / 512);

      const refusals: [Record<string, unknown>, string, string | RegExp][] = [
        [{ device: "virtio0" }, "GenericError", "Parameter 'size' is missing"],
        [
          { device: "virtio0", size: "1M" },
          "GenericError",
          "Invalid parameter type for 'size', expected: integer",
        ],
        [
          { device: "virtio0", size: 1.5 },
          "GenericError",
          "Invalid parameter type for 'size', expected: integer",
        ],
        [
          { device: "virtio0", size: MiB, speed: 1 },
          "GenericError",
          "Parameter 'speed' is unexpected",
        ],
        [{ device: "virtio0", size: -512 }, "GenericError", "Parameter 'size' expects a >0 size"],
        [{ device: "virtio0", size: 0 }, "GenericError", "Parameter 'size' expects a >0 size"],
        [
          { device: "virtio0", size: 2 ** 60 },
          "GenericError",
          "Parameter 'size' expects a >0 size",
        ],
        [{ device: "virtio0", size: 1000 }, "GenericError", /a multiple of 512 bytes/],
        [
          { device: "nope", size: MiB },
          "GenericError",
          `Cannot find device="nope" nor node-name=""`,
        ],
        [{ size: MiB }, "GenericError", `Cannot find device="" nor node-name=""`],
        [{ device: "virtio1", size: MiB }, "GenericError", "Device 'virtio1' has no medium"],
        [{ device: 5, size: MiB }, "GenericError", /Invalid parameter type for 'device'/],
      ];
      for (const [args, errorClass, desc] of refusals) {
        error(await client.command("block_resize", args), errorClass, desc);
      }
      assert.equal(Deno.statSync(image).size, MiB / 2, "no refusal touched the file");
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: eject and blockdev-change-medium on a removable drive, with DEVICE_TRAY_MOVED; a fixed drive refuses both", async () => {
  await withRig(async ({ path, dir, disks }) => {
    const client = await QmpClient.connect(path, { negotiate: true });
    try {
      const medium = `${dir}/medium.img`;
      await Deno.writeFile(medium, new Uint8Array(2 * MiB));
      assert.deepEqual(
        await client.command("blockdev-change-medium", { device: "virtio1", filename: medium }),
        { return: {} },
      );
      assert.deepEqual(
        client.events.map((e) => [e.event, e.data]),
        [
          ["DEVICE_TRAY_MOVED", { device: "virtio1", id: "virtio-disk1", "tray-open": true }],
          ["DEVICE_TRAY_MOVED", { device: "virtio1", id: "virtio-disk1", "tray-open": false }],
        ],
        "the tray opens for the change and closes on the new medium, as QEMU's",
      );
      for (const event of client.events) {
        assert.equal(typeof event.timestamp.seconds, "number");
        assert.equal(typeof event.timestamp.microseconds, "number");
      }
      assert.equal(disks[1].device.capacity, 2 * MiB / 512);
      const vdb = (await client.command("query-block")).return[1];
      assert.equal(vdb.tray_open, false);
      assert.equal(vdb.inserted.file, medium);
      assert.equal(vdb.inserted.ro, false);

      client.events.length = 0;
      assert.deepEqual(await client.command("eject", { id: "virtio-disk1" }), { return: {} });
      assert.deepEqual(client.events.map((e) => e.data["tray-open"]), [true]);
      assert.equal(disks[1].device.capacity, 0);
      const ejected = (await client.command("query-block")).return[1];
      assert.equal(ejected.tray_open, true);
      assert.equal("inserted" in ejected, false);

      // Read-only on request, then kept by "retain" for the next one.
      await client.command("blockdev-change-medium", {
        device: "virtio1",
        filename: medium,
        "read-only-mode": "read-only",
      });
      assert.equal((await client.command("query-block")).return[1].inserted.ro, true);
      await client.command("blockdev-change-medium", { device: "virtio1", filename: medium });
      assert.equal((await client.command("query-block")).return[1].inserted.ro, true);

      const refusals: [string, Record<string, unknown>, string, string | RegExp][] = [
        ["eject", { device: "virtio0" }, "GenericError", "Device 'virtio0' is not removable"],
        [
          "blockdev-change-medium",
          { device: "virtio0", filename: medium },
          "GenericError",
          "Device 'virtio0' is not removable",
        ],
        ["eject", { device: "nope" }, "DeviceNotFound", "Device 'nope' not found"],
        ["eject", { id: "nope" }, "DeviceNotFound", "Device 'nope' not found"],
        ["eject", {}, "GenericError", "Need exactly one of 'device' and 'id'"],
        [
          "eject",
          { device: "virtio1", id: "virtio-disk1" },
          "GenericError",
          "Need exactly one of 'device' and 'id'",
        ],
        [
          "blockdev-change-medium",
          { device: "virtio1", filename: `${dir}/absent.img` },
          "GenericError",
          new RegExp(`^Could not open '${dir}/absent.img': `),
        ],
        [
          "blockdev-change-medium",
          { device: "virtio1", filename: medium, format: "qcow2" },
          "GenericError",
          "Parameter 'format' does not accept value 'qcow2'",
        ],
        [
          "blockdev-change-medium",
          { device: "virtio1", filename: medium, "read-only-mode": "sometimes" },
          "GenericError",
          "Parameter 'read-only-mode' does not accept value 'sometimes'",
        ],
        [
          "blockdev-change-medium",
          { device: "virtio1" },
          "GenericError",
          "Parameter 'filename' is missing",
        ],
      ];
      for (const [command, args, errorClass, desc] of refusals) {
        error(await client.command(command, args), errorClass, desc);
      }
      assert.equal(disks[0].device.capacity, MiB / 512, "the fixed drive kept its medium");
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: query-status, query-version and query-commands; quit answers, then SHUTDOWN, then stops", async () => {
  await withRig(async (rig) => {
    const client = await QmpClient.connect(rig.path, { negotiate: true });
    try {
      assert.deepEqual(await client.command("query-status"), {
        return: { status: "running", singlestep: false, running: true },
      });
      assert.deepEqual((await client.command("query-version")).return.qemu, {
        major: 7,
        minor: 2,
        micro: 0,
      });
      const names = (await client.command("query-commands")).return.map((c: QmpMessage) => c.name);
      for (
        const name of [
          "qmp_capabilities",
          "query-block",
          "block_resize",
          "eject",
          "blockdev-change-medium",
          "query-status",
          "quit",
        ]
      ) {
        assert.ok(names.includes(name), `${name} listed`);
      }
      error(
        await client.command("query-status", { verbose: true }),
        "GenericError",
        "Parameter 'verbose' is unexpected",
      );
      assert.equal(rig.quits, 0);
      assert.deepEqual(await client.command("quit", undefined, "bye"), { return: {}, id: "bye" });
      const shutdown = await client.event("SHUTDOWN");
      assert.deepEqual(shutdown.data, { guest: false, reason: "host-qmp-quit" });
      assert.equal(rig.quits, 1, "the host was told to stop");
      assert.equal((await client.command("query-status")).return.running, false);
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: malformed, oversized and fragmented input gets error replies and the conversation goes on", async () => {
  await withRig(async ({ path }) => {
    const client = await QmpClient.connect(path, { negotiate: true });
    try {
      const refused: [string, RegExp][] = [
        [`{"execute": nope}`, /^GenericError: JSON parse error, /],
        [`[1, 2]`, /^GenericError: QMP input must be a JSON object$/],
        [`42`, /^GenericError: QMP input must be a JSON object$/],
        [`garbage`, /^GenericError: JSON parse error, invalid token "garbage"$/],
        [`}`, /^GenericError: JSON parse error, invalid token "}"$/],
        [`{"arguments": {}}`, /^GenericError: QMP input lacks member 'execute'$/],
        [`{"execute": 5}`, /^GenericError: QMP input member 'execute' must be a string$/],
        [`{"execute": "query-status", "arguments": [1]}`, /'arguments' must be an object$/],
        [`{"execute": "query-status", "exec-oob": "x"}`, /member 'exec-oob' is unexpected$/],
        // Braces and an escaped quote inside a string do not end the text.
        [`{"execute": "q\\"}{"}`, /^CommandNotFound: The command q"\}\{ has not been found$/],
      ];
      for (const [text, desc] of refused) {
        client.send(text + "\n");
        const reply = await client.next();
        assert.ok("error" in reply, `${text}: ${JSON.stringify(reply)}`);
        assert.match(`${reply.error.class}: ${reply.error.desc}`, desc, text);
      }

      // Larger than a text may be (64 KiB): one error, and the next command is answered.
      client.send(`{"execute": "query-status", "arguments": {"x": "${"a".repeat(100_000)}"}}`);
      error(await client.next(), "GenericError", "JSON text longer than 65536 bytes");
      assert.equal((await client.command("query-status")).return.running, true);
      // Nested deeper than 64 levels.
      client.send(`{"a": ${"[".repeat(100)}${"]".repeat(100)}}`);
      error(await client.next(), "GenericError", "JSON nested deeper than 64 levels");

      // Back to back without newlines (Python's qemu.qmp), and one byte at a time.
      client.send(`{"execute":"query-status","id":1}{"execute":"query-status","id":2}`);
      assert.equal((await client.next()).id, 1);
      assert.equal((await client.next()).id, 2);
      for (const byte of new TextEncoder().encode(`{"execute": "query-status", "id": "é{"}`)) {
        client.send(new Uint8Array([byte]));
      }
      assert.equal((await client.next()).id, "é{", "a multi-byte character split across writes");
      // Binary junk: one error for it, and the stream goes on.
      client.send(new Uint8Array([0xff, 0xfe, 0x00, 0x0a]));
      assert.ok("error" in await client.next());
      assert.equal((await client.command("query-status")).return.running, true);
    } finally {
      client.close();
    }
  });
});

Deno.test("qmp: a client that leaves in the middle of a command: the command completes, others are served", async () => {
  await withRig(async ({ path, image, disks }) => {
    const leaving = await QmpClient.connect(path, { negotiate: true });
    leaving.send(JSON.stringify({
      execute: "block_resize",
      arguments: { device: "virtio0", size: 4 * MiB },
    }));
    leaving.close();
    const other = await QmpClient.connect(path, { negotiate: true });
    try {
      // The resize went through even though nobody reads its reply.
      while (
        (await other.command("query-block")).return[0].inserted.image["virtual-size"] !== 4 * MiB
      ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(Deno.statSync(image).size, 4 * MiB);
      assert.equal(disks[0].device.capacity, 4 * MiB / 512);
    } finally {
      other.close();
    }
  });
});

Deno.test("qmp: a client that shuts down its side after its commands (printf … | socat) gets every reply, then the end", async () => {
  // (Promise.withResolvers is not in Node 20.)
  let release = () => {};
  const gate = { promise: new Promise<void>((resolve) => (release = resolve)) };
  await withRig(async ({ path, dir, image, disks }) => {
    const medium = `${dir}/m.img`;
    await Deno.writeFile(medium, new Uint8Array(MiB));
    const client = await QmpClient.connect(path);
    try {
      client.send(
        [
          { execute: "qmp_capabilities" },
          { execute: "block_resize", arguments: { device: "virtio0", size: 2 * MiB }, id: 1 },
          { execute: "blockdev-change-medium", arguments: { device: "virtio1", filename: medium } },
          { execute: "query-status", id: 3 },
        ].map((command) => JSON.stringify(command)).join("\n") + '\n{"execute": "qu',
      );
      client.endInput();
      // The resize is held: the server must keep the connection for its reply.
      await Promise.race([client.ended(), new Promise((resolve) => setTimeout(resolve, 200))]);
      assert.equal(client.closed, false, "the connection is kept while a command runs");
      release();
      await client.ended();
      assert.ok("QMP" in await client.next());
      assert.deepEqual(await client.next(), { return: {} });
      assert.deepEqual(await client.next(), { return: {}, id: 1 }, "the resize is answered");
      assert.deepEqual(await client.next(), { return: {} }, "and so is what came after it");
      assert.equal((await client.next()).id, 3);
      await assert.rejects(
        client.next(),
        /closed the connection/,
        "the unfinished text is dropped",
      );
      assert.equal(Deno.statSync(image).size, 2 * MiB);
      assert.equal(disks[0].device.capacity, 2 * MiB / 512);
      assert.equal(disks[1].device.capacity, MiB / 512, "the medium went in");
    } finally {
      release();
      client.close();
    }
  }, { mediumGate: gate.promise });
});

Deno.test("qmp: two clients negotiate each for itself; events go to those in command mode", async () => {
  await withRig(async ({ path, dir }) => {
    const first = await QmpClient.connect(path, { negotiate: true });
    const second = await QmpClient.connect(path);
    try {
      assert.ok("QMP" in await second.next());
      error(await second.command("query-block"), "CommandNotFound", /capabilities negotiation/);
      const medium = `${dir}/m.img`;
      await Deno.writeFile(medium, new Uint8Array(MiB));
      await first.command("blockdev-change-medium", { device: "virtio1", filename: medium });
      assert.equal(first.events.length, 2);
      assert.equal(second.events.length, 0, "no events before negotiation");
      assert.deepEqual(await second.command("qmp_capabilities"), { return: {} });
      assert.deepEqual(await first.command("eject", { device: "virtio1" }), { return: {} });
      await second.event("DEVICE_TRAY_MOVED");
      assert.equal(second.events[0].data["tray-open"], true, "both hear the eject");
      assert.equal(first.events.length, 3);
      // Their commands do not mix: each gets its own replies.
      const [a, b] = await Promise.all([
        first.command("query-status", undefined, "first"),
        second.command("query-status", undefined, "second"),
      ]);
      assert.equal(a.id, "first");
      assert.equal(b.id, "second");
    } finally {
      first.close();
      second.close();
    }
  });
});

Deno.test("qmp: one client more than allowed is told so and disconnected", async () => {
  await withRig(async ({ path, server }) => {
    const clients = [
      await QmpClient.connect(path, { negotiate: true }),
      await QmpClient.connect(path, { negotiate: true }),
    ];
    const extra = await QmpClient.connect(path);
    try {
      error(await extra.next(), "GenericError", "QMP: at most 2 clients; disconnected");
      await extra.ended();
      assert.equal(server.clients, 2);
      clients[0].close();
      while (server.clients > 1) await new Promise((resolve) => setTimeout(resolve, 5));
      const next = await QmpClient.connect(path, { negotiate: true });
      next.close();
    } finally {
      for (const client of clients) client.close();
      extra.close();
    }
  }, { maxClients: 2 });
});

Deno.test("qmp: a client that never reads is disconnected, and the others are still answered", async () => {
  await withRig(async ({ path, server, logs }) => {
    const reader = await QmpClient.connect(path, { negotiate: true });
    const mute = await QmpClient.connect(path, { negotiate: true });
    try {
      // It stops reading and keeps asking: its replies pile up.
      mute.socket.pause();
      const ask = `${JSON.stringify({ execute: "query-block" })}\n`.repeat(200);
      while (!mute.closed && server.clients === 2) {
        mute.send(ask);
        assert.equal((await reader.command("query-status")).return.running, true);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      while (server.clients === 2) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(server.clients, 1, "the mute client was dropped");
      assert.deepEqual(logs, [
        "QMP: client disconnected: more than 65536 bytes of replies and events unread",
      ]);
      assert.equal((await reader.command("query-status")).return.running, true);
    } finally {
      reader.close();
      mute.close();
    }
  }, { maxUnsentBytes: 64 << 10 });
});
