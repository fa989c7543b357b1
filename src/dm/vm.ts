/**
 * The device model of one virtual machine: guest memory, PCI bus 0 with its
 * virtio-blk functions, the I/O-request mailbox the vCPU posts port accesses
 * to, the I/O events that turn QUEUE_NOTIFY writes into doorbell rings, and
 * the interrupt word that every device's interrupt pulses.
 *
 * vCPUs. A machine has `vcpus` vCPUs (default 1), each a Worker with its
 * own mailbox slot and its own share of guest RAM to allocate from. vCPU 0
 * boots and runs the job; it starts another vCPU by posting
 * {@linkcode VcpuMessage} `start-vcpu` with that vCPU's job (a bootstrap
 * processor's start-up IPI), and hears of its result as `vcpu-done`. With
 * several request queues (`mq=`), each vCPU kicks its own queue:
 * QUEUE_NOTIFY with the queue's index rings that queue's doorbell.
 *
 * ```
 * vCPU Worker ──port I/O──► mailbox ──► PciBus ──► LegacyVirtioPci (config, BAR0)
 *      │  QUEUE_NOTIFY ──► I/O event ──► doorbell ──► blockif workers
 *      ◄──────────── interrupt word ◄──────────────── (interrupt from any worker)
 * ```
 *
 * @module
 */

import type { BlkDeviceOptions } from "../blk/device.ts";
import { createVirtioBlkPci, type VirtioBlkPci } from "./virtio_blk_pci.ts";
import { workerEngine } from "../blockif/worker_engine.ts";
import { VirtioBlkError } from "../errors.ts";
import { SharedGuestMemory, type SharedMemoryHandle } from "../memory/shared_memory.ts";
import { startThread, type Thread } from "../runtime/thread.ts";
import { LegacyRegister } from "../virtio/legacy_pci.ts";
import { type InterruptLineHandle, TransportWord } from "../virtio/transport_state.ts";
import { IoEventKind, IoEventTable } from "./io_events.ts";
import { createMailbox, type IoEvents, MailboxServer } from "./io_mailbox.ts";
import { PciBus } from "./pci_bus.ts";

/** Default guest memory: room for rings and 64 in-flight 1 MiB buffers. */
export const DEFAULT_MEMORY_BYTES = 256 << 20;
/** Most vCPUs a machine may have (one Worker each). */
export const MAX_VCPUS = 16;

/** Guest-physical memory below this is left to the guest's own use (like low memory). */
export const GUEST_RAM_START = 0x10_0000;

/** One virtio-blk function of the machine. */
export interface VmDiskConfig {
  /** PCI slot on bus 0, 0–31 (00:00.0 is the host bridge); the guest names disks in slot order. */
  readonly slot: number;
  /** PCI function in the slot, 0–7. */
  readonly func: number;
  /** The medium and the device's settings; the engine defaults to the blockif workers. */
  readonly device: BlkDeviceOptions;
}

/** A machine's configuration. */
export interface VmConfig {
  /** Guest memory in bytes (default 256 MiB). */
  readonly memoryBytes?: number;
  /** The virtio-blk functions to plug in; each slot:func at most once. */
  readonly disks: readonly VmDiskConfig[];
  /** vCPUs, 1 to {@linkcode MAX_VCPUS} (default 1). */
  readonly vcpus?: number;
}

/** What a vCPU thread needs to run (structured-cloneable). */
export interface VcpuInit {
  /** The vCPU's number: its slot in the I/O-request mailbox. */
  readonly vcpu: number;
  /** The guest memory, to be opened in the vCPU thread. */
  readonly memory: SharedMemoryHandle;
  /** The I/O-request mailbox the vCPU posts port accesses to. */
  readonly mailbox: SharedArrayBuffer;
  /** Port accesses the vCPU completes itself: QUEUE_NOTIFY doorbells and ISR reads. */
  readonly ioEvents: IoEvents;
  /** The interrupt word, which every disk's interrupt pulses (all vCPUs see it). */
  readonly irq: InterruptLineHandle;
  /** Guest-physical range this vCPU may allocate from (each vCPU has its own share). */
  readonly ram: { readonly start: number; readonly end: number };
  /** The machine's vCPU count. */
  readonly vcpus: number;
}

/** Messages a vCPU thread posts to the device model. */
export type VcpuMessage =
  | { readonly type: "stdout" | "stderr"; readonly text: string }
  | { readonly type: "done"; readonly result: unknown }
  /** vCPU 0 starts vCPU `vcpu` on `job`; its result comes back as {@linkcode VcpuDone}. */
  | { readonly type: "start-vcpu"; readonly vcpu: number; readonly job: unknown }
  /** Data for the caller's own use along the way (a load's progress snapshots). */
  | { readonly type: "event"; readonly data: unknown }
  /** The guest failed; `usage` when it was the user's request that could not be done. */
  | { readonly type: "error"; readonly message: string; readonly usage?: boolean };

