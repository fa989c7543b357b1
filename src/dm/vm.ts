/**
 * The device model of one virtual machine: guest memory, PCI bus 0 with its
 * virtio-blk functions, the I/O-request mailbox the vCPU posts port accesses
 * to, the I/O events that turn QUEUE_NOTIFY writes into doorbell rings, and
 * the vCPU's interrupt word that every device's interrupt pulses.
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
/** I/O events per disk: QUEUE_NOTIFY and ISR. */
const EVENTS_PER_DISK = 2;

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
  /** The vCPU's interrupt word, which every disk's interrupt pulses. */
  readonly irq: InterruptLineHandle;
  /** Guest-physical range the guest may allocate from. */
  readonly ram: { readonly start: number; readonly end: number };
}

/** Messages a vCPU thread posts to the device model. */
export type VcpuMessage =
  | { readonly type: "stdout" | "stderr"; readonly text: string }
  | { readonly type: "done"; readonly result: unknown }
  /** Data for the caller's own use along the way (a load's progress snapshots). */
  | { readonly type: "event"; readonly data: unknown }
  /** The guest failed; `usage` when it was the user's request that could not be done. */
  | { readonly type: "error"; readonly message: string; readonly usage?: boolean };

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
  readonly #mailbox = createMailbox(1);
  readonly #server: MailboxServer;
  readonly #ioEvents: IoEventTable;
  readonly #irq: InterruptLineHandle = { buffer: new SharedArrayBuffer(4), index: 0 };

  private constructor(config: VmConfig) {
    this.memory = SharedGuestMemory.allocate(config.memoryBytes ?? DEFAULT_MEMORY_BYTES);
    this.#ioEvents = IoEventTable.create(EVENTS_PER_DISK * config.disks.length);
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
      1,
      (d, port, size, value) => this.bus.portAccess(d, port, size, value),
    );
  }

  /**
   * Builds the machine and waits until every disk's engine serves requests.
   * Throws a `VirtioBlkError` when a slot is taken twice or a disk cannot start.
   */
  static async create(config: VmConfig): Promise<VirtualMachine> {
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

  /** The set-up message for vCPU `vcpu`. */
  vcpuInit(vcpu = 0): VcpuInit {
    return {
      vcpu,
      memory: this.memory.handle(),
      mailbox: this.#mailbox,
      ioEvents: {
        table: this.#ioEvents.buffer,
        targets: this.disks.flatMap((disk) => [
          disk.function.device.doorbell(0),
          { buffer: disk.function.transport.buffer, index: TransportWord.ISR },
        ]),
      },
      irq: this.#irq,
      ram: { start: GUEST_RAM_START, end: this.memory.size },
    };
  }

  /**
   * Runs a guest program in a vCPU thread: the ES module at `url` receives
   * `{ init, job }`, does port I/O through the mailbox, and posts output and
   * a final result. Resolves with the result; rejects if the guest fails.
   * What the guest posts as events goes to `onEvent`.
   */
  async runVcpu(
    url: URL,
    job: unknown,
    output: (stream: "stdout" | "stderr", text: string) => void = () => {},
    onEvent: (data: unknown) => void = () => {},
  ): Promise<unknown> {
    this.#server.start();
    let thread: Thread | undefined;
    try {
      thread = await startThread(url, "vcpu-0");
      const result = await new Promise<unknown>((resolve, reject) => {
        thread!.onMessage((raw) => {
          const message = raw as VcpuMessage;
          if (message.type === "done") resolve(message.result);
          else if (message.type === "error") {
            reject(
              message.usage
                ? new VirtioBlkError("INVALID_CONFIG", message.message)
                : new Error(`guest: ${message.message}`),
            );
          } else if (message.type === "event") onEvent(message.data);
          else output(message.type, message.text);
        });
        thread!.onError((error) =>
          reject(error instanceof Error ? error : new Error(String(error)))
        );
        thread!.postMessage({ init: this.vcpuInit(0), job });
      });
      return result;
    } finally {
      await thread?.terminate();
      await this.#server.stop();
    }
  }

  /** Stops every disk's engine (workers, file handles). */
  async close(): Promise<void> {
    await this.#server.stop();
    await Promise.all(this.disks.map((disk) => disk.function.close()));
  }

  /**
   * Arms disk `i`'s I/O events at its BAR0: a 16-bit QUEUE_NOTIFY of queue 0
   * rings the disk's doorbell (ioeventfd), and a byte read of ISR takes and
   * clears the ISR word on the vCPU itself.
   */
  #armEvents(i: number): void {
    const disk = this.disks[i];
    const base = this.bus.ioBase(disk.slot, disk.func);
    const notify = EVENTS_PER_DISK * i, isr = notify + 1;
    if (base === undefined || base >= 0x10000) {
      this.#ioEvents.disarm(notify);
      this.#ioEvents.disarm(isr);
      return;
    }
    this.#ioEvents.arm(notify, IoEventKind.DOORBELL, base + LegacyRegister.QUEUE_NOTIFY, 2, 0);
    this.#ioEvents.arm(isr, IoEventKind.READ_CLEAR, base + LegacyRegister.ISR, 1);
  }
}
