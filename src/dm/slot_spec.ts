/**
 * ACRN's `-s` device option for virtio-blk:
 *
 *     -s <slot>[:<func>],virtio-blk,<path>[,<option>…]
 *
 * parsed into a typed {@linkcode SlotSpec} (a pure function), then checked
 * against the file system into a device configuration. Every malformed or
 * impossible value is a `VirtioBlkError` naming the problem, prefixed with
 * the `-s` value as the user typed it. {@linkcode parseSlotOption} also
 * takes ACRN's other device types (`-s 0:0,hostbridge`, `-s 1:0,lpc`, see
 * `acrn_devices.ts`), which this device model does not emulate.
 *
 * The path may be ACRN's `nodisk`: a drive with no medium (capacity 0),
 * into which a medium is put later (QMP `blockdev-change-medium`, ACRN's
 * `acrnctl blkrescan`); its options say how that medium will be opened.
 *
 * Options (reference §5): `writethru` (default) / `writeback` (the last one
 * wins), `ro`, `sectorsize=<logical>[/<physical>]`, `range=<start>/<size>`
 * (logical sectors), `nocache` (O_DIRECT),
 * `discard[=max_discard_sectors:max_discard_seg:discard_sector_alignment]`
 * (offer DISCARD), `no_bst_block` (overlapping requests are not held back
 * for each other). Extensions of this project:
 * `serial=<text>` (GET_ID, at most 20 characters), `queue_size=<n>`,
 * `workers=<n>`, `pool_size=<n>`, `dispatch=worker|device`, `poll_us=<n>`,
 * `io=fsfile|node-fs`. ACRN's `aio=threads|io_uring` picks how the I/O
 * threads reach the file (io_uring: Deno on Linux), and its
 * `iothread[=N[@cpus]]`, written before the path as ACRN does, how many I/O
 * threads serve the device (CPU affinity is not applied here). ACRN's
 * `mq=N`, before the path as ACRN writes it or among the options, gives the
 * device N request queues (VIRTIO_BLK_F_MQ, num_queues; 1 to `MAX_QUEUES`);
 * ACRN caps N at the VM's vCPU count, which the command line does (this
 * module knows no vCPUs).
 *
 * The path may be an NBD URI instead of a file (`nbd://host[:port]/export`,
 * `nbd+unix:///export?socket=/path`): the disk is then an export on an NBD
 * server, probed when the configuration is checked; `ro`, `range=` and
 * `sectorsize=` apply to it, the file options (`nocache`, `io=`, `aio=`) do
 * not.
 *
 * @module
 */

import { statSync } from "node:fs";
import { type FileBackendSpec, isFileSpec } from "../backend/file_driver.ts";
import { checkFileOptions, describeFile, type FileOptions } from "../backend/file_spec.ts";
import { noMedium } from "../backend/no_medium.ts";
import { createEventFdWake } from "../io/io_uring/wake.ts";
import { describeNbd } from "../backend/nbd_spec.ts";
import type { BackendSpec } from "../backend/backend.ts";
import { isNbdUri } from "../nbd/uri.ts";
import { validateSectorSize } from "../backend/sector_size.ts";
import { type BlkDeviceOptions, type DiscardOptions, MAX_QUEUES } from "../blk/device.ts";
import { MAX_RANGE_SEGMENTS, U32_MAX } from "../blk/spec.ts";
import { serialBytes } from "../blk/serial.ts";
import type { Dispatch } from "../blockif/server.ts";
import { workerEngine } from "../blockif/worker_engine.ts";
import { VirtioBlkError } from "../errors.ts";
import { isValidQueueSize } from "../virtio/spec.ts";
import { ACRN_DEVICE_TYPES, HOST_BRIDGE_TYPES, OBSOLETE_TYPES } from "./acrn_devices.ts";
import { MAX_FUNCTIONS, MAX_SLOTS } from "./pci_bus.ts";
import type { VmDiskConfig } from "./vm.ts";

