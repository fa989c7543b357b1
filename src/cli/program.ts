/**
 * The program's name: the launcher in a checkout, the npm package's bin, and
 * the prefix of every message the command line prints.
 *
 * @module
 */

/** The program's name in messages. */
export const PROGRAM = "virtio-blk-dm";
