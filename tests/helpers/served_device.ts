/**
 * A device as a blockif thread serves it, built from the context the
 * device gave its engine: for tests that run a worker's loop on their own
 * thread over a stand-in medium.
 *
 * @module
 */

import type { EngineContext } from "../../src/blk/engine.ts";
import type { ServedDevice } from "../../src/blockif/server.ts";
import type { IoQueue } from "../../src/io/io_queue.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";

/** `context`'s device, its medium reached through `io`. */
export function servedDevice(context: EngineContext, io: IoQueue): ServedDevice {
  return {
    settings: {
      readOnly: context.readOnly,
      limits: context.limits,
      serial: context.serial,
      maxChain: context.maxChain,
      name: context.name,
    },
    memory: context.memory,
    queues: context.queues.map((state) => new SplitQueue(context.memory, state)),
    state: context.state,
    interrupts: context.interrupts,
    errors: context.errors,
    io,
  };
}
