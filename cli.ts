/**
 * The ACRN-style device model's command line:
 *
 *     deno run -A cli.ts -s 9,virtio-blk,disk.img [options…]    (or ./virtio-blk-dm …)
 *
 * builds the machine (PCI bus, one virtio-blk function per `-s`), boots the
 * built-in guest and runs its job, or serves one device to QEMU over
 * vhost-user (`--vhost-user`). Run as a program it starts the command line;
 * imported, it exports the parts: {@linkcode main} (the whole command line
 * as a function) and the `-s` parsing. Uses Node's and Deno's APIs (files,
 * signals): not for a web page (the core is `mod.ts`).
 *
 * @module
 */

import { isMainModule } from "./src/runtime/main_module.ts";

export {
  checkSlots,
  diskConfig,
  type OtherDeviceSpec,
  parseSlotOption,
  parseSlotSpec,
  type SlotOption,
  type SlotSpec,
} from "./src/dm/slot_spec.ts";
export { type Console, main } from "./src/cli/main.ts";
export { runCli } from "./src/cli/run.ts";

// `deno run cli.ts …` and the npm package's bin start the command line.
if (isMainModule(import.meta)) {
  const { runCli } = await import("./src/cli/run.ts");
  await runCli();
}
