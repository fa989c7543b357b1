/**
 * MappedGuestMemory: guest memory over regions mapped at host addresses
 * (here memfds mapped by the project's own FFI helpers, as the vhost-user
 * back end maps QEMU's RAM).
 */

import assert from "node:assert/strict";
import { MappedGuestMemory } from "../../src/vhost_user/mapped_memory.ts";
import { closeFd } from "../../src/vhost_user/libc.ts";
import { createMemoryFile, type Mapping, mapShared, unmap } from "../../src/vhost_user/mapping.ts";

const MiB = 1 << 20;

/** Two memfds mapped twice each: the "device" mapping and a second, independent one. */
function mapped(sizes: number[]): { first: Mapping[]; second: Mapping[]; release(): void } {
  const fds = sizes.map((size, i) => createMemoryFile(`region-${i}`, size));
  const first = fds.map((fd, i) => mapShared(fd, sizes[i]));
  const second = fds.map((fd, i) => mapShared(fd, sizes[i]));
  fds.forEach(closeFd);
  return { first, second, release: () => [...first, ...second].forEach(unmap) };
}

function bytesOf(mapping: Mapping): Uint8Array {
  return new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(mapping.address)!,
      mapping.length,
    ),
  );
}

Deno.test("mapped memory: each region answers for its guest-physical range, and only whole ranges", () => {
  const maps = mapped([MiB, 2 * MiB]);
  try {
    const memory = new MappedGuestMemory([
      { gpa: 4 * MiB, size: 2 * MiB, hostAddress: maps.first[1].address },
      { gpa: 0, size: MiB, hostAddress: maps.first[0].address },
    ]);
    assert.deepEqual(memory.regions.map((r) => r.gpa), [0, 4 * MiB], "sorted by GPA");
    assert.equal(memory.regionFor(MiB - 8, 8)?.gpa, 0);
    assert.equal(memory.regionFor(MiB - 4, 8), undefined, "crosses the end of a region");
    assert.equal(memory.regionFor(2 * MiB, 4), undefined, "a hole between regions");
    assert.equal(memory.regionFor(6 * MiB - 1, 1)?.gpa, 4 * MiB);

    // The views are the mapped file: what the device writes, another mapping sees.
    memory.regionFor(4 * MiB + 100, 1)!.bytes[100] = 0xab;
    assert.equal(bytesOf(maps.second[1])[100], 0xab);
    bytesOf(maps.second[0])[8] = 0x42;
    assert.equal(Atomics.load(memory.regions[0].u32, 2), 0x42);
  } finally {
    maps.release();
  }
});

Deno.test("mapped memory: a Worker rebuilds the same memory from the handle", async () => {
  const maps = mapped([MiB]);
  const worker = new Worker(new URL("./mapped_memory_worker.ts", import.meta.url), {
    type: "module",
  });
  try {
    const memory = new MappedGuestMemory([
      { gpa: 0x10_0000, size: MiB, hostAddress: maps.first[0].address },
    ]);
    const handle = memory.handle();
    assert.deepEqual(handle, {
      module: new URL("../../src/vhost_user/mapped_memory.ts", import.meta.url).href,
      kind: "mapped",
      regions: [{ gpa: 0x10_0000, size: MiB, hostAddress: maps.first[0].address }],
    });
    Atomics.store(memory.regions[0].u32, 64, 1234);
    const seen = new Promise<number>((resolve) => worker.onmessage = (e) => resolve(e.data));
    worker.postMessage({ handle, gpa: 0x10_0000 + 256 });
    assert.equal(await seen, 1234, "the worker read what this thread wrote");
    assert.equal(Atomics.load(memory.regions[0].u32, 65), 1235, "and this thread sees its write");
  } finally {
    worker.terminate();
    maps.release();
  }
});

Deno.test("mapped memory: malformed or overlapping regions are refused", () => {
  const maps = mapped([MiB]);
  const host = maps.first[0].address;
  try {
    assert.throws(
      () => new MappedGuestMemory([{ gpa: 0, size: 0, hostAddress: host }]),
      RangeError,
    );
    assert.throws(
      () => new MappedGuestMemory([{ gpa: 0, size: 64, hostAddress: host + 2n }]),
      RangeError,
    );
    assert.throws(
      () =>
        new MappedGuestMemory([
          { gpa: 0, size: 4096, hostAddress: host },
          { gpa: 2048, size: 4096, hostAddress: host + 8192n },
        ]),
      /overlap/,
    );
    assert.throws(
      () => new MappedGuestMemory([{ gpa: 2 ** 53 - 4096, size: 8192, hostAddress: host }]),
      RangeError,
    );
    assert.equal(MappedGuestMemory.empty().regionFor(0, 1), undefined);
  } finally {
    maps.release();
  }
});

Deno.test("mapped memory: detach leaves empty views before the memory is unmapped", () => {
  const maps = mapped([MiB]);
  try {
    const memory = new MappedGuestMemory([{
      gpa: 0,
      size: MiB,
      hostAddress: maps.first[0].address,
    }]);
    const region = memory.regionFor(0, 4)!;
    memory.detach();
    assert.equal(memory.regionFor(0, 4), undefined, "nothing is found any more");
    assert.equal(region.bytes.length, 0, "a view kept from before is empty");
    assert.equal(region.u32[0], undefined);
  } finally {
    maps.release();
  }
});
