/**
 * Regular files and block devices as media: `describeFile` checks one
 * against ACRN's options (ro, range=, sectorsize=, nocache) and describes
 * it; every I/O thread then opens its own descriptor (`Deno.FsFile` or
 * positional `node:fs`). Deno and Node; not for a web page.
 *
 * @example
 * ```ts
 * import { createVirtioBlkPci, SharedGuestMemory } from "./mod.ts";
 * import { describeFile } from "./file.ts";
 *
 * const memory = SharedGuestMemory.allocate(16 << 20);
 * const disk = createVirtioBlkPci(memory, { backend: describeFile("disk.img") });
 * ```
 *
 * @module
 */

export { type FileBackendSpec, isFileSpec } from "./src/backend/file_driver.ts";
export { describeFile, type FileIo, type FileOptions } from "./src/backend/file_spec.ts";
