/**
 * The process a durability test kills: a machine with one file-backed disk
 * (`-s`-style options from argv) whose guest streams writes and prints each
 * acknowledged one on stdout.
 *
 *     deno run -A kill_child.ts <image> <writethru|writeback>
 */

import { diskConfig, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";

const [image, mode] = Deno.args;
const vm = await VirtualMachine.create({
  memoryBytes: 32 << 20,
  disks: [await diskConfig(parseSlotSpec(`3,virtio-blk,${image},${mode}`))],
});
const encoder = new TextEncoder();
await vm.runVcpu(
  new URL("./test_guest.ts", import.meta.url),
  { kind: "write-stream", disk: 0, depth: 8, flush: mode === "writeback" },
  (_, text) => Deno.stdout.writeSync(encoder.encode(text + "\n")),
);
