/**
 * Default serials (GET_ID): ACRN's `ACRN--XXXX-XXXX-XXXX` from the MD5 of
 * the option string on the command line, and for devices the library makes
 * (no option string) from what identifies their medium, so that two disks of
 * a guest never share a `/dev/disk/by-id` name.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { describeFile } from "../../src/backend/file_spec.ts";
import { type BlkDeviceOptions, VirtioBlkDevice } from "../../src/blk/device.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { defaultSerial } from "../../src/blk/serial.ts";
import { decodeSerial } from "../../src/guest/virtio_blk_driver.ts";
import { SharedGuestMemory } from "../../src/memory/shared_memory.ts";
import { TransportState } from "../../src/virtio/transport_state.ts";
import { TempDir } from "../backend/file_fixtures.ts";

/** ACRN's serial of `optionString`, computed the way ACRN's virtio_block.c does, with node:crypto. */
function acrnSerial(optionString: string): string {
  const d = createHash("md5").update(optionString).digest("hex").toUpperCase();
  return `ACRN--${d.slice(0, 4)}-${d.slice(4, 8)}-${d.slice(8, 12)}`;
}

/** The serial a device made with `options` answers GET_ID with. */
async function serialOf(options: BlkDeviceOptions): Promise<string> {
  const transport = new TransportState();
  const device = new VirtioBlkDevice(SharedGuestMemory.allocate(1 << 20), {
    engine: (context) => new InlineEngine(context),
    ...options,
  }, {
    sink: transport,
    handle: transport.handle(),
  });
  await device.close();
  return decodeSerial(device.serial);
}

Deno.test("serial: the command line's option string gives ACRN's serial, unchanged", async () => {
  for (const options of ["test.img", "other.img,ro", "/srv/d.img,writeback,range=8/64", ""]) {
    assert.equal(defaultSerial(options), acrnSerial(options), options);
  }
  assert.equal(defaultSerial("test.img"), "ACRN--DAC8-0791-C13A");
  using dir = new TempDir();
  const path = dir.file("test.img", 4096);
  const serial = await serialOf({ backend: describeFile(path), optionString: "test.img" });
  assert.equal(serial, "ACRN--DAC8-0791-C13A");
  assert.equal(
    await serialOf({ backend: describeFile(path), optionString: "test.img", serial: "mine" }),
    "mine",
  );
});

Deno.test("serial: two RAM disks made by the library get two serials; one RAM disk keeps its own", async () => {
  const first = MemoryBackend.create(1 << 20);
  const second = MemoryBackend.create(1 << 20);
  const a = await serialOf({ backend: first });
  const b = await serialOf({ backend: second });
  assert.match(a, /^ACRN--[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}$/);
  assert.notEqual(a, b);
  assert.notEqual(a, defaultSerial(""), "not the serial of an empty option string");
  assert.equal(await serialOf({ backend: first }), a, "the same RAM disk, the same serial");
  assert.equal(
    await serialOf({ backend: { ...first, readOnly: true } }),
    a,
    "its buffer is the RAM disk",
  );
});

Deno.test("serial: a file's serial comes from its path, and from the window range= chose", async () => {
  using dir = new TempDir();
  const path = dir.file("disk.img", 64 * 1024);
  const other = dir.file("other.img", 64 * 1024);
  const whole = await serialOf({ backend: describeFile(path) });
  assert.equal(whole, defaultSerial(path));
  assert.equal(await serialOf({ backend: describeFile(path, { readOnly: true }) }), whole);
  assert.notEqual(await serialOf({ backend: describeFile(other) }), whole);
  const low = await serialOf({ backend: describeFile(path, { range: { start: 0, size: 64 } }) });
  const high = await serialOf({ backend: describeFile(path, { range: { start: 64, size: 64 } }) });
  assert.equal(low, defaultSerial(`${path} bytes 0-32768`));
  assert.equal(high, defaultSerial(`${path} bytes 32768-65536`));
  assert.notEqual(low, whole);
  // Growing the file keeps a whole-file device's serial: the path names the medium.
  Deno.truncateSync(path, 128 * 1024);
  assert.equal(await serialOf({ backend: describeFile(path) }), whole);
});
