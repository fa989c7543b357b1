/**
 * The process a durability test kills or pulls the power from: a machine
 * with one file-backed disk (`-s`-style options from argv) whose guest
 * streams writes and prints each acknowledged one on stdout (`ack <block>
 * <round>`: in write-through on its completion, in write-back once a later
 * FLUSH completed).
 *
 *     deno run -A kill_child.ts <image> <writethru|writeback> [honest|lying] [threads|io_uring]
 *
 * The device is the CLI's (the blockif worker engine, each thread with its
 * own handle on the file); `lying` puts a medium whose flush does nothing
 * between it and the file (`lying_backend.ts`).
 */

import { diskConfig, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { lyingSpec } from "./lying_backend.ts";

const [image, mode, medium = "honest", aio = "threads"] = Deno.args;
const disk = diskConfig(parseSlotSpec(`3,virtio-blk,${image},${mode},aio=${aio}`));
const vm = await VirtualMachine.create({
  memoryBytes: 32 << 20,
  disks: [
    medium === "lying"
      ? { ...disk, device: { ...disk.device, backend: lyingSpec(disk.device.backend) } }
      : disk,
  ],
});
const encoder = new TextEncoder();
await vm.runVcpu(
  new URL("./test_guest.ts", import.meta.url),
  { kind: "write-stream", disk: 0, depth: 8, flush: mode === "writeback" },
  (_, text) => Deno.stdout.writeSync(encoder.encode(text + "\n")),
);
