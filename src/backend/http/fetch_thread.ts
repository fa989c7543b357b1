/**
 * Entry point of the helper thread that fetches a lazy HTTP image's ranges
 * for a thread that waits for them (started by URL): see `fetch_channel.ts`.
 *
 * @module
 */

import { serveFetchThread } from "./fetch_channel.ts";

await serveFetchThread();