/** What the device model posts to vCPU 0 when a vCPU it started is done. */
export interface VcpuDone {
  readonly type: "vcpu-done";
  readonly vcpu: number;
  readonly result: unknown;
}

/** A disk as plugged into the machine. */
export interface VmDisk {
  /** PCI slot on bus 0. */
  readonly slot: number;
  /** PCI function in the slot. */
  readonly func: number;
  /** The virtio-blk PCI function: its device, transport and config space. */
  readonly function: VirtioBlkPci;
}

/** A virtual machine's device model. */
export class VirtualMachine {
  /** Guest memory, shared with the vCPU and the blockif workers. */
  readonly memory: SharedGuestMemory;
  /** PCI bus 0: the host bridge at 00:00.0 and every disk's function. */
  readonly bus: PciBus = new PciBus();
  /** The disks, in the order of {@linkcode VmConfig.disks}. */
  readonly disks: readonly VmDisk[];
  /** vCPUs. */
  readonly vcpus: number;
  readonly #mailbox: SharedArrayBuffer;
  readonly #server: MailboxServer;
  readonly #ioEvents: IoEventTable;
  /** Disk `i`'s first I/O event: one QUEUE_NOTIFY per queue, then ISR. */
  readonly #eventBase: number[] = [];
  readonly #irq: InterruptLineHandle = { buffer: new SharedArrayBuffer(4), index: 0 };

