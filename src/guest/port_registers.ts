/**
 * A device's BAR0 register block reached through port I/O (from a vCPU
 * thread, via the device model's mailbox and I/O events).
 *
 * @module
 */

import type { RegisterAccess } from "./io.ts";
import type { PortAccess } from "./pci_scan.ts";

/** Register access at `base + offset` in port space. */
export class PortRegisters implements RegisterAccess {
  /**
   * @param io the vCPU's port access
   * @param base the BAR's I/O base
   */
  constructor(readonly io: PortAccess, readonly base: number) {}

  read(offset: number, size: 1 | 2 | 4): number {
    return this.io.read(this.base + offset, size);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.io.write(this.base + offset, size, value);
  }
}
