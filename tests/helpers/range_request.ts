/**
 * DISCARD and WRITE_ZEROES requests from the in-process guest driver: the
 * segment table (virtio 1.2 §5.2.6: sector, sector count, flags) placed in
 * guest memory and sent as the request's one data buffer.
 *
 * @module
 */

import { RangeSegment } from "../../src/blk/spec.ts";
import type { Harness } from "./harness.ts";

/** [first sector, sectors, flags] of each segment. */
export type Segment = readonly [number, number, number?];

/** Sends a DISCARD or WRITE_ZEROES (`type`) of `segments`; its status. */
export async function sendRanges(
  h: Harness,
  type: number,
  segments: readonly Segment[],
): Promise<number> {
  const bytes = segments.length * RangeSegment.SIZE;
  const table = h.allocator.alloc(bytes, 16);
  const view = new DataView(h.memory.buffer);
  segments.forEach(([sector, sectors, flags], i) => {
    const at = table + i * RangeSegment.SIZE;
    view.setBigUint64(at + RangeSegment.SECTOR, BigInt(sector), true);
    view.setUint32(at + RangeSegment.NUM_SECTORS, sectors, true);
    view.setUint32(at + RangeSegment.FLAGS, flags ?? 0, true);
  });
  try {
    const done = await h.driver.execute(type, 0, { count: 1, address: [table], length: [bytes] });
    return done.status;
  } finally {
    h.allocator.free(table);
  }
}
