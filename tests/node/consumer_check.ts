/**
 * The npm package as a Node user gets it:
 *
 *     deno run -A tests/node/consumer_check.ts [--build]
 *
 * packs `npm/dist` with `npm pack` (building it first with `--build` or when
 * it is missing), installs the tarball with `npm install` into a fresh
 * temporary project, and from there, with plain Node:
 * 1. an `.mjs` file imports the package by name, puts a device over a file
 *    (blockif worker threads), and writes, flushes and reads through the
 *    guest driver; the file holds the bytes afterwards;
 * 2. the README's library example runs as an `.mjs` file;
 * 3. `npx <bin> -s …,a.img -s …,b.img` lists vda and vdb in slot order;
 * 4. a TypeScript consumer type-checks against the installed declarations
 *    (`moduleResolution: nodenext`, the `types` export condition).
 *
 * Prints one line per check and then `consumer: N passed, N failed`; exits
 * non-zero on any failure.
 *
 * @module
 */

import { existsSync } from "node:fs";
import { buildPackage, PACKAGE_DIR, ROOT, ts } from "../../scripts/build_npm.ts";

interface Check {
  readonly name: string;
  run(project: string, packageName: string): Promise<void>;
}

const decoder = new TextDecoder();

/** Runs `command`; throws with its output when it fails; returns its stdout. */
async function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<string> {
  const output = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = decoder.decode(output.stdout);
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} exited ${output.code}:\n${stdout}${
        decoder.decode(output.stderr)
      }`,
    );
  }
  return stdout;
}

function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

const FILE_DEVICE = `
import {
  createVirtioBlkPci, DirectRegisters, GuestAllocator, InterruptLine,
  SharedGuestMemory, VirtioBlkDriver, workerEngine,
} from "PACKAGE";
import { describeFile } from "PACKAGE/file";
import { readFileSync, writeFileSync } from "node:fs";

const SECTOR = 512;
writeFileSync("disk.img", new Uint8Array(4 << 20));
const spec = describeFile("disk.img");
const memory = SharedGuestMemory.allocate(16 << 20);
const disk = createVirtioBlkPci(memory, {
  backend: spec,
  writeback: true,
  engine: workerEngine({ workers: 2 }),
});
const driver = VirtioBlkDriver.init({
  memory,
  registers: new DirectRegisters(disk.pci),
  interrupt: new InterruptLine(disk.transport.buffer),
  allocator: new GuestAllocator(0x1000, memory.size),
});
const data = new Uint8Array(64 * 1024).map((_, i) => (i * 31 + 7) & 0xff);
await driver.write(100, data);
await driver.flush();
const back = await driver.read(100, data.length);
await disk.close();
const file = readFileSync("disk.img").subarray(100 * SECTOR, 100 * SECTOR + data.length);
console.log(JSON.stringify({
  io: spec.io,
  readBack: Buffer.compare(back, data) === 0,
  inFile: Buffer.compare(file, data) === 0,
}));
`;

const checks: Check[] = [
  {
    name: "an .mjs file imports the package and writes, flushes and reads a file-backed device",
    async run(project, packageName) {
      await Deno.writeTextFile(
        `${project}/file_device.mjs`,
        FILE_DEVICE.replaceAll("PACKAGE", packageName),
      );
      const result = JSON.parse(await run("node", ["file_device.mjs"], project));
      expect(result.io === "node-fs", `io is ${result.io}, not node-fs`);
      expect(result.readBack, "the driver read back other bytes than it wrote");
      expect(result.inFile, "the file does not hold the written bytes");
    },
  },
  {
    name: "the README's library example runs as an .mjs file",
    async run(project, packageName) {
      const readme = await Deno.readTextFile(`${ROOT}README.md`);
      const block = /## Library\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
      expect(block !== undefined, "the README has no ts block under ## Library");
      await Deno.writeTextFile(
        `${project}/readme_example.mjs`,
        block.replace(`from "./mod.ts"`, `from "${packageName}"`),
      );
      const stdout = await run("node", ["readme_example.mjs"], project);
      expect(/Uint8Array\(512\) \[\s+7, 7, 7/.test(stdout), `unexpected output: ${stdout}`);
      expect(/ACRN--[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}/.test(stdout), `no serial: ${stdout}`);
      expect(
        /CLOSED virtio-blk device on RAM disk [0-9a-f]{16} is closed/.test(stdout),
        `a request after close() did not reject as CLOSED: ${stdout}`,
      );
    },
  },
  {
    name: "npx runs the CLI with two -s slots: vda and vdb, in slot order",
    async run(project, packageName) {
      const manifest = JSON.parse(
        await Deno.readTextFile(`${project}/node_modules/${packageName}/package.json`),
      );
      const [bin] = Object.keys(manifest.bin);
      await Deno.writeFile(`${project}/a.img`, new Uint8Array(2 << 20));
      await Deno.writeFile(`${project}/b.img`, new Uint8Array(1 << 20));
      const stdout = await run("npx", [
        "--no-install",
        bin,
        "-s",
        "11,virtio-blk,b.img,ro",
        "-s",
        "4,virtio-blk,a.img",
        "--json",
      ], project);
      const disks = JSON.parse(stdout).blockdevices.map((
        disk: Record<string, unknown>,
      ) => `${disk.name} ${disk.slot} ${disk.size} ${disk.ro}`);
      expect(
        JSON.stringify(disks) ===
          JSON.stringify([`vda 4 ${2 << 20} false`, `vdb 11 ${1 << 20} true`]),
        `unexpected disks: ${JSON.stringify(disks)}`,
      );
      const table = await run("npx", ["--no-install", bin, "-s", "4,virtio-blk,a.img"], project);
      expect(/^vda +4 +2M /m.test(table), `unexpected table:\n${table}`);
    },
  },
  {
    name: "a TypeScript consumer type-checks against the installed declarations",
    async run(project, packageName) {
      await Deno.writeTextFile(
        `${project}/consumer.ts`,
        `import {
  createVirtioBlkPci, DirectRegisters, GuestAllocator, InterruptLine, MemoryBackend,
  SharedGuestMemory, type VirtioBlkPci, VirtioBlkDriver, VirtioBlkError, workerEngine,
} from "${packageName}";
import { main } from "${packageName}/cli";
import { describeFile, type FileBackendSpec } from "${packageName}/file";
const file: (path: string) => FileBackendSpec = describeFile;

