/**
 * The io_uring ring on its own (Deno on Linux): what goes in as submission
 * entries comes back as completions with the kernel's results, straight
 * into and out of shared memory, and the ring reports a full queue instead
 * of overwriting entries.
 */

import assert from "node:assert/strict";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { IOVEC_SIZE, Op, RwFlag } from "../../src/io/io_uring/abi.ts";
import { IoUring } from "../../src/io/io_uring/ring.ts";
import { address, ioUringUnavailable } from "../../src/io/io_uring/sys.ts";
import { skipWhen } from "../helpers/skip.ts";

const NO_URING = skipWhen("the io_uring ring tests", ioUringUnavailable());

function withFile(bytes: Uint8Array, body: (path: string, fd: number) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "uring-" });
  const path = `${dir}/file`;
  writeFileSync(path, bytes);
  const fd = openSync(path, "r+");
  try {
    body(path, fd);
  } finally {
    closeSync(fd);
    Deno.removeSync(dir, { recursive: true });
  }
}

function pattern(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >> 9)) & 0xff);
}

/** Submits and waits until `count` completions were reaped; returns them by user data. */
function complete(ring: IoUring, count: number): Map<number, number> {
  const results = new Map<number, number>();
  while (results.size < count) {
    ring.submit(1);
    ring.reap((userData, result) => results.set(userData, result));
  }
  return results;
}

Deno.test(
  "io_uring: reads land in shared memory at the offsets asked",
  { ignore: NO_URING.ignore },
  () => {
    const data = pattern(64 << 10);
    withFile(data, (_path, fd) => {
      using ring = disposable(new IoUring(8));
      const memory = new Uint8Array(new SharedArrayBuffer(16 << 10));
      const base = address(Deno.UnsafePointer.of(memory));
      assert.ok(ring.prepareTransfer(Op.READ, fd, base, 4096, 8192, 0, 1));
      assert.ok(ring.prepareTransfer(Op.READ, fd, base + 4096, 512, 60 << 10, 0, 2));
      const results = complete(ring, 2);
      assert.deepEqual([...results], [[1, 4096], [2, 512]]);
      assert.deepEqual(memory.subarray(0, 4096), data.subarray(8192, 8192 + 4096));
      assert.deepEqual(memory.subarray(4096, 4608), data.subarray(60 << 10, (60 << 10) + 512));
    });
  },
);

Deno.test("io_uring: a vectored RWF_DSYNC write gathers its iovecs in order", {
  ignore: NO_URING.ignore,
}, () => {
  withFile(new Uint8Array(16 << 10), (path, fd) => {
    using ring = disposable(new IoUring(8));
    const memory = new Uint8Array(new SharedArrayBuffer(8192));
    memory.set(pattern(8192));
    const base = address(Deno.UnsafePointer.of(memory));
    // Two iovecs, the second part of memory first.
    const iovecs = new BigUint64Array(2 * (IOVEC_SIZE / 8));
    iovecs.set([BigInt(base + 4096), 1024n, BigInt(base), 512n]);
    const iovecAddress = address(Deno.UnsafePointer.of(iovecs));
    assert.ok(ring.prepareTransfer(Op.WRITEV, fd, iovecAddress, 2, 1024, RwFlag.DSYNC, 9));
    assert.deepEqual([...complete(ring, 1)], [[9, 1536]]);
    const file = new Uint8Array(readFileSync(path));
    assert.deepEqual(file.subarray(1024, 2048), memory.subarray(4096, 5120));
    assert.deepEqual(file.subarray(2048, 2560), memory.subarray(0, 512));
    assert.equal(file.subarray(0, 1024).some((b) => b !== 0), false);
  });
});

Deno.test("io_uring: fdatasync completes; errors come back as -errno; end of file reads 0", {
  ignore: NO_URING.ignore,
}, () => {
  withFile(new Uint8Array(4096), (_path, fd) => {
    using ring = disposable(new IoUring(8));
    const memory = new Uint8Array(new SharedArrayBuffer(4096));
    const base = address(Deno.UnsafePointer.of(memory));
    assert.ok(ring.prepareFsync(fd, true, 1));
    assert.ok(ring.prepareTransfer(Op.READ, 987654, base, 512, 0, 0, 2)); // no such fd
    assert.ok(ring.prepareTransfer(Op.READ, fd, base, 512, 4096, 0, 3)); // at end of file
    const results = complete(ring, 3);
    assert.equal(results.get(1), 0);
    assert.equal(results.get(2), -9); // EBADF
    assert.equal(results.get(3), 0);
  });
});

Deno.test("io_uring: a full submission queue refuses entries until they are submitted", {
  ignore: NO_URING.ignore,
}, () => {
  withFile(pattern(64 << 10), (_path, fd) => {
    using ring = disposable(new IoUring(4));
    const memory = new Uint8Array(new SharedArrayBuffer(64 << 10));
    const base = address(Deno.UnsafePointer.of(memory));
    let prepared = 0;
    let total = 0;
    const results = new Map<number, number>();
    // 40 reads through a 4-entry queue: prepare until full, submit, reap, repeat.
    while (total < 40) {
      while (
        prepared < 40 &&
        ring.prepareTransfer(
          Op.READ,
          fd,
          base + prepared * 1024,
          1024,
          prepared * 1024,
          0,
          prepared,
        )
      ) prepared++;
      assert.ok(ring.sqSpace === 0 || prepared === 40);
      ring.submit(1);
      total += ring.reap((userData, result) => results.set(userData, result));
    }
    assert.equal(results.size, 40);
    for (const [, result] of results) assert.equal(result, 1024);
    assert.deepEqual(memory.subarray(0, 40 << 10), pattern(64 << 10).subarray(0, 40 << 10));
  });
});

function disposable(ring: IoUring): IoUring & Disposable {
  return Object.assign(ring, { [Symbol.dispose]: () => ring.close() });
}
