/**
 * PCI bus 0 of the device model: slots holding functions, a host bridge at
 * 00:00.0, configuration mechanism #1 (ports 0xCF8/0xCFC, PCI Local Bus
 * Specification 3.0 §3.2.2.3.2), I/O BAR assignment the way firmware does
 * it, and dispatch of port accesses to the function whose I/O BAR claims
 * them. Accesses nobody claims read as all ones and write nothing.
 *
 * @module
 */

import { allOnes } from "../pci/all_ones.ts";
import { PciCommand, PciConfig, PciConfigSpace } from "../pci/config_space.ts";
import { IoDirection, type IoSize } from "./io_mailbox.ts";

/** What a slot holds: a configuration space and handlers for its I/O BARs. */
export interface PciFunction {
  /** The function's 256-byte configuration space, which also places its I/O BAR. */
  readonly config: PciConfigSpace;
  /** Access at `offset` inside the function's I/O BAR0. */
  ioRead(offset: number, size: number): number;
  /** Write of `size` bytes of `value` at `offset` inside the function's I/O BAR0. */
  ioWrite(offset: number, size: number, value: number): void;
}

/** Configuration mechanism #1 ports. */
export const CONFIG_ADDRESS_PORT = 0xcf8;
export const CONFIG_DATA_PORT = 0xcfc;

/** Where the device model starts placing I/O BARs (above the legacy ISA range). */
export const IO_BAR_START = 0xc000;
/** End of x86 port space. */
const IO_SPACE_END = 0x10000;

export const MAX_SLOTS = 32;
export const MAX_FUNCTIONS = 8;

/** The host bridge's identity (an i440FX-like host bridge, class 06:00). */
function hostBridge(): PciFunction {
  const config = new PciConfigSpace({
    vendorId: 0x8086,
    deviceId: 0x1237,
    revisionId: 0,
    classCode: 0x06,
    subclass: 0x00,
    progIf: 0,
    subsystemVendorId: 0,
    subsystemId: 0,
    interruptPin: 0,
  });
  return { config, ioRead: () => 0xffff_ffff, ioWrite: () => {} };
}

interface Decoder {
  readonly fn: PciFunction;
  readonly slot: number;
  readonly func: number;
  base: number;
  readonly size: number;
}

/** Bus 0. */
export class PciBus {
  readonly #functions = new Map<number, PciFunction>();
  readonly #decoders: Decoder[] = [];
  #address = 0;
  #nextIoBase = IO_BAR_START;
  /** Called when an I/O BAR moves (the device model re-arms its I/O events). */
  onIoBarMoved: (slot: number, func: number, base: number) => void = () => {};

  constructor() {
    this.#functions.set(0, hostBridge());
  }

  /**
   * Plugs `fn` into `slot`:`func`, assigns its I/O BAR0 and enables its I/O
   * decoding, as firmware would. Throws on an occupied or invalid slot.
   */
  attach(slot: number, func: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_SLOTS) {
      throw new RangeError(`bad PCI slot ${slot}`);
    }
    if (!Number.isInteger(func) || func < 0 || func >= MAX_FUNCTIONS) {
      throw new RangeError(`bad PCI function ${func}`);
    }
    const key = slot * MAX_FUNCTIONS + func;
    if (this.#functions.has(key)) {
      throw new RangeError(`PCI slot ${slot}:${func} is already in use`);
    }
    this.#functions.set(key, fn);
    const bar = fn.config.bar(0);
    if (bar) {
      const base = Math.ceil(this.#nextIoBase / bar.size) * bar.size;
      if (base + bar.size > IO_SPACE_END) throw new RangeError("out of I/O port space for BARs");
      this.#nextIoBase = base + bar.size;
      const decoder: Decoder = { fn, slot, func, base, size: bar.size };
      this.#decoders.push(decoder);
      fn.config.onBarMoved = (index, newBase) => {
        if (index !== 0) return;
        decoder.base = newBase;
        this.onIoBarMoved(slot, func, newBase);
      };
      fn.config.assignBar(0, base);
    }
    fn.config.write(PciConfig.COMMAND, 2, PciCommand.IO_SPACE | PciCommand.BUS_MASTER);
    // Software scans functions 1–7 only if function 0 announces a multi-function device.
    const first = this.#functions.get(slot * MAX_FUNCTIONS);
    if (first) {
      let others = false;
      for (let f = 1; f < MAX_FUNCTIONS; f++) {
        others ||= this.#functions.has(slot * MAX_FUNCTIONS + f);
      }
      first.config.multiFunction = others;
    }
  }

