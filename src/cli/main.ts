/**
 * The device model's command line, in ACRN's style:
 *
 *     ./virtio-blk-dm -s 9,virtio-blk,test.img -s 10,virtio-blk,other.img,ro
 *
 * builds the machine (PCI bus, one virtio-blk function per `-s`, 8 blockif
 * workers each), launches the built-in guest in a vCPU Worker, runs its job
 * (`lsblk` by default) and prints what the guest printed. Bad input is one
 * line on stderr and exit status 2, and no file is created, truncated or
 * changed. SIGINT or SIGTERM stops the run: a load reports what it did until
 * then, the temporary image is removed, and the status is 130 or 143
 * (`exit_status.ts` lists them all).
 *
 * @module
 */

import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { VirtioBlkError } from "../errors.ts";
import { MAX_SLOTS } from "../dm/pci_bus.ts";
import {
  checkSlots,
  diskConfig,
  EMULATION,
  type OtherDeviceSpec,
  parseSlotOption,
  parseSlotSpec,
} from "../dm/slot_spec.ts";
import { DEFAULT_MEMORY_BYTES, MAX_VCPUS, VirtualMachine } from "../dm/vm.ts";
import { LOAD_OPTION_DEFINITIONS, parseLoadOptions } from "../guest/jobs/load_options.ts";
import { parseSize } from "../guest/jobs/units.ts";
import type { UosJob } from "../guest/uos.ts";
import { runUos } from "../guest/uos_run.ts";
import { StopFlag } from "../sync/stop_flag.ts";
import { parseCommandLine } from "./arguments.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./exit_status.ts";
import { SIGNAL_EXIT_STATUS, StopSignals } from "./signals.ts";
import { usage } from "./usage.ts";
import { programVersion } from "./version.ts";
import { PROGRAM } from "./program.ts";
import { describeSummary } from "../blk/medium_errors.ts";
import { diskName } from "../guest/boot.ts";
import { wakeSignalFor } from "../backend/backend.ts";
import { DEFAULT_QUEUE_SIZE, VirtioBlkDevice } from "../blk/device.ts";
import { BlockifThreads } from "../blockif/threads.ts";
import { workerEngine } from "../blockif/worker_engine.ts";
import type { VmDiskConfig } from "../dm/vm.ts";
import { parseQmpOption, QEMU_SPELLING, type QmpOption, withQemuSpelling } from "./qmp_option.ts";
import { machineDrives, slotDrives } from "./qmp_drives.ts";
import { QmpServer } from "../qmp/server.ts";
import type { QmpDrive } from "../qmp/drive.ts";
import { QEMU_VERSION } from "../qmp/protocol.ts";
import { createEventFdWake } from "../io/io_uring/wake.ts";
import type { WakeSignalFactory } from "../sync/wake_signal.ts";

export { PROGRAM };

/** Where the CLI writes; the process's stdout and stderr by default. */
export interface Console {
  /** Writes `text` as given (it carries its own newlines): results, `--help`, JSON. */
  stdout(text: string): void;
  /** Writes `text` as given: errors, warnings and progress lines. */
  stderr(text: string): void;
  /** Whether stderr is a terminal (progress lines are shown only then). */
  readonly stderrIsTerminal?: boolean;
}

/** Size of the temporary image used when no `-s` is given. */
export const DEFAULT_IMAGE_BYTES = 64 << 20;

