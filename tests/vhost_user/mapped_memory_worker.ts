/// <reference lib="deno.worker" />
/**
 * Worker half of the mapped-memory test: rebuilds guest memory from the
 * handle it is sent, reads a word the main thread wrote, writes one back.
 */

import { MappedGuestMemory, type MappedMemoryHandle } from "../../src/vhost_user/mapped_memory.ts";

self.onmessage = (event: MessageEvent<{ handle: MappedMemoryHandle; gpa: number }>) => {
  const memory = MappedGuestMemory.fromHandle(event.data.handle);
  const region = memory.regionFor(event.data.gpa, 8)!;
  const word = (event.data.gpa - region.gpa) >>> 2;
  const seen = Atomics.load(region.u32, word);
  Atomics.store(region.u32, word + 1, seen + 1);
  self.postMessage(seen);
};
