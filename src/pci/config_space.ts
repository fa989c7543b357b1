/**
 * The 256-byte PCI configuration space of one function with a type-0 header
 * (PCI Local Bus Specification 3.0 §6.1–§6.2): identity registers, the
 * command register, base address registers with the sizing protocol, and the
 * interrupt line/pin. Accesses of 1, 2 or 4 bytes that stay inside one dword
 * are honoured; anything else reads as all ones and writes nothing.
 *
 * @module
 */

import { allOnes } from "./all_ones.ts";

/** Offsets of the type-0 header registers. */
export const PciConfig = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  PROG_IF: 0x09,
  SUBCLASS: 0x0a,
  CLASS: 0x0b,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  CAPABILITIES: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  /** Size of the configuration space. */
  SIZE: 256,
} as const;

/** Command register bits. */
export const PciCommand = {
  IO_SPACE: 1,
  MEMORY_SPACE: 2,
  BUS_MASTER: 4,
  INTX_DISABLE: 0x400,
} as const;

/** Number of BARs in a type-0 header. */
export const BAR_COUNT = 6;

/** A function's identity. */
export interface PciIdentity {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revisionId: number;
  readonly classCode: number;
  readonly subclass: number;
  readonly progIf: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  /** 1 = INTA#, … 4 = INTD#, 0 = none. */
  readonly interruptPin: number;
}

/** An I/O BAR of `size` bytes (a power of two, at least 4). */
export interface IoBar {
  /** Bytes the BAR decodes; its base is aligned to it, as a BAR's size probe reports. */
  readonly size: number;
}

const COMMAND_WRITABLE = PciCommand.IO_SPACE | PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER |
  PciCommand.INTX_DISABLE;

/** One function's configuration space. */
export class PciConfigSpace {
  readonly #bytes = new Uint8Array(PciConfig.SIZE);
  readonly #view = new DataView(this.#bytes.buffer);
  readonly #bars: (IoBar | undefined)[];
  /** Called when the guest moves an I/O BAR (base 0 = unassigned). */
  onBarMoved: (index: number, base: number) => void = () => {};

  /**
   * Builds a type-0 header with `identity` and the given I/O BARs, all
   * unassigned, and I/O and memory decoding off until software enables them.
   *
   * @param identity the IDs and class code
   * @param bars I/O BARs by index (undefined = not implemented)
   * @throws {RangeError} when a BAR's size is not a power of two of at least 4
   */
  constructor(identity: PciIdentity, bars: (IoBar | undefined)[] = []) {
    const v = this.#view;
    v.setUint16(PciConfig.VENDOR_ID, identity.vendorId, true);
    v.setUint16(PciConfig.DEVICE_ID, identity.deviceId, true);
    v.setUint8(PciConfig.REVISION_ID, identity.revisionId);
    v.setUint8(PciConfig.PROG_IF, identity.progIf);
    v.setUint8(PciConfig.SUBCLASS, identity.subclass);
    v.setUint8(PciConfig.CLASS, identity.classCode);
    v.setUint16(PciConfig.SUBSYSTEM_VENDOR_ID, identity.subsystemVendorId, true);
    v.setUint16(PciConfig.SUBSYSTEM_ID, identity.subsystemId, true);
    v.setUint8(PciConfig.INTERRUPT_PIN, identity.interruptPin);
    this.#bars = [];
    for (let i = 0; i < BAR_COUNT; i++) {
      const bar = bars[i];
      if (bar !== undefined && (bar.size < 4 || (bar.size & (bar.size - 1)) !== 0)) {
        throw new RangeError(`I/O BAR size ${bar.size} must be a power of two of at least 4`);
      }
      this.#bars.push(bar);
      if (bar) v.setUint32(PciConfig.BAR0 + 4 * i, 1, true); // bit 0: I/O space
    }
  }

  /** The BAR at `index`, if implemented. */
  bar(index: number): IoBar | undefined {
    return this.#bars[index];
  }

  /** Current base port of I/O BAR `index` (0 when unassigned). */
  barBase(index: number): number {
    return (this.#view.getUint32(PciConfig.BAR0 + 4 * index, true) & ~3) >>> 0;
  }

  /** Whether the function decodes I/O space (command bit 0). */
  get ioEnabled(): boolean {
    return (this.#view.getUint16(PciConfig.COMMAND, true) & PciCommand.IO_SPACE) !== 0;
  }

  /** Sets the interrupt line register (the device model's routing). */
  set interruptLine(line: number) {
    this.#view.setUint8(PciConfig.INTERRUPT_LINE, line);
  }

  /** Sets or clears the multi-function bit of the header type. */
  set multiFunction(on: boolean) {
    this.#view.setUint8(PciConfig.HEADER_TYPE, on ? 0x80 : 0);
  }

  /** Places I/O BAR `index` at `base` (firmware-style assignment by the device model). */
  assignBar(index: number, base: number): void {
    this.#writeBar(index, base);
  }

  /** Reads `size` bytes at `offset`. */
  read(offset: number, size: number): number {
    if (!validAccess(offset, size)) return allOnes(size);
    if (size === 1) return this.#view.getUint8(offset);
    if (size === 2) return this.#view.getUint16(offset, true);
    return this.#view.getUint32(offset, true);
  }

  /** Writes `size` bytes at `offset`; read-only bits keep their value. */
  write(offset: number, size: number, value: number): void {
    if (!validAccess(offset, size)) return;
    if (offset >= PciConfig.BAR0 && offset < PciConfig.BAR0 + 4 * BAR_COUNT) {
      // One BAR update per access, so a dword write is one move, not four.
      const index = (offset - PciConfig.BAR0) >>> 2;
      const shift = 8 * ((offset - PciConfig.BAR0) & 3);
      const mask = (size === 4 ? 0xffff_ffff : ((1 << (8 * size)) - 1) << shift) >>> 0;
      const current = this.#view.getUint32(PciConfig.BAR0 + 4 * index, true);
      this.#writeBar(index, ((current & ~mask) | ((value << shift) & mask)) >>> 0);
      return;
    }
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  #writeByte(offset: number, byte: number): void {
    const v = this.#view;
    if (offset === PciConfig.COMMAND || offset === PciConfig.COMMAND + 1) {
      const shift = 8 * (offset - PciConfig.COMMAND);
      const mask = (COMMAND_WRITABLE >>> shift) & 0xff;
      v.setUint8(offset, (v.getUint8(offset) & ~mask) | (byte & mask));
      return;
    }
    if (offset === PciConfig.CACHE_LINE_SIZE || offset === PciConfig.INTERRUPT_LINE) {
      v.setUint8(offset, byte);
      return;
    }
    // Everything else in the header (BARs aside, see write) is read-only here.
  }

  /** BAR write: keeps only the address bits the BAR's size allows (the sizing protocol). */
  #writeBar(index: number, value: number): void {
    const bar = this.#bars[index];
    if (bar === undefined) return;
    const at = PciConfig.BAR0 + 4 * index;
    const before = this.#view.getUint32(at, true);
    const next = ((value & ~(bar.size - 1) & 0xffff_fffc) | 1) >>> 0;
    this.#view.setUint32(at, next, true);
    if (next !== before) this.onBarMoved(index, (next & ~3) >>> 0);
  }
}

function validAccess(offset: number, size: number): boolean {
  return (size === 1 || size === 2 || size === 4) && Number.isInteger(offset) && offset >= 0 &&
    offset + size <= PciConfig.SIZE && (offset & 3) + size <= 4;
}