const OPTIONS = {
  slot: { type: "string", short: "s", multiple: true },
  memory: { type: "string", short: "m" },
  job: { type: "string" },
  json: { type: "boolean" },
  "output-format": { type: "string" },
  disk: { type: "string" },
  "vhost-user": { type: "string" },
  qmp: { type: "string", multiple: true },
  iothreads: { type: "string" },
  cpus: { type: "string", short: "c" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  ...LOAD_OPTION_DEFINITIONS,
} as const;

/**
 * Runs the command line `args` (without the program name) and returns the
 * exit status.
 */
export async function main(args: readonly string[], console: Console): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(withQemuSpelling(args, OPTIONS), OPTIONS);
  } catch (error) {
    console.stderr(`${PROGRAM}: ${(error as Error).message}\n`);
    return EXIT_USAGE;
  }
  const { values, spelled } = parsed;
  if (values.help) {
    console.stdout(usage());
    return EXIT_OK;
  }
  if (values.version) {
    console.stdout(`${PROGRAM} ${programVersion()}\n`);
    return EXIT_OK;
  }

  let temporary: string | undefined;
  let iothreads: BlockifThreads | undefined;
  const removeTemporary = () => {
    if (temporary !== undefined) rmSync(temporary, { recursive: true, force: true });
    temporary = undefined;
  };
  // The first signal stops the run, which then reports and cleans up; a
  // second one (a hung device, an impatient user) ends the process at once.
  const stop = new StopFlag();
  const signals = new StopSignals((signal) => {
    console.stderr(`${PROGRAM}: ${signal}: stopping (another signal ends at once)\n`);
    stop.request();
  }, (signal) => {
    removeTemporary();
    process.exit(SIGNAL_EXIT_STATUS[signal]);
  });
  try {
    const qmp = parseQmp(values.qmp, args);
    if (values["vhost-user"] !== undefined) {
      return await serveOverVhostUser(values["vhost-user"], values, qmp, console, signals);
    }
    const job = parseJob(values, console.stderrIsTerminal ?? false, stop, qmp !== undefined);
    const memoryBytes = parseMemory(values.memory, spelled.memory);
    const slotOptions = (values.slot ?? []).map(parseSlotOption);
    const others = slotOptions.flatMap((o) => o.kind === "other" ? [o.device] : []);
    let specs = slotOptions.flatMap((o) => o.kind === EMULATION ? [o.spec] : []);
    const notes = others.flatMap((o) => o.note === undefined ? [] : [`-s ${o.text}: ${o.note}`]);
    if (specs.length === 0) {
      temporary = mkdtempSync(join(tmpdir(), `${PROGRAM}-`));
      const image = join(temporary, "disk.img");
      createSparseImage(image, DEFAULT_IMAGE_BYTES);
      notes.push(
        `no ${others.length > 0 ? "virtio-blk " : ""}-s given: using a temporary ` +
          `${DEFAULT_IMAGE_BYTES >> 20} MiB image ${image} (removed on exit)`,
      );
      specs = [parseSlotSpec(`${freeSlot(others)},${EMULATION},${image}`)];
    }
    const log = (message: string) => console.stderr(`${PROGRAM}: ${message}\n`);
    const iothreadCount = parseIothreads(values.iothreads);
    const vcpus = parseCpus(values.cpus, spelled.cpus);
    let configs: VmDiskConfig[] = [];
    // One at a time, in command-line order: the first bad medium is the one named.
    for (const spec of specs) {
      const config = await diskConfig(spec);
      configs.push({ ...config, device: { ...config.device, log } });
    }
    // ACRN caps mq=N at the VM's vCPU count: a queue no vCPU drives would sit idle.
    configs = configs.map((config, i) => {
      const queues = config.device.queues ?? 1;
      if (queues <= vcpus) return config;
      notes.push(
        `-s ${
          specs[i].text
        }: mq=${queues} capped at ${vcpus}, the vCPU count (--cpus), as ACRN does`,
      );
      return { ...config, device: { ...config.device, queues: vcpus } };
    });
    checkSlots(specs, configs, others);
    // --iothreads N: the disks that do not size their own threads share N.
    if (iothreadCount !== undefined) {
      const sharing = specs.map((spec) =>
        spec.workers === undefined && spec.iothreads === undefined
      );
      // An empty drive's media, inserted later, may sleep in the kernel too.
      const emptyUring = specs.some((spec, i) =>
        sharing[i] && spec.nodisk && spec.aio === "io_uring"
      );
      iothreads = sharedThreads(
        iothreadCount,
        configs.filter((_, i) => sharing[i]),
        log,
        emptyUring ? createEventFdWake : undefined,
      );
      configs = configs.map((config, i) =>
        sharing[i]
          ? {
            ...config,
            device: { ...config.device, engine: workerEngine({ threads: iothreads }) },
          }
          : config
      );
    }
    // Only once the whole command line is good: bad input is one line.
    for (const note of notes) console.stderr(`${PROGRAM}: ${note}\n`);

    const vm = await VirtualMachine.create({ memoryBytes, disks: configs, vcpus });
    let control: QmpServer | undefined;
    try {
      if (qmp !== undefined) {
        control = await listenQmp(
          qmp,
          machineDrives(specs, vm.disks.map((disk) => disk.function.device)),
          {
            onQuit: () => stop.request(),
            log,
            signal: signals.signal,
            console,
          },
        );
      }
      const result = await runUos(vm, job, {
        stdout: (text) => console.stdout(text + "\n"),
        stderr: (text) => console.stderr(text),
      });
      reportMediumErrors(vm, log);
      return signals.exitStatus ?? result.exitCode;
    } finally {
      await control?.close();
      await vm.close();
      await iothreads?.close();
    }
  } catch (error) {
    console.stderr(`${PROGRAM}: ${error instanceof Error ? error.message : String(error)}\n`);
    return signals.exitStatus ?? (isUsageError(error) ? EXIT_USAGE : EXIT_FAILURE);
  } finally {
    signals.close();
    removeTemporary();
  }
}