/** A parsed `-s` option. */
export interface SlotSpec {
  /** The `-s` value as the user typed it, for messages. */
  readonly text: string;
  /** PCI slot on bus 0, 0–31; the lowest slot is the guest's /dev/vda. */
  readonly slot: number;
  /** PCI function in the slot, 0–7 (0 when the spec gives none). */
  readonly func: number;
  /** The backing file or block device; `nodisk` for an empty drive. */
  readonly path: string;
  /** ACRN's `nodisk`: the drive starts empty, and its media come later. */
  readonly nodisk: boolean;
  /** Everything after `virtio-blk,` (ACRN derives the default serial from it). */
  readonly optionString: string;
  /** `ro`: open the file read-only and offer VIRTIO_BLK_F_RO. */
  readonly readOnly: boolean;
  /** `writeback` (true) or `writethru` (false, the default): the last one given wins. */
  readonly writeback: boolean;
  /** `sectorsize=<logical>`: the device's blk_size in bytes (default 512). */
  readonly logicalBlockSize: number;
  /** `sectorsize=<logical>/<physical>` (default the logical size). */
  readonly physicalBlockSize: number;
  /** `range=<start>/<size>`: the window of the file the device sees, in logical sectors. */
  readonly range?: { readonly start: number; readonly size: number };
  /** `nocache`: open the file with O_DIRECT. */
  readonly direct: boolean;
  /**
   * `discard[=max_discard_sectors:max_discard_seg:discard_sector_alignment]`:
   * offer DISCARD (where the medium can give space back); absent: not offered.
   */
  readonly discard?: DiscardOptions;
  /**
   * False with `no_bst_block`: a request is not held back while an earlier
   * overlapping one is in flight (default true).
   */
  readonly orderOverlapping: boolean;
  /** `serial=<text>`: the GET_ID serial (default derived from the option string, as ACRN). */
  readonly serial?: string;
  /** `io=fsfile|node-fs`: which file I/O each thread uses (default by runtime). */
  readonly io?: FileBackendSpec["io"];
  /** `queue_size=<n>`: ring size, a power of two from 2 to 32768 (default 64). */
  readonly queueSize?: number;
  /** `workers=<n>`: blockif worker threads, 1–256 (default 8). */
  readonly workers?: number;
  /** `pool_size=<n>`: blockif request elements, 1–65536 (default 64). */
  readonly poolSize?: number;
  /** `dispatch=worker|device`: who drains the ring (default `worker`). */
  readonly dispatch?: Dispatch;
  /** `poll_us=<n>`: an idle worker's longest polling window, 0–1000000 µs (default 0, off). */
  readonly pollUs?: number;
  /** `aio=threads|io_uring`: synchronous I/O per thread (default), or io_uring. */
  readonly aio?: FileBackendSpec["aio"];
  /** `iothread[=N]` (ACRN, before the path): N I/O threads serve the device (a bare one: 1). */
  readonly iothreads?: number;
  /** `mq=N` (ACRN, before the path or after it): N request queues, 1 to `MAX_QUEUES`. */
  readonly queues?: number;
}

/** The only emulation this device model provides. */
export const EMULATION = "virtio-blk";

/** ACRN's path word for a drive without a medium. */
export const NODISK = "nodisk";

/** An `-s` naming another of ACRN's device types, which this device model does not emulate. */
export interface OtherDeviceSpec {
  /** The `-s` value as the user typed it. */
  readonly text: string;
  /** ACRN's name of the device type (`lpc`, `virtio-net`, …). */
  readonly emulation: string;
  /** PCI slot on bus 0 the line names. */
  readonly slot: number;
  /** PCI function in the slot. */
  readonly func: number;
  /**
   * Whether the device holds its slot:func, so no virtio-blk can go there
   * (false for the types ACRN ignores as obsolete).
   */
  readonly takesSlot: boolean;
  /** What to tell the user about it (one line), if anything. */
  readonly note?: string;
}

/** A parsed `-s` value: a virtio-blk function, or a device of another type. */
export type SlotOption =
  | { readonly kind: "virtio-blk"; readonly spec: SlotSpec }
  | { readonly kind: "other"; readonly device: OtherDeviceSpec };

function invalid(spec: string, message: string): VirtioBlkError {
  return new VirtioBlkError("INVALID_CONFIG", `-s ${spec}: ${message}`);
}

