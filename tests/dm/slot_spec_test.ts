import assert from "node:assert/strict";
import { diskConfig, parseSlotOption, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { ACRN_DEVICE_TYPES } from "../../src/dm/acrn_devices.ts";
import { MAX_QUEUES } from "../../src/blk/device.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { defaultSerial } from "../../src/blk/serial.ts";
import { WorkerEngine } from "../../src/blockif/worker_engine.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { isDeno } from "../../src/runtime/is_deno.ts";
import { FILE_DRIVER, type FileBackendSpec } from "../../src/backend/file_driver.ts";
import { ioUringUnavailable } from "../../src/io/io_uring/sys.ts";
import { isNoMedium } from "../../src/backend/no_medium.ts";
import { fileSpaceUnavailable } from "../../src/backend/file_space.ts";

Deno.test("a bare slot: function 0, write-through, 512-byte sectors, the whole file", () => {
  assert.deepEqual(parseSlotSpec("9,virtio-blk,disk.img"), {
    text: "9,virtio-blk,disk.img",
    slot: 9,
    func: 0,
    path: "disk.img",
    nodisk: false,
    optionString: "disk.img",
    readOnly: false,
    writeback: false,
    logicalBlockSize: 512,
    physicalBlockSize: 512,
    range: undefined,
    direct: false,
    discard: undefined,
    orderOverlapping: true,
    serial: undefined,
    io: undefined,
    queueSize: undefined,
    workers: undefined,
    poolSize: undefined,
    dispatch: undefined,
    pollUs: undefined,
    aio: undefined,
    iothreads: undefined,
    queues: undefined,
  });
});

Deno.test("slot:func and bus:slot:func (bus 0 only)", () => {
  assert.deepEqual(
    [parseSlotSpec("9:3,virtio-blk,a").slot, parseSlotSpec("9:3,virtio-blk,a").func],
    [9, 3],
  );
  assert.deepEqual([
    parseSlotSpec("0:7:1,virtio-blk,a").slot,
    parseSlotSpec("0:7:1,virtio-blk,a").func,
  ], [7, 1]);
});

Deno.test("ACRN's boot-device flag (virtio-blk,b,<path>) is taken and left out of the serial's source", () => {
  const spec = parseSlotSpec("3,virtio-blk,b,/home/clear.img,writeback");
  assert.equal(spec.path, "/home/clear.img");
  assert.equal(spec.writeback, true);
  assert.equal(spec.optionString, "/home/clear.img,writeback");
  // A file named b is still a file when nothing follows it.
  assert.equal(parseSlotSpec("3,virtio-blk,b").path, "b");
});

Deno.test("every other ACRN device type is accepted, not emulated, with one note; an unknown one is refused", () => {
  const silent = ["hostbridge", "amd_hostbridge"];
  for (const type of ACRN_DEVICE_TYPES) {
    if (type === "virtio-blk") continue;
    const where = silent.includes(type) ? "0:0" : "1:0";
    const option = parseSlotOption(`${where},${type},some,config`);
    assert.equal(option.kind, "other", type);
    if (option.kind !== "other") continue;
    assert.deepEqual(
      [option.device.emulation, option.device.slot, option.device.func],
      [type, Number(where[0]), 0],
    );
    if (silent.includes(type)) assert.equal(option.device.note, undefined, type);
    else assert.match(option.device.note ?? "", new RegExp(`^${type} is (not emulated|obsolete)`));
  }
  assert.deepEqual(parseSlotOption("1:0,lpc"), {
    kind: "other",
    device: {
      text: "1:0,lpc",
      emulation: "lpc",
      slot: 1,
      func: 0,
      takesSlot: true,
      note: "lpc is not emulated here (only virtio-blk is): slot 1:0 stays empty",
    },
  });
  // As ACRN does, obsolete types are ignored and hold no slot.
  const gvt = parseSlotOption("2,pci-gvt,-G,0x7b");
  assert.equal(gvt.kind === "other" && gvt.device.takesSlot, false);
  assert.throws(
    () => parseSlotOption("4,virtio-nic,tap0"),
    (e) => e instanceof VirtioBlkError && /unknown device type "virtio-nic"/.test(e.message),
  );
  assert.throws(
    () => parseSlotSpec("4,virtio-net,tap0"),
    (e) => e instanceof VirtioBlkError && /virtio-net is not emulated here/.test(e.message),
  );
});

Deno.test("writethru/writeback: the last one given wins", () => {
  assert.equal(parseSlotSpec("9,virtio-blk,a,writeback").writeback, true);
  assert.equal(parseSlotSpec("9,virtio-blk,a,writeback,writethru").writeback, false);
  assert.equal(parseSlotSpec("9,virtio-blk,a,writethru,writeback").writeback, true);
});

Deno.test("every option is parsed into its typed field", () => {
  const spec = parseSlotSpec(
    "4,virtio-blk,/dev/sdb1,ro,sectorsize=4096,range=16/1024,nocache,serial=DISK-7,queue_size=128," +
      "workers=2,pool_size=32,dispatch=device,io=node-fs,poll_us=0",
  );
  assert.equal(spec.readOnly, true);
  assert.deepEqual([spec.logicalBlockSize, spec.physicalBlockSize], [4096, 4096]);
  assert.deepEqual(spec.range, { start: 16, size: 1024 });
  assert.equal(spec.direct, true);
  assert.equal(spec.serial, "DISK-7");
  assert.deepEqual([spec.queueSize, spec.workers, spec.poolSize], [128, 2, 32]);
  assert.equal(spec.dispatch, "device");
  assert.equal(spec.io, "node-fs");
  assert.equal(spec.pollUs, 0);
  assert.equal(parseSlotSpec("4,virtio-blk,a,sectorsize=512/4096").physicalBlockSize, 4096);
});

Deno.test("ACRN's nodisk: an empty drive whose options are checked now for the media to come", async () => {
  const spec = parseSlotSpec("9,virtio-blk,nodisk,ro,sectorsize=4096");
  assert.equal(spec.nodisk, true);
  assert.equal(spec.path, "nodisk");
  const { device } = await diskConfig(spec);
  assert.ok(isNoMedium(device.backend), "no medium in it");
  assert.deepEqual([device.backend.size, device.backend.readOnly], [0, true]);
  assert.equal(device.logicalBlockSize, 4096);
  // A file of that name is ./nodisk.
  assert.equal(parseSlotSpec("9,virtio-blk,./nodisk").nodisk, false);
  for (
    const [text, message] of [
      ["9,virtio-blk,nodisk,range=0/8", /range= is a window of a file, and nodisk has none$/],
      ["9,virtio-blk,nodisk,sectorsize=1000", /logical block size 1000 is not a power of two$/],
    ] as const
  ) {
    await assert.rejects(
      async () => await diskConfig(parseSlotSpec(text)),
      (error: VirtioBlkError) => {
        assert.equal(error.code, "INVALID_CONFIG");
        assert.match(error.message, message);
        return true;
      },
    );
  }
});

Deno.test("ACRN's discard (bare: ACRN's defaults; =sectors:segments:alignment) and no_bst_block", () => {
  const bare = parseSlotSpec("4,virtio-blk,a,discard");
  assert.deepEqual(bare.discard, {}, "every field left to ACRN's default");
  assert.equal(bare.orderOverlapping, true);
  const full = parseSlotSpec("4,virtio-blk,a,discard=2048:4:8,no_bst_block");
  assert.deepEqual(full.discard, { maxSectors: 2048, maxSegments: 4, alignment: 8 });
  assert.equal(full.orderOverlapping, false);
  assert.deepEqual(parseSlotSpec("4,virtio-blk,a,discard=4294967295:256:0").discard, {
    maxSectors: 2 ** 32 - 1,
    maxSegments: 256,
    alignment: 0,
  });
  for (const bad of ["1:2", "1:2:3:4", ":1:0", "x:1:0", "1:0:0", "1:1:4294967296", "-1:1:0"]) {
    assert.throws(
      () => parseSlotSpec(`4,virtio-blk,a,discard=${bad}`),
      (e: VirtioBlkError) => e.code === "INVALID_CONFIG" && e.message.startsWith("-s 4,virtio-blk"),
      bad,
    );
  }
});

Deno.test("discard and no_bst_block reach the device's options", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(1 << 20));
    const config = await diskConfig(
      parseSlotSpec(`5,virtio-blk,${dir}/d.img,discard=64:2:8,no_bst_block`),
    );
    assert.deepEqual(config.device.discard, { maxSectors: 64, maxSegments: 2, alignment: 8 });
    assert.equal(config.device.orderOverlapping, false);
    const plain = await diskConfig(parseSlotSpec(`5,virtio-blk,${dir}/d.img`));
    assert.equal(plain.device.discard, undefined);
    assert.equal(plain.device.orderOverlapping, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a spec becomes a device configuration once its file checks out", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(1 << 20));
    const config = await diskConfig(
      parseSlotSpec(`5:1,virtio-blk,${dir}/d.img,writeback,range=8/64,sectorsize=4096`),
    );
    assert.deepEqual([config.slot, config.func], [5, 1]);
    assert.equal(config.device.writeback, true);
    assert.equal(config.device.logicalBlockSize, 4096);
    assert.deepEqual(
      { ...config.device.backend },
      {
        module: FILE_DRIVER,
        kind: "file",
        name: `${dir}/d.img bytes ${8 * 4096}-${72 * 4096}`,
        // Holes are punched through FFI (Deno); zeros can be written everywhere.
        capabilities: {
          flush: true,
          discard: fileSpaceUnavailable() === undefined,
          writeZeroes: true,
          handles: "per-thread",
        },
        path: `${dir}/d.img`,
        offset: 8 * 4096,
        size: 64 * 4096,
        windowed: true,
        readOnly: false,
        io: isDeno() ? "fsfile" : "node-fs",
        direct: false,
        aio: "threads",
        blockDevice: false,
      },
    );
    // ACRN derives the serial from the option string after "virtio-blk,".
    assert.equal(config.device.optionString, `${dir}/d.img,writeback,range=8/64,sectorsize=4096`);
    assert.equal(defaultSerial("test.img").length, 20);
    assert.match(defaultSerial("test.img"), /^ACRN--[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("engine options of a spec reach the engine the device runs on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(1 << 20));
    const specs = [
      [`7,virtio-blk,${dir}/d.img,workers=3,pool_size=16,dispatch=device,poll_us=64`, {
        workers: 3,
        poolSize: 16,
        dispatch: "device",
        pollUs: 64,
      }],
      [`7,virtio-blk,${dir}/d.img`, { workers: 8, poolSize: 64, dispatch: "worker", pollUs: 0 }],
    ] as const;
    for (const [text, expected] of specs) {
      const vm = await VirtualMachine.create({
        memoryBytes: 16 << 20,
        disks: [await diskConfig(parseSlotSpec(text))],
      });
      try {
        const engine = vm.disks[0].function.device.engine;
        assert.ok(engine instanceof WorkerEngine);
        assert.deepEqual({ ...engine.settings, wake: undefined }, { ...expected, wake: undefined });
      } finally {
        await vm.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ACRN's aio= and iothread (written before the path): parsed, checked, and iothread=N sizes the device's threads", async () => {
  const spec = parseSlotSpec("9,virtio-blk,iothread=2@0:1/1:0,disk.img,writeback,aio=io_uring");
  assert.equal(spec.path, "disk.img");
  assert.equal(spec.iothreads, 2);
  assert.equal(spec.aio, "io_uring");
  assert.equal(spec.writeback, true);
  assert.equal(parseSlotSpec("9,virtio-blk,iothread,disk.img").iothreads, 1);
  assert.equal(parseSlotSpec("9,virtio-blk,disk.img,aio=threads").aio, "threads");
  for (
    const [text, message] of [
      ["9,virtio-blk,iothread=0,disk.img", /iothread "0" must be a whole number from 1 to 64/],
      [
        "9,virtio-blk,iothread=two,disk.img",
        /"iothread=two" must be iothread\[=N\[@cpu:cpu\/…\]\]/,
      ],
      ["9,virtio-blk,disk.img,aio=posix", /aio must be threads or io_uring, not "posix"/],
    ] as const
  ) {
    assert.throws(() => parseSlotSpec(text), (error: unknown) => {
      assert.ok(error instanceof VirtioBlkError);
      assert.match(
        error.message,
        new RegExp(`^-s ${text.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&")}: `),
      );
      assert.match(error.message, message);
      return true;
    });
  }
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(1 << 20));
    const text = `7,virtio-blk,iothread=3,${dir}/d.img`;
    const vm = await VirtualMachine.create({
      memoryBytes: 16 << 20,
      disks: [await diskConfig(parseSlotSpec(text))],
    });
    try {
      const engine = vm.disks[0].function.device.engine;
      assert.ok(engine instanceof WorkerEngine);
      assert.equal(engine.settings.workers, 3);
    } finally {
      await vm.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ACRN's mq=N, before the path or among the options: N request queues, 1 to MAX_QUEUES", async () => {
  assert.equal(parseSlotSpec("9,virtio-blk,mq=2,disk.img").queues, 2);
  assert.equal(parseSlotSpec("9,virtio-blk,iothread=2,mq=4,disk.img").queues, 4);
  assert.equal(parseSlotSpec("9,virtio-blk,iothread=2,mq=4,disk.img").path, "disk.img");
  assert.equal(parseSlotSpec("9,virtio-blk,disk.img,mq=3").queues, 3);
  assert.equal(parseSlotSpec(`9,virtio-blk,disk.img,mq=${MAX_QUEUES}`).queues, MAX_QUEUES);
  const range = `must be a whole number from 1 to ${MAX_QUEUES}`;
  for (
    const [text, message] of [
      ["9,virtio-blk,mq=0,disk.img", `mq "0" ${range}`],
      [`9,virtio-blk,disk.img,mq=${MAX_QUEUES + 1}`, `mq "${MAX_QUEUES + 1}" ${range}`],
      ["9,virtio-blk,disk.img,mq=two", `mq "two" ${range}`],
      ["9,virtio-blk,disk.img,mq=-1", `mq "-1" ${range}`],
      ["9,virtio-blk,disk.img,mq=1.5", `mq "1.5" ${range}`],
      ["9,virtio-blk,disk.img,mq", "option mq needs a value (mq=…)"],
    ] as const
  ) {
    assert.throws(() => parseSlotSpec(text), (error: unknown) => {
      assert.ok(error instanceof VirtioBlkError);
      assert.equal(error.code, "INVALID_CONFIG");
      assert.equal(error.message, `-s ${text}: ${message}`);
      return true;
    });
  }
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(1 << 20));
    const config = await diskConfig(parseSlotSpec(`7,virtio-blk,mq=2,${dir}/d.img`));
    assert.equal(config.device.queues, 2);
    const vm = await VirtualMachine.create({ memoryBytes: 16 << 20, disks: [config] });
    try {
      assert.equal(vm.disks[0].function.device.queueCount, 2);
    } finally {
      await vm.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aio=io_uring where a ring can be set up; elsewhere one line naming what is missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/d.img`, new Uint8Array(1 << 20));
    const text = `7,virtio-blk,${dir}/d.img,aio=io_uring`;
    const unavailable = ioUringUnavailable();
    if (unavailable === undefined) {
      assert.equal((await diskConfig(parseSlotSpec(text))).device.backend.name, `${dir}/d.img`);
      const backend = (await diskConfig(parseSlotSpec(text))).device.backend as FileBackendSpec;
      assert.equal(backend.aio, "io_uring");
    } else {
      await assert.rejects(diskConfig(parseSlotSpec(text)), (error: unknown) => {
        assert.ok(error instanceof VirtioBlkError);
        assert.equal(error.code, "UNSUPPORTED");
        assert.equal(error.message, `-s ${text}: aio=io_uring: ${unavailable}`);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