/**
 * What each disk's medium did wrong during the run, one line per disk (the
 * guest saw only IOERR; the first failure of each kind was logged as it
 * happened). Disks are named as the guest names them, in slot order.
 */
function reportMediumErrors(vm: VirtualMachine, log: (message: string) => void): void {
  const disks = [...vm.disks].sort((a, b) => a.slot - b.slot || a.func - b.func);
  disks.forEach((disk, i) => {
    const summary = disk.function.device.mediumErrors.summary();
    if (summary.total > 0) {
      log(`${diskName(i)} (slot ${disk.slot}:${disk.func}): ${describeSummary(summary)}`);
    }
  });
}

/** Errors that are the user's input: bad options or files, or a mode this runtime lacks. */
function isUsageError(error: unknown): boolean {
  return error instanceof VirtioBlkError &&
    (error.code === "INVALID_CONFIG" || error.code === "BAD_BACKING_FILE" ||
      error.code === "UNSUPPORTED");
}

/**
 * `--vhost-user SOCKET -s …`: serves the one device over vhost-user-blk to
 * a VMM (QEMU) instead of booting the built-in guest, until SIGINT or
 * SIGTERM, which give the exit status as for any run. The slot number is the
 * user's to choose in QEMU's command line.
 */
async function serveOverVhostUser(
  socketPath: string,
  values: Readonly<Record<string, unknown>> & { slot?: string[]; job?: string; memory?: string },
  qmp: QmpOption | undefined,
  console: Console,
  signals: StopSignals,
): Promise<number> {
  const slots = values.slot ?? [];
  if (slots.length !== 1) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `--vhost-user serves one device: give exactly one -s (got ${slots.length})`,
    );
  }
  if (values.iothreads !== undefined) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      "--iothreads shares threads among the built-in machine's disks; with --vhost-user give " +
        "the one device iothread=N in its -s",
    );
  }
  const guestOnly = [
    "job",
    "json",
    "output-format",
    "disk",
    "memory",
    "cpus",
    ...Object.keys(LOAD_OPTION_DEFINITIONS),
  ];
  const given = guestOnly.find((name) => values[name] !== undefined);
  if (given !== undefined) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `--${given} is for the built-in guest; with --vhost-user the guest is QEMU's`,
    );
  }
  const spec = parseSlotSpec(slots[0]);
  const { device } = await diskConfig(spec);
  const { serveVhostUserBlk } = await import("../vhost_user/server.ts");
  const log = (message: string) => console.stderr(`${PROGRAM}: ${message}\n`);
  // QMP's quit stops the export as a signal does.
  const quit = new AbortController();
  const server = serveVhostUserBlk({
    socketPath,
    device: { ...device, log },
    signal: AbortSignal.any([signals.signal, quit.signal]),
    log,
  });
  let control: QmpServer | undefined;
  try {
    if (qmp !== undefined) {
      control = await listenQmp(qmp, slotDrives([{ spec, holder: server }]), {
        onQuit: () => quit.abort(),
        log,
        signal: signals.signal,
        console,
      });
    }
  } catch (error) {
    await server.close();
    throw error;
  }
  console.stderr(
    `${PROGRAM}: serving ${spec.path} over vhost-user-blk on ${server.socketPath}; connect QEMU with ` +
      `-chardev socket,id=vu,path=${server.socketPath} -device vhost-user-blk-pci,chardev=vu` +
      `${spec.queues === undefined ? "" : `,num-queues=${spec.queues}`} ` +
      `(guest RAM: -object memory-backend-memfd,id=mem,size=…,share=on -machine memory-backend=mem); ` +
      `Ctrl-C stops\n`,
  );
  await server.closed;
  await control?.close();
  console.stderr(
    `${PROGRAM}: vhost-user server stopped after ${server.connections} connection(s)\n`,
  );
  return signals.exitStatus ?? EXIT_OK;
}

