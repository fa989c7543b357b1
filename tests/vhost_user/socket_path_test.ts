/**
 * The socket path belongs to one back end at a time: a second one started
 * on the path of a live one is refused ("address in use") instead of taking
 * it over, a stale socket (its server died) is replaced, and a back end
 * that stops removes only the socket file it created.
 */

import assert from "node:assert/strict";
import { MemoryBackend } from "../../src/backend/memory_backend.ts";
import { VirtioBlkError } from "../../src/errors.ts";
import { serveVhostUserBlk, type VhostUserBlkServer } from "../../src/vhost_user/server.ts";
import { UnixListener } from "../../src/vhost_user/unix_socket.ts";
import { FakeFrontEnd } from "./front_end.ts";

function serve(socketPath: string): VhostUserBlkServer {
  return serveVhostUserBlk({
    socketPath,
    device: { backend: MemoryBackend.create(1 << 20) },
    log: () => {},
  });
}

async function serves(path: string): Promise<boolean> {
  const fe = FakeFrontEnd.connect(path);
  try {
    await fe.handshake();
    return true;
  } finally {
    fe.close();
  }
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vhost-path-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("vhost-user: a second back end on the socket path of a live one is refused (address in use), and the first keeps serving", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/blk.sock`;
    const first = serve(path);
    try {
      assert.throws(
        () => serve(path),
        (error: unknown) =>
          error instanceof VirtioBlkError && error.code === "INVALID_CONFIG" &&
          /address in use/.test(error.message) && error.message.includes(path),
      );
      assert.ok(await serves(path), "the first back end still gets new front ends");
    } finally {
      await first.close();
    }
  });
});

Deno.test("vhost-user: a stale socket (nobody listens on it) is replaced", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/blk.sock`;
    // A server that died: its socket file stays, nobody listens on it.
    UnixListener.listen(path).dispose();
    assert.ok((await Deno.lstat(path)).isSocket);
    const server = serve(path);
    try {
      assert.ok(await serves(path));
    } finally {
      await server.close();
    }
    await assert.rejects(Deno.lstat(path), Deno.errors.NotFound, "its own socket is removed");
  });
});

Deno.test("vhost-user: a back end that stops removes only the socket it created, not a newer server's at the same path", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/blk.sock`;
    const first = serve(path);
    // The user removes the path and starts another back end there.
    await Deno.remove(path);
    const second = serve(path);
    try {
      await first.close();
      assert.ok((await Deno.lstat(path)).isSocket, "the second back end's socket is still there");
      assert.ok(await serves(path), "and it is served");
      assert.equal(second.connections, 1);
    } finally {
      await second.close();
    }
  });
});
