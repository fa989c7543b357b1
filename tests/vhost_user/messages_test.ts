/**
 * The vhost-user payload layouts, byte for byte as QEMU 7.2 puts them on
 * the wire (reference vhost-user.md §2–§3).
 */

import assert from "node:assert/strict";
import {
  decodeConfig,
  decodeMemoryTable,
  decodeSingleRegion,
  decodeVringAddress,
  encodeConfig,
  encodeMemoryTable,
  encodeMessage,
  encodeSingleRegion,
  encodeVringAddress,
  REPLY_FLAGS,
} from "../../src/vhost_user/messages.ts";

function u64At(bytes: Uint8Array, at: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(at, true);
}

Deno.test("messages: the header is request, flags, size; a reply's flags are 0x5", () => {
  const bytes = encodeMessage(11, REPLY_FLAGS, new Uint8Array(8));
  assert.deepEqual([...bytes.subarray(0, 12)], [11, 0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0]);
  assert.equal(bytes.length, 20);
});

Deno.test("messages: a vring address is 40 bytes with desc, used, avail, log in that order", () => {
  const addresses = {
    index: 0,
    flags: 0,
    desc: 0x7fbd613aa000n,
    used: 0x7fbd613aa940n,
    avail: 0x7fbd613aa800n,
    log: 0x153ab940n,
  };
  const bytes = encodeVringAddress(addresses);
  assert.equal(bytes.length, 40);
  assert.equal(u64At(bytes, 8), addresses.desc);
  assert.equal(u64At(bytes, 16), addresses.used);
  assert.equal(u64At(bytes, 24), addresses.avail);
  assert.equal(u64At(bytes, 32), addresses.log);
  assert.deepEqual(decodeVringAddress(bytes), addresses);
  assert.equal(decodeVringAddress(bytes.subarray(0, 32)), undefined, "no 'size' field variant");
});

Deno.test("messages: a memory table has exactly nregions entries (or the spec's 8)", () => {
  const region = { gpa: 0n, size: 0x4000_0000n, userAddress: 0x7fbd4bfff000n, mmapOffset: 0n };
  const one = encodeMemoryTable([region]);
  assert.equal(one.length, 40, "one region: 40 bytes, as QEMU sends");
  assert.deepEqual(decodeMemoryTable(one), [region]);
  const padded = new Uint8Array(8 + 8 * 32);
  padded.set(one);
  assert.deepEqual(decodeMemoryTable(padded), [region], "the fixed 8-slot array is read too");
  assert.equal(decodeMemoryTable(one.subarray(0, 39)), undefined);
  const nine = new Uint8Array(8 + 9 * 32);
  nine[0] = 9;
  assert.equal(decodeMemoryTable(nine), undefined, "more than 8 regions");
});

Deno.test("messages: ADD/REM_MEM_REG carry 8 bytes of padding then one region", () => {
  const region = {
    gpa: 0x1_0000_0000n,
    size: 0x1000_0000n,
    userAddress: 0x7f00_0000_0000n,
    mmapOffset: 0x4000_0000n,
  };
  const bytes = encodeSingleRegion(region);
  assert.equal(bytes.length, 40);
  assert.equal(u64At(bytes, 0), 0n);
  assert.equal(u64At(bytes, 8), region.gpa);
  assert.deepEqual(decodeSingleRegion(bytes), region);
});

Deno.test("messages: a config payload's size must match the bytes that follow", () => {
  const access = { offset: 32, size: 1, flags: 0, data: new Uint8Array([1]) };
  const bytes = encodeConfig(access);
  assert.equal(bytes.length, 13, "a 1-byte SET_CONFIG is 13 bytes");
  assert.deepEqual(decodeConfig(bytes), access);
  assert.equal(decodeConfig(bytes.subarray(0, 12)), undefined);
  const lying = encodeConfig({ ...access, size: 57 });
  assert.equal(decodeConfig(lying), undefined);
});