function parseInteger(spec: string, what: string, text: string, min: number, max: number): number {
  // Anything else, a sign included, gets the same message with the range.
  const value = /^(0x[0-9a-f]+|[0-9]+)$/i.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(spec, `${what} "${text}" must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/**
 * Parses one `-s` value of any of ACRN's device types. Pure: looks at no
 * file. A virtio-blk function is parsed as by {@linkcode parseSlotSpec};
 * another type becomes an {@linkcode OtherDeviceSpec} with the note to give
 * the user. Throws for a type ACRN does not know, or one placed where it
 * cannot go here (a host bridge anywhere but 0:0, anything else at 0:0).
 *
 * @example
 * ```ts
 * parseSlotOption("1:0,lpc");
 * // { kind: "other", device: { emulation: "lpc", slot: 1, func: 0, takesSlot: true, note: … } }
 * ```
 */
export function parseSlotOption(text: string): SlotOption {
  const fields = text.split(",");
  if (fields.length < 2) {
    throw invalid(text, `expected <slot>[:<func>],${EMULATION},<file>[,options]`);
  }
  const [where, emulation, ...config] = fields;
  const { slot, func } = parseWhere(text, where);
  if (emulation === EMULATION) {
    return { kind: EMULATION, spec: parseVirtioBlk(text, slot, func, config) };
  }
  if (!ACRN_DEVICE_TYPES.has(emulation)) {
    throw invalid(
      text,
      `unknown device type "${emulation}" (${EMULATION} is emulated; ACRN's other types are ` +
        `accepted and not emulated)`,
    );
  }
  const device = { text, emulation, slot, func };
  if (HOST_BRIDGE_TYPES.has(emulation)) {
    if (slot !== 0 || func !== 0) throw invalid(text, "the host bridge is at 0:0 here");
    // 00:00.0 already holds this device model's host bridge: nothing to add or say.
    return { kind: "other", device: { ...device, takesSlot: true } };
  }
  if (OBSOLETE_TYPES.has(emulation)) {
    const note = `${emulation} is obsolete; ACRN ignores it, and so does this device model`;
    return { kind: "other", device: { ...device, takesSlot: false, note } };
  }
  if (slot === 0 && func === 0) throw invalid(text, "slot 0:0 holds the host bridge");
  const note = `${emulation} is not emulated here (only ${EMULATION} is): ` +
    `slot ${slot}:${func} stays empty`;
  return { kind: "other", device: { ...device, takesSlot: true, note } };
}

/**
 * Parses one `-s` value of a virtio-blk function. Pure: looks at no file.
 *
 * @example
 * ```ts
 * parseSlotSpec("9,virtio-blk,disk.img,writeback,sectorsize=4096");
 * // { slot: 9, func: 0, path: "disk.img", writeback: true, logicalBlockSize: 4096, … }
 * ```
 */
export function parseSlotSpec(spec: string): SlotSpec {
  const option = parseSlotOption(spec);
  if (option.kind !== EMULATION) {
    throw invalid(spec, `${option.device.emulation} is not emulated here; only ${EMULATION} is`);
  }
  return option.spec;
}

/** `<slot>`, `<slot>:<func>` or `<bus>:<slot>:<func>`, as ACRN accepts (bus 0 only). */
function parseWhere(spec: string, where: string): { slot: number; func: number } {
  const parts = where.split(":");
  // Signed numbers go on to the range check, which names the range.
  if (parts.length > 3 || parts.some((part) => !/^-?\d+$/.test(part))) {
    throw invalid(spec, `bad slot "${where}": expected <slot>[:<func>]`);
  }
  if (parts.length === 3) {
    const bus = parts.shift()!;
    if (Number(bus) !== 0) throw invalid(spec, `bus ${bus} does not exist; only bus 0 does`);
  }
  const [slotText, funcText] = parts;
  const slot = parseInteger(spec, "slot", slotText, 0, MAX_SLOTS - 1);
  const func = funcText === undefined
    ? 0
    : parseInteger(spec, "function", funcText, 0, MAX_FUNCTIONS - 1);
  return { slot, func };
}