  /** The function at `slot`:`func`, if any. */
  function(slot: number, func: number): PciFunction | undefined {
    return this.#functions.get(slot * MAX_FUNCTIONS + func);
  }

  /** The current I/O base of `slot`:`func`'s BAR0. */
  ioBase(slot: number, func: number): number | undefined {
    return this.#decoders.find((d) => d.slot === slot && d.func === func)?.base;
  }

  /** Handles one port access (the device model's mailbox handler). */
  portAccess(direction: number, port: number, size: IoSize, value: number): number {
    if (direction === IoDirection.IN) return this.portRead(port, size);
    this.portWrite(port, size, value);
    return 0;
  }

  /**
   * An IN: CONFIG_ADDRESS, CONFIG_DATA of the selected function, or the I/O
   * BAR that decodes `port`; all ones when nothing answers.
   */
  portRead(port: number, size: IoSize): number {
    if (port === CONFIG_ADDRESS_PORT && size === 4) return this.#address >>> 0;
    if (port >= CONFIG_DATA_PORT && port < CONFIG_DATA_PORT + 4) {
      return this.#configRead(port - CONFIG_DATA_PORT, size);
    }
    const decoder = this.#decoderFor(port, size);
    if (decoder) return decoder.fn.ioRead(port - decoder.base, size);
    return allOnes(size);
  }

  /** An OUT, routed as {@linkcode PciBus.portRead} routes an IN; dropped if nothing decodes it. */
  portWrite(port: number, size: IoSize, value: number): void {
    if (port === CONFIG_ADDRESS_PORT && size === 4) {
      this.#address = value >>> 0;
      return;
    }
    if (port >= CONFIG_DATA_PORT && port < CONFIG_DATA_PORT + 4) {
      this.#configWrite(port - CONFIG_DATA_PORT, size, value);
      return;
    }
    const decoder = this.#decoderFor(port, size);
    if (decoder) decoder.fn.ioWrite(port - decoder.base, size, value);
  }

  #decoderFor(port: number, size: number): Decoder | undefined {
    for (const d of this.#decoders) {
      if (
        port >= d.base && port + size <= d.base + d.size && d.base < IO_SPACE_END &&
        d.fn.config.ioEnabled
      ) {
        return d;
      }
    }
    return undefined;
  }

  /** The function CONFIG_ADDRESS selects (enable bit set, bus 0), and the register offset. */
  #selected(byte: number): { fn: PciFunction; offset: number } | undefined {
    const a = this.#address;
    if ((a & 0x8000_0000) === 0) return undefined;
    const bus = (a >>> 16) & 0xff;
    if (bus !== 0) return undefined;
    const slot = (a >>> 11) & 0x1f;
    const func = (a >>> 8) & 0x7;
    const fn = this.#functions.get(slot * MAX_FUNCTIONS + func);
    return fn && { fn, offset: (a & 0xfc) + byte };
  }

  #configRead(byte: number, size: IoSize): number {
    const target = this.#selected(byte);
    return target ? target.fn.config.read(target.offset, size) : allOnes(size);
  }

  #configWrite(byte: number, size: IoSize, value: number): void {
    const target = this.#selected(byte);
    if (target) target.fn.config.write(target.offset, size, value);
  }
}