const memory = SharedGuestMemory.allocate(16 << 20);
const disk: VirtioBlkPci = createVirtioBlkPci(memory, {
  backend: MemoryBackend.create(1 << 20),
  engine: workerEngine({ workers: 1 }),
});
const driver = VirtioBlkDriver.init({
  memory,
  registers: new DirectRegisters(disk.pci),
  interrupt: new InterruptLine(disk.transport.buffer),
  allocator: new GuestAllocator(0x1000, memory.size),
});
const bytes: Uint8Array = await driver.read(0, 512);
const status: number = await main(["--help"], { stdout: () => {}, stderr: () => {} });
const code: string | undefined = new VirtioBlkError("IO_ERROR", "x").code;
export { bytes, code, file, status };
`,
      );
      const program = ts.createProgram({
        rootNames: [`${project}/consumer.ts`],
        options: {
          strict: true,
          noEmit: true,
          target: ts.ScriptTarget.ES2022,
          module: ts.ModuleKind.NodeNext,
          moduleResolution: ts.ModuleResolutionKind.NodeNext,
          lib: ["lib.es2023.d.ts", "lib.dom.d.ts"],
          types: [],
        },
      });
      const diagnostics = ts.getPreEmitDiagnostics(program);
      expect(
        diagnostics.length === 0,
        ts.formatDiagnostics(diagnostics, {
          getCanonicalFileName: (name) => name,
          getCurrentDirectory: () => project,
          getNewLine: () => "\n",
        }),
      );
    },
  },
];

if (Deno.args.includes("--build") || !existsSync(`${PACKAGE_DIR}package.json`)) buildPackage();
const packageName = JSON.parse(await Deno.readTextFile(`${PACKAGE_DIR}package.json`)).name;
const packDir = `${ROOT}npm/`;
const [packed] = JSON.parse(
  await run("npm", ["pack", "--json", "--pack-destination", packDir, PACKAGE_DIR], ROOT),
);
const tarball = `${packDir}${packed.filename}`;
console.log(`packed ${tarball}: ${packed.entryCount} files, ${packed.size} bytes`);

const project = await Deno.makeTempDir({ prefix: "npm-consumer-" });
let passed = 0;
let failed = 0;
try {
  await Deno.writeTextFile(
    `${project}/package.json`,
    JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2),
  );
  await run("npm", ["install", "--no-audit", "--no-fund", tarball], project);
  for (const check of checks) {
    try {
      await check.run(project, packageName);
      passed++;
      console.log(`ok     ${check.name}`);
    } catch (error) {
      failed++;
      console.log(`FAILED ${check.name}\n${error instanceof Error ? error.message : error}`);
    }
  }
} catch (error) {
  failed++;
  console.log(`FAILED installing ${tarball}\n${error instanceof Error ? error.message : error}`);
} finally {
  await Deno.remove(project, { recursive: true });
}
console.log(`consumer: ${passed} passed, ${failed} failed`);
Deno.exit(failed > 0 ? 1 : 0);
