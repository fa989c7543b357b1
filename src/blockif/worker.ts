/**
 * Entry point of a blockif worker thread (`threads.ts` starts it by URL):
 * see `worker_main.ts`.
 *
 * @module
 */

import { serveBlockifThread } from "./worker_main.ts";

await serveBlockifThread();