function parseVirtioBlk(spec: string, slot: number, func: number, config: string[]): SlotSpec {
  if (slot === 0 && func === 0) throw invalid(spec, "slot 0:0 holds the host bridge");
  // ACRN's boot-device flag (`virtio-blk,b,<path>`): the built-in guest boots from nothing.
  let rest = config[0] === "b" && config.length > 1 ? config.slice(1) : config;
  // ACRN's `iothread[=N[@cpuA:cpuB/…]]` and `mq=N` come before the path.
  let iothreads: number | undefined;
  let queues: number | undefined;
  while (rest.length > 1 && /^(iothread(=|$)|mq=)/.test(rest[0])) {
    if (rest[0].startsWith("mq=")) queues = parseQueues(spec, rest[0].slice(3));
    else iothreads = parseIothread(spec, rest[0]);
    rest = rest.slice(1);
  }
  const [path, ...options] = rest;
  if (path === undefined || path === "") throw invalid(spec, "missing backing file path");

  let readOnly = false;
  let writeback = false;
  let sector: { logical: number; physical: number } = { logical: 512, physical: 512 };
  let range: SlotSpec["range"];
  let direct = false;
  let discard: DiscardOptions | undefined;
  let orderOverlapping = true;
  let serial: string | undefined;
  let io: SlotSpec["io"];
  let queueSize: number | undefined;
  let workers: number | undefined;
  let poolSize: number | undefined;
  let dispatch: Dispatch | undefined;
  let pollUs: number | undefined;
  let aio: SlotSpec["aio"];

  for (const option of options) {
    const equals = option.indexOf("=");
    const name = equals < 0 ? option : option.slice(0, equals);
    const value = equals < 0 ? undefined : option.slice(equals + 1);
    const needValue = (): string => {
      if (value === undefined || value === "") {
        throw invalid(spec, `option ${name} needs a value (${name}=…)`);
      }
      return value;
    };
    const noValue = () => {
      if (value !== undefined) throw invalid(spec, `option ${name} takes no value`);
    };
    switch (name) {
      case "writethru":
        noValue();
        writeback = false;
        break;
      case "writeback":
        noValue();
        writeback = true;
        break;
      case "ro":
        noValue();
        readOnly = true;
        break;
      case "nocache":
        noValue();
        direct = true;
        break;
      case "discard":
        discard = value === undefined ? {} : parseDiscard(spec, value);
        break;
      case "no_bst_block":
        noValue();
        orderOverlapping = false;
        break;
      case "sectorsize": {
        const match = /^(\d+)(?:\/(\d+))?$/.exec(needValue());
        if (!match) {
          throw invalid(spec, `sectorsize "${value}" must be <logical>[/<physical>] in bytes`);
        }
        const logical = Number(match[1]);
        try {
          sector = validateSectorSize(logical, match[2] === undefined ? logical : Number(match[2]));
        } catch (error) {
          throw invalid(spec, (error as Error).message);
        }
        break;
      }
      case "range": {
        const match = /^(\d+)\/(\d+)$/.exec(needValue());
        if (!match) {
          throw invalid(spec, `range "${value}" must be <start>/<size> in logical sectors`);
        }
        range = { start: Number(match[1]), size: Number(match[2]) };
        for (const [name, digits] of [["start", match[1]], ["size", match[2]]]) {
          if (!Number.isSafeInteger(Number(digits))) {
            throw invalid(spec, `range "${value}": ${name} ${digits} is too large`);
          }
        }
        if (range.size === 0) throw invalid(spec, `range "${value}" has size 0`);
        break;
      }
      case "serial":
        serial = needValue();
        try {
          serialBytes(serial);
        } catch (error) {
          throw invalid(spec, (error as Error).message);
        }
        break;
      case "io":
        if (value !== "fsfile" && value !== "node-fs") {
          throw invalid(spec, `io must be fsfile or node-fs, not "${value}"`);
        }
        io = value;
        break;
      case "queue_size":
        queueSize = parseInteger(spec, "queue_size", needValue(), 2, 32768);
        if (!isValidQueueSize(queueSize)) {
          throw invalid(spec, `queue_size ${queueSize} is not a power of two`);
        }
        break;
      case "workers":
        workers = parseInteger(spec, "workers", needValue(), 1, 256);
        break;
      case "pool_size":
        poolSize = parseInteger(spec, "pool_size", needValue(), 1, 65536);
        break;
      case "poll_us":
        pollUs = parseInteger(spec, "poll_us", needValue(), 0, 1_000_000);
        break;
      case "dispatch":
        if (value !== "worker" && value !== "device") {
          throw invalid(spec, `dispatch must be worker or device, not "${value}"`);
        }
        dispatch = value;
        break;
      case "aio":
        if (value !== "threads" && value !== "io_uring") {
          throw invalid(spec, `aio must be threads or io_uring, not "${value}"`);
        }
        aio = value;
        break;
      case "iothread":
        iothreads = parseIothread(spec, option);
        break;
      case "mq":
        queues = parseQueues(spec, needValue());
        break;
      default:
        throw invalid(spec, `unknown option "${option}"`);
    }
  }
  const nodisk = path === NODISK;
  if (nodisk && range !== undefined) {
    throw invalid(spec, `range= is a window of a file, and ${NODISK} has none`);
  }
  return {
    text: spec,
    slot,
    func,
    path,
    nodisk,
    optionString: [path, ...options].join(","),
    readOnly,
    writeback,
    logicalBlockSize: sector.logical,
    physicalBlockSize: sector.physical,
    range,
    direct,
    discard,
    orderOverlapping,
    serial,
    io,
    queueSize,
    workers,
    poolSize,
    dispatch,
    pollUs,
    aio,
    iothreads,
    queues,
  };
}

