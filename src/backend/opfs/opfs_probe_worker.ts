/**
 * Entry point of the worker that probes an OPFS file (started by URL): see
 * `opfs_probe.ts`.
 *
 * @module
 */

import { serveOpfsProbe } from "./opfs_probe.ts";

await serveOpfsProbe();