/**
 * `--qmp PATH` or QEMU's `-qmp unix:PATH,server=on,wait=off`, given at
 * most once; `args` is the command line as typed, for the spelling.
 */
function parseQmp(values: readonly string[] | undefined, args: readonly string[]) {
  if (values === undefined || values.length === 0) return undefined;
  const spelled = args.includes(QEMU_SPELLING) ? QEMU_SPELLING : "--qmp";
  if (values.length > 1) {
    throw new VirtioBlkError("INVALID_CONFIG", `${spelled} given ${values.length} times: give one`);
  }
  return parseQmpOption(values[0], spelled);
}

/**
 * Starts the QMP server on `qmp.path` for `drives`, says where, and with
 * `wait=on` holds the run until a client connects (or a signal stops it).
 */
async function listenQmp(
  qmp: QmpOption,
  drives: QmpDrive[],
  options: {
    onQuit: () => void;
    log: (message: string) => void;
    signal: AbortSignal;
    console: Console;
  },
): Promise<QmpServer> {
  const server = await QmpServer.listen({
    path: qmp.path,
    drives,
    onQuit: options.onQuit,
    log: options.log,
    version: { qemu: { ...QEMU_VERSION }, package: `${PROGRAM} ${programVersion()}` },
  });
  const names = drives.map((drive) => drive.device).join(", ");
  options.log(`QMP on ${qmp.path} (drives ${names})`);
  if (qmp.wait) {
    options.log(`waiting for a QMP client on ${qmp.path} (wait=on)`);
    await Promise.race([
      server.firstClient,
      new Promise<void>((resolve) => options.signal.addEventListener("abort", () => resolve())),
    ]);
  }
  return server;
}

