/**
 * Entry point of the built-in guest's vCPU Workers (started by URL): see
 * `uos_vcpu.ts`.
 *
 * @module
 */

import { runUosVcpu } from "./uos_vcpu.ts";

await runUosVcpu();
