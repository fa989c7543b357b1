/**
 * The I/O-request mailbox between vCPU threads and the device model, in the
 * spirit of ACRN's ioreq shared page: each vCPU has a slot; a port access the
 * vCPU cannot complete itself is written into its slot, the vCPU waits on the
 * slot's state, and the device model (on its own thread) handles the access
 * and completes the slot. This module owns the mailbox buffer's layout and
 * both ends.
 *
 * Accesses that match a registered I/O event (see `io_events.ts`) never
 * reach the mailbox: a QUEUE_NOTIFY write rings the queue's doorbell (KVM's
 * ioeventfd), an ISR read takes and clears the ISR word, and the vCPU goes on.
 *
 * Every posted access gets an answer, even when the device model stops
 * serving (a vCPU waits for its answer without a time limit). Stopping
 * ends the serving loop, polls once more (an access posted before stop()
 * is handled), then closes the mailbox and refuses what is still pending;
 * a refused access fails on its vCPU with a `CLOSED` error. An access
 * posted after the close is refused by its own vCPU: after posting, it
 * looks at CLOSED. Both sides write, then read the other's word (the vCPU
 * its slot state, then CLOSED; the device model CLOSED, then the slot
 * states), all sequentially consistent, so at least one of them sees the
 * other and no access is left waiting; compare-exchanges on the slot state
 * (claim, refuse, withdraw) make sure exactly one side decides its fate.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { Doorbell, type DoorbellHandle } from "../virtio/doorbell.ts";
import { IoEventTable } from "./io_events.ts";

/** Header words. */
export const MailboxWord = {
  /** Bumped and notified whenever a vCPU posts a request; the device model waits on it. */
  POSTED: 0,
  /** 1 while the device model is stopped (after its last poll): posted accesses are refused. */
  CLOSED: 1,
  /** Header size in words. */
  COUNT: 4,
} as const;

/** Words of one vCPU's slot. */
export const SlotWord = {
  STATE: 0,
  /** {@linkcode IoDirection}. */
  DIRECTION: 1,
  PORT: 2,
  /** Access size in bytes: 1, 2 or 4. */
  SIZE: 3,
  /** The value written (OUT), or the value read once completed (IN). */
  VALUE: 4,
  /** Words per slot. */
  COUNT: 8,
} as const;

/**
 * Slot states (ACRN: REQ_STATE_FREE / PENDING / COMPLETE / PROCESSING, and
 * REFUSED). The device model claims a PENDING slot (PROCESSING) before
 * handling it, or refuses it once closed; a vCPU that sees the mailbox
 * closed withdraws its access (back to FREE) if it is still PENDING.
 */
export const SlotState = { FREE: 0, PENDING: 1, COMPLETE: 2, PROCESSING: 3, REFUSED: 4 } as const;

/** Direction of a port access. */
export const IoDirection = { IN: 0, OUT: 1 } as const;

/** The width of an x86 port access. */
export type IoSize = 1 | 2 | 4;

/** Handles one port access on the device-model side; returns the value read (IN). */
export type PortHandler = (direction: number, port: number, size: IoSize, value: number) => number;

/** The mailbox buffer for `vcpus` vCPUs. */
export function createMailbox(vcpus: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (MailboxWord.COUNT + vcpus * SlotWord.COUNT));
}

function slotBase(vcpu: number): number {
  return MailboxWord.COUNT + vcpu * SlotWord.COUNT;
}

/** Registered I/O events and the words their entries act on (see `io_events.ts`). */
export interface IoEvents {
  /** The I/O event table (`src/dm/io_events.ts`): the port accesses the vCPU completes itself. */
  readonly table: SharedArrayBuffer;
  /** Entry `i`'s word. */
  readonly targets: readonly DoorbellHandle[];
}

const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffff_ffff];

/** The vCPU's end: port I/O instructions of one vCPU thread. */
export class PortIo {
  readonly #words: Int32Array;
  readonly #base: number;
  readonly #events: IoEventTable | undefined;
  readonly #targets: { words: Int32Array; index: number; doorbell: Doorbell }[];