function parseJob(
  values: Readonly<Record<string, unknown>> & { job?: string; json?: boolean; disk?: string },
  progress: boolean,
  stop: StopFlag,
  qmp: boolean,
): UosJob {
  // With a QMP socket the machine stays up until quit, as QEMU's does.
  const kind = values.job ?? (qmp ? "watch" : "lsblk");
  const json = wantsJson(values);
  const loadOptionGiven = Object.keys(LOAD_OPTION_DEFINITIONS).some((name) =>
    values[name] !== undefined
  );
  switch (kind) {
    case "lsblk":
    case "watch":
      if (loadOptionGiven || values.disk !== undefined) {
        throw new VirtioBlkError(
          "INVALID_CONFIG",
          "load options (--rw, --bs, --disk, …) need --job load",
        );
      }
      return kind === "lsblk" ? { kind, json } : { kind, json, stop: stop.buffer };
    case "load":
      return {
        kind,
        disk: values.disk ?? "vda",
        options: parseLoadOptions(values),
        json,
        progress,
        stop: stop.buffer,
      };
    default:
      throw new VirtioBlkError("INVALID_CONFIG", `unknown job "${kind}" (lsblk, watch or load)`);
  }
}

/** `--json`, or fio's spelling of it and of the default: `--output-format=json|normal`. */
function wantsJson(values: Readonly<Record<string, unknown>> & { json?: boolean }): boolean {
  const format = values["output-format"];
  if (format === undefined) return values.json ?? false;
  if (format !== "json" && format !== "normal") {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `--output-format=${format}: expected json or normal`,
    );
  }
  if (format === "normal" && values.json) {
    throw new VirtioBlkError("INVALID_CONFIG", "--json contradicts --output-format=normal");
  }
  return format === "json";
}

/** `--iothreads N`: 1 to 64 shared I/O threads. */
function parseIothreads(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const count = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(count) || count < 1 || count > 64) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `--iothreads ${text}: must be a whole number from 1 to 64`,
    );
  }
  return count;
}

/**
 * The I/O threads `disks` share (QEMU's `-object iothread`): one pool big
 * enough for their largest requests, and a wake signal when one of them
 * sleeps in the kernel (aio=io_uring).
 */
function sharedThreads(
  workers: number,
  disks: readonly VmDiskConfig[],
  log: (message: string) => void,
  wake?: WakeSignalFactory,
): BlockifThreads {
  const segMax = Math.max(
    DEFAULT_QUEUE_SIZE - 2,
    ...disks.map(({ device }) => VirtioBlkDevice.recordSlots(device)),
  );
  const makeWake = disks.map(({ device }) => wakeSignalFor(device.backend))
    .find((make) => make !== undefined);
  return new BlockifThreads({ workers, segMax, wake: makeWake ?? wake, log });
}

/** `-c N` / `--cpus N`: the built-in machine's vCPUs, 1 to {@linkcode MAX_VCPUS}. */
function parseCpus(text: string | undefined, spelled = "--cpus"): number {
  if (text === undefined) return 1;
  const count = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_VCPUS) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `${spelled} ${text}: must be a whole number from 1 to ${MAX_VCPUS}`,
    );
  }
  return count;
}

/** `-m SIZE`, named in a message the way the user spelled it (`-m` or `--memory`). */
function parseMemory(text: string | undefined, spelled = "--memory"): number {
  if (text === undefined) return DEFAULT_MEMORY_BYTES;
  const bytes = parseSize(text);
  if (bytes === undefined || bytes < 16 << 20 || bytes > 4 * 1024 ** 3) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `${spelled} ${text}: expected a size from 16M to 4G`,
    );
  }
  return bytes;
}

/** Slot 9 for the temporary image, as in the examples, unless a device of another type holds it. */
function freeSlot(others: readonly OtherDeviceSpec[]): number {
  const taken = (slot: number) =>
    others.some((o) => o.takesSlot && o.slot === slot && o.func === 0);
  if (!taken(9)) return 9;
  for (let slot = 1; slot < MAX_SLOTS; slot++) if (!taken(slot)) return slot;
  return 9; // every slot is taken: checkSlots names the clash
}

/** Creates a sparse file of `bytes` (refusing to touch an existing one). */
function createSparseImage(path: string, bytes: number): void {
  if (existsSync(path)) throw new VirtioBlkError("INVALID_CONFIG", `${path} already exists`);
  const fd = openSync(path, "wx");
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}
