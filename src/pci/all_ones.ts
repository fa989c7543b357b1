/**
 * What a read nobody answers returns: all ones, as on a PCI bus where no
 * device drives the lines (PCI Local Bus Specification 3.0 §6.1: a read of
 * a function that does not exist returns all ones).
 *
 * @module
 */

/** All ones for an access of `size` bytes (1, 2 or 4; anything else reads as 4). */
export function allOnes(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffff_ffff;
}
