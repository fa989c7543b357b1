/**
 * Real disk tools for the guest tests: images are made by mkfs and sfdisk,
 * and what the probes find is compared with what blkid, dumpe2fs and sfdisk
 * say about the same bytes. (e2fsprogs and fdisk are in `.ci/run`.)
 */

import { sourceFromBytes } from "../../src/guest/probe/byte_source.ts";
import type { ByteSource } from "../../src/guest/probe/byte_source.ts";

const decoder = new TextDecoder();

/** Runs a tool (optionally feeding `stdin`); throws with its stderr when it fails. */
export async function run(command: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const output = await child.output();
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")}: ${decoder.decode(output.stderr)}`);
  }
  return decoder.decode(output.stdout);
}

/** `blkid -p -o export` as a record (TYPE, LABEL, UUID, BLOCK_SIZE, PTTYPE, …); empty when it finds nothing. */
export async function blkid(path: string, offset?: number): Promise<Record<string, string>> {
  const args = [
    "-p",
    "-o",
    "export",
    ...(offset === undefined ? [] : ["-O", String(offset)]),
    path,
  ];
  const output = await new Deno.Command("blkid", { args, stdout: "piped", stderr: "piped" })
    .output();
  // blkid exits 2 when it finds nothing.
  return Object.fromEntries(
    decoder.decode(output.stdout).trim().split("\n").filter((line) => line.includes("="))
      .map((line) => {
        const at = line.indexOf("=");
        return [line.slice(0, at), line.slice(at + 1)];
      }),
  );
}

/** One blkid tag's raw value (`-o export` escapes non-ASCII bytes; `-o value` does not). */
export async function blkidValue(path: string, tag: string): Promise<string | undefined> {
  const output = await new Deno.Command("blkid", {
    args: ["-p", "-o", "value", "-s", tag, path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const value = decoder.decode(output.stdout).replace(/\n$/, "");
  return value === "" ? undefined : value;
}

/** The `Name: value` lines of `dumpe2fs -h` (it also prints them when it finds damage). */
export async function dumpe2fs(path: string): Promise<Record<string, string>> {
  const result = await new Deno.Command("dumpe2fs", {
    args: ["-h", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = decoder.decode(result.stdout);
  return Object.fromEntries(
    output.split("\n").filter((line) => /^[A-Za-z][^:]*:/.test(line)).map((line) => {
      const at = line.indexOf(":");
      return [line.slice(0, at).trim(), line.slice(at + 1).trim()];
    }),
  );
}

/** What `sfdisk --json` says about an image. */
export interface SfdiskTable {
  label: "dos" | "gpt";
  id: string;
  sectorsize: number;
  firstlba?: number;
  lastlba?: number;
  partitions: {
    node: string;
    start: number;
    size: number;
    type: string;
    uuid?: string;
    name?: string;
    bootable?: boolean;
  }[];
}

/** Writes a partition table with an sfdisk script and returns `sfdisk --json`'s view of it. */
export async function sfdisk(path: string, script: string): Promise<SfdiskTable> {
  await run("sfdisk", ["-q", path], script);
  return await sfdiskJson(path);
}

/** `sfdisk --json` of an existing image. */
export async function sfdiskJson(path: string): Promise<SfdiskTable> {
  const output = await new Deno.Command("sfdisk", {
    args: ["--json", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(`sfdisk --json ${path}: ${decoder.decode(output.stderr)}`);
  return JSON.parse(decoder.decode(output.stdout)).partitiontable;
}

/** Makes a filesystem inside one partition of an image (start and size in 512-byte sectors). */
export async function mkfsInside(
  mkfs: string,
  image: string,
  partition: { start: number; size: number },
  label: string,
): Promise<void> {
  const sectors = ["-q", "-F", "-E", `offset=${partition.start * 512}`, "-L", label];
  await run(mkfs, [...sectors, image, `${partition.size / 2}k`]);
}

/** A temporary directory removed on dispose. */
export class TempDir implements Disposable {
  readonly path = Deno.makeTempDirSync({ prefix: "guest-test-" });

  /** A path inside the directory. */
  file(name: string): string {
    return `${this.path}/${name}`;
  }

  [Symbol.dispose](): void {
    Deno.removeSync(this.path, { recursive: true });
  }
}

/** A zero-filled image file of `bytes` bytes. */
export function makeImage(path: string, bytes: number): string {
  using file = Deno.openSync(path, { write: true, create: true, truncate: true });
  file.truncateSync(bytes);
  return path;
}

/** An image file's bytes as a probe source. */
export function imageSource(path: string, blockSize = 512): ByteSource {
  return sourceFromBytes(Deno.readFileSync(path), blockSize);
}
