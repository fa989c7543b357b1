/**
 * Runs the project's test guest (this folder) under QEMU from Deno, for the
 * guest tests and the guest benchmark: builds the kernel and initramfs once
 * per machine into a cache directory, boots it with the given disks, and
 * parses the '@@RESULT key=value …' lines the guest scripts print.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { SystemTool } from "../system_tools.ts";

const SCRIPTS = new URL("./", import.meta.url).pathname;

/** Where the kernel and initramfs are cached (built at test time, not shipped). */
export const GUEST_WORK = Deno.env.get("VIRTIO_BLK_GUEST_WORK") ??
  `${Deno.env.get("TMPDIR") ?? "/tmp"}/virtio-blk-guest`;

/** The programs booting the test guest needs (QEMU, and what build_initramfs.sh packs). */
export const GUEST_TOOLS = [
  "qemu-system-x86_64",
  "busybox",
  "fio",
  "mkfs.ext4",
  "e2fsck",
  "modprobe",
  "depmod",
  "cpio",
  "xz",
  "blkdiscard",
] as const satisfies readonly SystemTool[];

let built: Promise<void> | undefined;

/** Builds (or finds up to date) the guest kernel and initramfs, once per process. */
export function ensureGuest(): Promise<void> {
  built ??= (async () => {
    const { code, stdout, stderr } = await new Deno.Command(`${SCRIPTS}build_initramfs.sh`, {
      env: { WORK: GUEST_WORK },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, `building the test guest failed:\n${text}`);
  })();
  return built;
}

/** One '@@RESULT' line as key/value pairs. */
export type Result = Record<string, string>;

/** What a boot printed. */
export interface Boot {
  /** The guest scripts' status ('@@END rc='), 124 on timeout, 99 without an end. */
  readonly rc: number;
  readonly output: string;
  readonly results: Result[];
}

/** Options of {@linkcode bootGuest}. */
export interface BootOptions {
  /** `vhost:SOCK`, `qsd:IMG` or `builtin:IMG`, in vda, vdb… order. */
  readonly disks: readonly string[];
  /** Guest scripts, run in order. */
  readonly run: readonly string[];
  readonly legacy?: boolean;
  /** Environment for the guest scripts. */
  readonly env?: Record<string, string>;
  readonly timeoutSeconds?: number;
  /** Where QEMU writes its pid. */
  readonly pidfile?: string;
  /** Called with each console line as it arrives. */
  readonly onLine?: (line: string) => void;
  /** Guest CPUs (QEMU's -smp; default 1). */
  readonly smp?: number;
  /** Request queues of every disk (QEMU's num-queues; default 1). */
  readonly numQueues?: number;
}

/** Parses '@@RESULT a=b c=d' lines. */
export function parseResults(output: string): Result[] {
  return output.split("\n").filter((line) => line.startsWith("@@RESULT ")).map((line) => {
    const result: Result = {};
    for (const pair of line.slice("@@RESULT ".length).trim().split(/\s+/)) {
      const at = pair.indexOf("=");
      if (at > 0) result[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return result;
  });
}

/** The first result that has `key`, or a failed assertion naming what the guest printed. */
export function result(boot: Boot, key: string): Result {
  const found = boot.results.find((r) => key in r);
  assert.ok(found, `the guest printed no '${key}=' result:\n${boot.output}`);
  return found;
}

/** Boots the guest and waits until QEMU exits. */
export async function bootGuest(options: BootOptions): Promise<Boot> {
  await ensureGuest();
  const args = [
    "--run",
    options.run.join(","),
    "--legacy",
    options.legacy ? "on" : "off",
    "--timeout",
    String(options.timeoutSeconds ?? 240),
  ];
  for (const disk of options.disks) args.push("--disk", disk);
  for (const [key, value] of Object.entries(options.env ?? {})) {
    args.push("--arg", `g_${key}=${value}`);
  }
  if (options.pidfile) args.push("--pidfile", options.pidfile);
  if (options.smp !== undefined) args.push("--smp", String(options.smp));
  if (options.numQueues !== undefined) args.push("--num-queues", String(options.numQueues));
  const child = new Deno.Command(`${SCRIPTS}boot.sh`, {
    args,
    env: { WORK: GUEST_WORK },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let output = "";
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const raw of lines) {
      const line = raw.replace(/\r$/, "");
      output += line + "\n";
      options.onLine?.(line);
    }
  }
  output += pending;
  const { code } = await child.status;
  return { rc: code, output, results: parseResults(output) };
}

/** sha256 of a byte range of a file, as hex. */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs a host command; returns its status and output. */
export async function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: Uint8Array<ArrayBuffer>; text: string }> {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return { code, stdout: stdout as Uint8Array<ArrayBuffer>, text };
}