  /**
   * @param mailbox the mailbox buffer
   * @param vcpu this vCPU's slot
   * @param events registered I/O events (none: every access posts)
   */
  constructor(mailbox: SharedArrayBuffer, vcpu: number, events?: IoEvents) {
    this.#words = new Int32Array(mailbox);
    this.#base = slotBase(vcpu);
    this.#events = events && new IoEventTable(events.table);
    this.#targets = (events?.targets ?? []).map((t) => ({
      words: new Int32Array(t.buffer),
      index: t.index,
      doorbell: new Doorbell(t),
    }));
  }

  /** `in` of `size` bytes from `port`. */
  read(port: number, size: IoSize): number {
    const event = this.#events?.matchRead(port, size) ?? -1;
    if (event >= 0) {
      const target = this.#targets[event];
      return (Atomics.exchange(target.words, target.index, 0) & SIZE_MASK[size]) >>> 0;
    }
    return this.#post(IoDirection.IN, port, size, 0);
  }

  /** `out` of `size` bytes of `value` to `port`. */
  write(port: number, size: IoSize, value: number): void {
    const event = this.#events?.matchWrite(port, size, value) ?? -1;
    if (event >= 0) {
      this.#targets[event].doorbell.ring();
      return;
    }
    this.#post(IoDirection.OUT, port, size, value);
  }

  #post(direction: number, port: number, size: IoSize, value: number): number {
    const w = this.#words;
    const b = this.#base;
    Atomics.store(w, b + SlotWord.DIRECTION, direction);
    Atomics.store(w, b + SlotWord.PORT, port);
    Atomics.store(w, b + SlotWord.SIZE, size);
    Atomics.store(w, b + SlotWord.VALUE, value);
    Atomics.store(w, b + SlotWord.STATE, SlotState.PENDING);
    Atomics.add(w, MailboxWord.POSTED, 1);
    Atomics.notify(w, MailboxWord.POSTED, 1);
    // Closed: the device model may have refused the slots before this post.
    let refused = Atomics.load(w, MailboxWord.CLOSED) !== 0 &&
      Atomics.compareExchange(w, b + SlotWord.STATE, SlotState.PENDING, SlotState.FREE) ===
        SlotState.PENDING;
    while (!refused) {
      const state = Atomics.load(w, b + SlotWord.STATE);
      if (state === SlotState.COMPLETE) break;
      refused = state === SlotState.REFUSED;
      if (!refused) Atomics.wait(w, b + SlotWord.STATE, state);
    }
    const result = Atomics.load(w, b + SlotWord.VALUE) >>> 0;
    Atomics.store(w, b + SlotWord.STATE, SlotState.FREE);
    if (refused) {
      const access = direction === IoDirection.IN ? "in from" : "out to";
      throw new VirtioBlkError(
        "CLOSED",
        `port ${access} 0x${port.toString(16)}: the device model has stopped serving port I/O`,
      );
    }
    return result;
  }
}

/** The device model's end: serves posted requests as they arrive. */
export class MailboxServer {
  readonly #words: Int32Array;
  readonly #vcpus: number;
  readonly #handler: PortHandler;
  #running = false;
  #stopped: Promise<void> = Promise.resolve();

  /**
   * @param mailbox the mailbox buffer
   * @param vcpus number of slots
   * @param handler the device model's port dispatch
   */
  constructor(mailbox: SharedArrayBuffer, vcpus: number, handler: PortHandler) {
    this.#words = new Int32Array(mailbox);
    this.#vcpus = vcpus;
    this.#handler = handler;
  }

  /** Starts serving (without blocking this thread: it waits with `Atomics.waitAsync`). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    Atomics.store(this.#words, MailboxWord.CLOSED, 0);
    this.#stopped = this.#serve();
  }

  /**
   * Stops serving; resolves once the loop has ended. Every access posted
   * before is answered; one posted later fails on its vCPU with a `CLOSED`
   * error, until {@linkcode MailboxServer.start} serves again.
   */
  async stop(): Promise<void> {
    this.#running = false;
    Atomics.add(this.#words, MailboxWord.POSTED, 1);
    Atomics.notify(this.#words, MailboxWord.POSTED);
    await this.#stopped;
    if (this.#running) return; // started again meanwhile
    // The loop may have ended without looking at an access posted just before.
    this.poll();
    this.#close();
  }

  /** Handles every pending request once. Returns how many it handled. */
  poll(): number {
    const w = this.#words;
    let handled = 0;
    for (let vcpu = 0; vcpu < this.#vcpus; vcpu++) {
      const b = slotBase(vcpu);
      if (Atomics.load(w, b + SlotWord.STATE) !== SlotState.PENDING) continue;
      // Claimed here, unless its vCPU withdrew it (it saw the mailbox closed).
      if (
        Atomics.compareExchange(w, b + SlotWord.STATE, SlotState.PENDING, SlotState.PROCESSING) !==
          SlotState.PENDING
      ) continue;
      const direction = Atomics.load(w, b + SlotWord.DIRECTION);
      const port = Atomics.load(w, b + SlotWord.PORT);
      const size = Atomics.load(w, b + SlotWord.SIZE) as IoSize;
      const value = Atomics.load(w, b + SlotWord.VALUE) >>> 0;
      let result = 0xffff_ffff;
      try {
        result = this.#handler(direction, port, size, value);
      } finally {
        // A handler bug must not leave the vCPU waiting forever.
        Atomics.store(w, b + SlotWord.VALUE, direction === IoDirection.IN ? result | 0 : value | 0);
        Atomics.store(w, b + SlotWord.STATE, SlotState.COMPLETE);
        Atomics.notify(w, b + SlotWord.STATE);
      }
      handled++;
    }
    return handled;
  }

  /** Closes the mailbox: what is pending now is refused, what is posted later refuses itself. */
  #close(): void {
    const w = this.#words;
    Atomics.store(w, MailboxWord.CLOSED, 1);
    for (let vcpu = 0; vcpu < this.#vcpus; vcpu++) {
      const state = slotBase(vcpu) + SlotWord.STATE;
      if (
        Atomics.compareExchange(w, state, SlotState.PENDING, SlotState.REFUSED) ===
          SlotState.PENDING
      ) Atomics.notify(w, state);
    }
  }

  async #serve(): Promise<void> {
    const w = this.#words;
    while (this.#running) {
      const seen = Atomics.load(w, MailboxWord.POSTED);
      this.poll();
      const wait = Atomics.waitAsync(w, MailboxWord.POSTED, seen);
      if (wait.async) await wait.value;
    }
  }
}