/** ACRN's `mq=N`: N request queues, 1 to {@linkcode MAX_QUEUES}. */
function parseQueues(spec: string, text: string): number {
  return parseInteger(spec, "mq", text, 1, MAX_QUEUES);
}

/**
 * ACRN's `discard=max_discard_sectors:max_discard_seg:discard_sector_alignment`:
 * all three numbers, each in the range its config field takes (the segments
 * at most 256, the most Linux sends).
 */
function parseDiscard(spec: string, value: string): DiscardOptions {
  const parts = value.split(":");
  if (parts.length !== 3 || parts.some((part) => part === "")) {
    throw invalid(
      spec,
      `discard "${value}" must be max_discard_sectors:max_discard_seg:discard_sector_alignment`,
    );
  }
  return {
    maxSectors: parseInteger(spec, "max_discard_sectors", parts[0], 1, U32_MAX),
    maxSegments: parseInteger(spec, "max_discard_seg", parts[1], 1, MAX_RANGE_SEGMENTS),
    alignment: parseInteger(spec, "discard_sector_alignment", parts[2], 0, U32_MAX),
  };
}

/**
 * ACRN's `iothread`, `iothread=N` or `iothread=N@cpuA:cpuB/…`: N I/O threads
 * (1 to 64; a bare one is 1). The CPU list is checked for shape and not
 * applied: JavaScript threads cannot be pinned.
 */
function parseIothread(spec: string, option: string): number {
  const match = /^iothread(?:=(\d+)(?:@([0-9:/]+))?)?$/.exec(option);
  if (!match) throw invalid(spec, `"${option}" must be iothread[=N[@cpu:cpu/…]]`);
  return match[1] === undefined ? 1 : parseInteger(spec, "iothread", match[1], 1, 64);
}

/**
 * Checks a parsed spec against its backing file (see `describeFile`), or
 * the NBD export its URI names (see `describeNbd`: one connection to the
 * server), and returns the machine's disk configuration. Never creates or
 * changes the file. A problem with the medium is a `VirtioBlkError` that
 * names the `-s` value.
 */
export async function diskConfig(spec: SlotSpec): Promise<VmDiskConfig> {
  let backend;
  try {
    if (spec.nodisk) {
      // What a medium inserted later will be opened with, checked now.
      checkFileOptions(fileOptions(spec, spec.readOnly));
      backend = noMedium({ readOnly: spec.readOnly });
    } else {
      backend = await describeDrive(spec);
    }
  } catch (error) {
    if (!(error instanceof VirtioBlkError)) throw error;
    throw new VirtioBlkError(error.code, `-s ${spec.text}: ${error.message}`, { cause: error });
  }
  const device: BlkDeviceOptions = {
    backend,
    writeback: spec.writeback,
    optionString: spec.optionString,
    serial: spec.serial,
    logicalBlockSize: spec.logicalBlockSize,
    physicalBlockSize: spec.physicalBlockSize,
    queueSize: spec.queueSize,
    discard: spec.discard,
    orderOverlapping: spec.orderOverlapping,
    queues: spec.queues,
    engine: workerEngine({
      // ACRN's iothread=N: N threads serve the device (workers= says the same in our words).
      workers: spec.workers ?? spec.iothreads,
      poolSize: spec.poolSize,
      dispatch: spec.dispatch,
      pollUs: spec.pollUs,
      // An empty drive's threads wait for media that sleep in the kernel.
      wake: spec.nodisk && spec.aio === "io_uring" ? createEventFdWake : undefined,
    }),
  };
  return { slot: spec.slot, func: spec.func, device };
}

