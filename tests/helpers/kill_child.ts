/**
 * The process a durability test kills or pulls the power from: a machine
 * with one file-backed disk (`-s`-style options from argv) whose guest
 * streams writes and prints each acknowledged one on stdout (`ack <block>
 * <round>`: in write-through on its completion, in write-back once a later
 * FLUSH completed).
 *
 *     deno run -A kill_child.ts <image> <writethru|writeback> [worker|inline|lying]
 *
 * The device runs on the blockif worker engine (`worker`, the default, as
 * the CLI does), on the in-process engine (`inline`), or on the in-process
 * engine over a medium whose flush does nothing (`lying`: see
 * `lying_backend.ts`).
 */

import { openBackend } from "../../src/backend/open_backend.ts";
import { InlineEngine } from "../../src/blk/inline_engine.ts";
import { diskConfig, parseSlotSpec } from "../../src/dm/slot_spec.ts";
import { VirtualMachine } from "../../src/dm/vm.ts";
import { LyingBackend } from "./lying_backend.ts";

const [image, mode, engine = "worker"] = Deno.args;
const disk = diskConfig(parseSlotSpec(`3,virtio-blk,${image},${mode}`));
const vm = await VirtualMachine.create({
  memoryBytes: 32 << 20,
  disks: [
    engine === "worker" ? disk : {
      ...disk,
      device: {
        ...disk.device,
        engine: (context) => {
          const backend = openBackend(context.backend);
          return new InlineEngine(
            context,
            engine === "lying" ? new LyingBackend(backend) : backend,
          );
        },
      },
    },
  ],
});
const encoder = new TextEncoder();
await vm.runVcpu(
  new URL("./test_guest.ts", import.meta.url),
  { kind: "write-stream", disk: 0, depth: 8, flush: mode === "writeback" },
  (_, text) => Deno.stdout.writeSync(encoder.encode(text + "\n")),
);
