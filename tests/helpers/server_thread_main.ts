/**
 * Entry of a server thread (see `server_thread.ts`): the first message says
 * what to serve, then it answers "requests" and "close".
 *
 * @module
 */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parentChannel } from "../../src/runtime/thread.ts";
import { type ServedRequest, startStaticServer } from "../../scripts/serve/static_server.ts";
import { ROGUE_ANSWERS, type ServerThreadCommand, type ServerThreadKind } from "./server_thread.ts";

/** The server this thread runs. */
interface Running {
  readonly url: string;
  readonly requests: readonly ServedRequest[];
  close(): Promise<void>;
}

async function rogue(answer: string, size: number): Promise<Running> {
  const requests: ServedRequest[] = [];
  const reply = ROGUE_ANSWERS[answer];
  const server = createServer((request, response) => {
    const range = request.headers.range ?? "";
    requests.push({ method: request.method ?? "", path: request.url ?? "", range, status: 0 });
    if (range === "bytes=0-0") {
      // Describing the image: its size, honestly.
      response.writeHead(206, { "Content-Range": `bytes 0-0/${size}`, "Content-Length": "1" });
      response.end(new Uint8Array(1));
      return;
    }
    reply(range, response, size);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/disk.img`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const parent = await parentChannel();
let running: Running | undefined;
parent.onMessage(async (message) => {
  const command = message as ServerThreadKind | ServerThreadCommand;
  if ("kind" in command) {
    running = command.kind === "static"
      ? await startStaticServer({
        mounts: [{ prefix: command.prefix, directory: command.directory }],
      })
      : await rogue(command.answer, command.size);
    parent.postMessage({ url: running.url });
  } else if (command.command === "requests") {
    parent.postMessage({ requests: [...running!.requests] });
  } else {
    await running?.close();
    parent.postMessage({ closed: true });
  }
});
