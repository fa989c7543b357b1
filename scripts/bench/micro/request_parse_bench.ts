/**
 * Parsing popped chains into typed requests (`parseRequest`): 64 reads, 64
 * writes, and 64 reads scattered over 16 data segments.
 *
 *     deno task bench:micro
 */

import { BlkRequest, parseRequest, RequestKind } from "../../../src/blk/request.ts";
import { RequestType } from "../../../src/blk/spec.ts";
import { DescriptorChain } from "../../../src/virtio/descriptor_chain.ts";
import {
  BATCH,
  CAPACITY_SECTORS,
  offerAll,
  popAll,
  publishAll,
  queueFixture,
  type RequestShape,
} from "./fixtures.ts";

/** Pops the fixture's chains once and keeps copies to parse again and again. */
function poppedChains(shape: RequestShape): { chains: DescriptorChain[]; parse: () => number } {
  const f = queueFixture(shape);
  const chains: DescriptorChain[] = [];
  offerAll(f);
  popAll(f, (chain) => {
    const copy = new DescriptorChain(chain.capacity);
    copy.reset(chain.head);
    for (let i = 0; i < chain.count; i++) {
      copy.push(chain.address[i], chain.length[i], chain.writable[i] === 1);
    }
    chains.push(copy);
  });
  publishAll(f);
  const limits = { capacity: CAPACITY_SECTORS, segMax: 126 };
  const out = new BlkRequest(limits.segMax);
  const parse = () => {
    let ok = 0;
    for (const chain of chains) {
      parseRequest(chain, f.memory, limits, out);
      if (out.kind === RequestKind.READ || out.kind === RequestKind.WRITE) ok++;
    }
    return ok;
  };
  if (parse() !== BATCH) throw new Error("the benchmark requests do not parse");
  return { chains, parse };
}

const shapes: [string, RequestShape][] = [
  ["4 KiB reads", { type: RequestType.IN, segments: 1, segmentBytes: 4096, indirect: false }],
  ["4 KiB writes", { type: RequestType.OUT, segments: 1, segmentBytes: 4096, indirect: false }],
  [
    "64 KiB reads, 16 segments",
    { type: RequestType.IN, segments: 16, segmentBytes: 4096, indirect: true },
  ],
];

for (const [i, [name, shape]] of shapes.entries()) {
  const { parse } = poppedChains(shape);
  Deno.bench({
    name: `parse ${BATCH} requests: ${name}`,
    group: "parse",
    baseline: i === 0,
    fn() {
      parse();
    },
  });
}