  private constructor(config: VmConfig) {
    this.vcpus = config.vcpus ?? 1;
    this.#mailbox = createMailbox(this.vcpus);
    this.memory = SharedGuestMemory.allocate(config.memoryBytes ?? DEFAULT_MEMORY_BYTES);
    const disks: VmDisk[] = [];
    try {
      for (const disk of config.disks) {
        const fn = createVirtioBlkPci(
          this.memory,
          { engine: workerEngine(), ...disk.device },
          this.#irq,
        );
        disks.push({ slot: disk.slot, func: disk.func, function: fn });
      }
    } catch (error) {
      for (const disk of disks) disk.function.close();
      throw error;
    }
    this.disks = disks;
    let events = 0;
    for (const disk of disks) {
      this.#eventBase.push(events);
      events += disk.function.device.queueCount + 1;
    }
    this.#ioEvents = IoEventTable.create(events);
    disks.forEach((disk, i) => {
      this.bus.attach(disk.slot, disk.func, disk.function.pci);
      this.#armEvents(i);
    });
    this.bus.onIoBarMoved = (slot, func) => {
      const i = disks.findIndex((d) => d.slot === slot && d.func === func);
      if (i >= 0) this.#armEvents(i);
    };
    this.#server = new MailboxServer(
      this.#mailbox,
      this.vcpus,
      (d, port, size, value) => this.bus.portAccess(d, port, size, value),
    );
  }

  /**
   * Builds the machine and waits until every disk's engine serves requests.
   * Throws a `VirtioBlkError` when a slot is taken twice or a disk cannot start.
   */
  static async create(config: VmConfig): Promise<VirtualMachine> {
    const vcpus = config.vcpus ?? 1;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) {
      throw new VirtioBlkError("INVALID_CONFIG", `vCPU count ${vcpus} must be 1 to ${MAX_VCPUS}`);
    }
    const seen = new Set<string>();
    for (const disk of config.disks) {
      const key = `${disk.slot}:${disk.func}`;
      if (seen.has(key)) {
        throw new VirtioBlkError("INVALID_CONFIG", `PCI slot ${key} is used twice`);
      }
      seen.add(key);
    }
    const vm = new VirtualMachine(config);
    try {
      await Promise.all(vm.disks.map((disk) => disk.function.device.ready()));
    } catch (error) {
      await vm.close();
      throw error;
    }
    return vm;
  }

  /**
   * The set-up message for vCPU `vcpu`. The RAM above {@linkcode GUEST_RAM_START}
   * is split evenly: each vCPU allocates from its own share, page-aligned.
   */
  vcpuInit(vcpu = 0): VcpuInit {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpus) {
      throw new RangeError(`the machine has ${this.vcpus} vCPU(s), not vCPU ${vcpu}`);
    }
    const page = 4096;
    const share = Math.floor((this.memory.size - GUEST_RAM_START) / this.vcpus / page) * page;
    const start = GUEST_RAM_START + vcpu * share;
    return {
      vcpu,
      memory: this.memory.handle(),
      mailbox: this.#mailbox,
      ioEvents: {
        table: this.#ioEvents.buffer,
        targets: this.disks.flatMap((disk) => [
          ...Array.from(
            { length: disk.function.device.queueCount },
            (_, queue) => disk.function.device.doorbell(queue),
          ),
          { buffer: disk.function.transport.buffer, index: TransportWord.ISR },
        ]),
      },
      irq: this.#irq,
      ram: { start, end: vcpu === this.vcpus - 1 ? this.memory.size : start + share },
      vcpus: this.vcpus,
    };
  }

  /**
   * Runs a guest program in vCPU 0's thread: the ES module at `url` receives
   * `{ init, job }`, does port I/O through the mailbox, and posts output and
   * a final result. vCPU 0 may start the other vCPUs on jobs of their own
   * (the same module, `start-vcpu`); their results are posted back to it
   * (`vcpu-done`). Resolves with vCPU 0's result; rejects if any vCPU fails.
   * What the guest posts as events goes to `onEvent`.
   */
  async runVcpu(
    url: URL,
    job: unknown,
    output: (stream: "stdout" | "stderr", text: string) => void = () => {},
    onEvent: (data: unknown) => void = () => {},
  ): Promise<unknown> {
    this.#server.start();
    const threads: Thread[] = [];
    try {
      const boot = await startThread(url, "vcpu-0");
      threads.push(boot);
      const started = new Set<number>([0]);
      let settled = false;
      return await new Promise<unknown>((resolveRun, rejectRun) => {
        const resolve = (result: unknown) => {
          settled = true;
          resolveRun(result);
        };
        const reject = (error: Error) => {
          settled = true;
          rejectRun(error);
        };
        const fail = (message: VcpuMessage & { type: "error" }, vcpu: number) =>
          reject(
            message.usage
              ? new VirtioBlkError("INVALID_CONFIG", message.message)
              : new Error(`guest${vcpu === 0 ? "" : ` (vCPU ${vcpu})`}: ${message.message}`),
          );
        const onError = (error: unknown) =>
          reject(error instanceof Error ? error : new Error(String(error)));
        const startVcpu = async (vcpu: number, apJob: unknown) => {
          if (!Number.isInteger(vcpu) || vcpu < 1 || vcpu >= this.vcpus || started.has(vcpu)) {
            reject(new Error(`guest: cannot start vCPU ${vcpu} (${this.vcpus} vCPU(s))`));
            return;
          }
          started.add(vcpu);
          const thread = await startThread(url, `vcpu-${vcpu}`);
          if (settled) {
            // The run ended (a vCPU failed) while this one was starting: nothing waits for it.
            await thread.terminate();
            return;
          }
          threads.push(thread);
          thread.onMessage((raw) => {
            const message = raw as VcpuMessage;
            if (message.type === "done") {
              boot.postMessage({ type: "vcpu-done", vcpu, result: message.result } as VcpuDone);
            } else if (message.type === "error") fail(message, vcpu);
            else if (message.type === "stdout" || message.type === "stderr") {
              output(message.type, message.text);
            }
          });
          thread.onError(onError);
          thread.postMessage({ init: this.vcpuInit(vcpu), job: apJob });
        };
        boot.onMessage((raw) => {
          const message = raw as VcpuMessage;
          if (message.type === "done") resolve(message.result);
          else if (message.type === "error") fail(message, 0);
          else if (message.type === "start-vcpu") {
            startVcpu(message.vcpu, message.job).catch(onError);
          } else if (message.type === "event") onEvent(message.data);
          else output(message.type, message.text);
        });
        boot.onError(onError);
        boot.postMessage({ init: this.vcpuInit(0), job });
      });
    } finally {
      await Promise.all(threads.map((thread) => thread.terminate()));
      await this.#server.stop();
    }
  }

  /** Stops every disk's engine (workers, file handles). */
  async close(): Promise<void> {
    await this.#server.stop();
    await Promise.all(this.disks.map((disk) => disk.function.close()));
  }

  /**
   * Arms disk `i`'s I/O events at its BAR0: a 16-bit QUEUE_NOTIFY of queue
   * q rings queue q's doorbell (ioeventfd with datamatch), and a byte read
   * of ISR takes and clears the ISR word on the vCPU itself.
   */
  #armEvents(i: number): void {
    const disk = this.disks[i];
    const base = this.bus.ioBase(disk.slot, disk.func);
    const queues = disk.function.device.queueCount;
    const first = this.#eventBase[i], isr = first + queues;
    if (base === undefined || base >= 0x10000) {
      for (let event = first; event <= isr; event++) this.#ioEvents.disarm(event);
      return;
    }
    for (let queue = 0; queue < queues; queue++) {
      this.#ioEvents.arm(
        first + queue,
        IoEventKind.DOORBELL,
        base + LegacyRegister.QUEUE_NOTIFY,
        2,
        queue,
      );
    }
    this.#ioEvents.arm(isr, IoEventKind.READ_CLEAR, base + LegacyRegister.ISR, 1);
  }
}