/** How the medium of `spec`'s drive is opened (read-only or not): its ACRN options. */
function fileOptions(spec: SlotSpec, readOnly: boolean): FileOptions {
  return {
    readOnly,
    logicalBlockSize: spec.logicalBlockSize,
    physicalBlockSize: spec.physicalBlockSize,
    io: spec.io,
    direct: spec.direct,
    aio: spec.aio,
  };
}

/**
 * Describes the file at `path` as a medium of `spec`'s drive, with its
 * options (QMP's `blockdev-change-medium` into a `nodisk` drive).
 */
export function describeMedium(spec: SlotSpec, path: string, readOnly: boolean): FileBackendSpec {
  return describeFile(path, fileOptions(spec, readOnly));
}

/** The medium `spec`'s path names: an NBD export for an NBD URI, else a file. */
function describeDrive(spec: SlotSpec): Promise<BackendSpec> {
  if (!isNbdUri(spec.path)) {
    return Promise.resolve(
      describeFile(spec.path, { ...fileOptions(spec, spec.readOnly), range: spec.range }),
    );
  }
  const fileOnly = [
    spec.direct ? "nocache" : undefined,
    spec.io === undefined ? undefined : `io=${spec.io}`,
    spec.aio === undefined ? undefined : `aio=${spec.aio}`,
  ].find((option) => option !== undefined);
  if (fileOnly !== undefined) {
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `option ${fileOnly} applies to files, not to an NBD export`,
    );
  }
  return describeNbd(spec.path, {
    readOnly: spec.readOnly,
    range: spec.range,
    logicalBlockSize: spec.logicalBlockSize,
    physicalBlockSize: spec.physicalBlockSize,
  });
}

/**
 * Checks a whole command line's specs together: no slot used twice (devices
 * of other types, `others`, hold theirs too), every virtio-blk function in
 * a slot whose function 0 is one of ours, and no file opened writable by one
 * slot and used by another.
 */
export function checkSlots(
  specs: readonly SlotSpec[],
  configs: readonly VmDiskConfig[],
  others: readonly OtherDeviceSpec[] = [],
): void {
  const slots = new Map<string, string>();
  const take = (slot: number, func: number, text: string) => {
    const where = `${slot}:${func}`;
    if (slots.has(where)) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `-s ${text}: slot ${where} is already used by -s ${slots.get(where)}`,
      );
    }
    slots.set(where, text);
  };
  for (const other of others) if (other.takesSlot) take(other.slot, other.func, other.text);
  for (const spec of specs) take(spec.slot, spec.func, spec.text);
  for (const spec of specs) {
    // PCI software reads functions 1–7 of a slot only if function 0 is there
    // and says it is multi-function (PCI 3.0 §6.2.1, header type bit 7);
    // 00:00.0 is the host bridge.
    if (spec.func === 0 || spec.slot === 0) continue;
    if (specs.some((other) => other.slot === spec.slot && other.func === 0)) continue;
    const first = slots.get(`${spec.slot}:0`);
    throw new VirtioBlkError(
      "INVALID_CONFIG",
      `-s ${spec.text}: slot ${spec.slot} has no function 0 here${
        first === undefined ? "" : ` (-s ${first} is not emulated)`
      }, and a PCI scan looks at no other function of such a slot; use ${spec.slot}:0`,
    );
  }
  const files = new Map<string, { spec: string; writable: boolean }>();
  specs.forEach((spec, i) => {
    const text = spec.text;
    const backend = configs[i].device.backend;
    if (!isFileSpec(backend)) return;
    // The same file under another name (symlink, hard link) is the same file.
    const { dev, ino } = statSync(backend.path);
    const identity = `${dev}:${ino}`;
    const other = files.get(identity);
    const writable = !backend.readOnly;
    if (other && (other.writable || writable)) {
      throw new VirtioBlkError(
        "INVALID_CONFIG",
        `-s ${text}: ${backend.path} is already used by -s ${other.spec}${
          other.writable ? " (opened writable)" : ""
        }; a file opened writable can back only one slot`,
      );
    }
    files.set(identity, { spec: text, writable: writable || (other?.writable ?? false) });
  });
}
