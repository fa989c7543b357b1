/**
 * Watches a queue's kick eventfd (SET_VRING_KICK) and turns each wake-up
 * into one call of the queue's notify, like an ioeventfd handler. The
 * eventfd arrives already signalled (reference §9.1), so the first call
 * comes at once and must cope with an empty ring.
 *
 * The fd is the front end's file and may be blocking; another reader (the
 * front end itself) may empty the counter between our poll and our read.
 * The read never waits ({@linkcode drainEventFd} asks for RWF_NOWAIT per
 * call), so neither can stall the main thread; an empty counter is no kick.
 *
 * @module
 */

import { drainEventFd, waitReadable, Waker } from "./eventfd.ts";
import { closeFd } from "./libc.ts";
import { PollSet } from "./sys_structs.ts";

/** A running watch of one kick fd. */
export class KickWatcher {
  readonly #fd: number;
  readonly #waker = new Waker();
  readonly #poll: PollSet;
  readonly #onKick: () => void;
  readonly #onError: (error: unknown) => void;
  readonly #done: Promise<void>;

  /**
   * Starts watching `fd` (now owned by the watcher).
   *
   * @param fd the kick eventfd
   * @param onKick called once per wake-up (however many kicks it counts)
   * @param onError told when the fd fails or onKick throws; the watch then ends
   */
  constructor(fd: number, onKick: () => void, onError: (error: unknown) => void) {
    this.#fd = fd;
    this.#onKick = onKick;
    this.#onError = onError;
    this.#poll = new PollSet([fd, this.#waker.fd]);
    this.#done = this.#loop();
  }

  async #loop(): Promise<void> {
    const counter = new Uint8Array(8);
    while (!this.#waker.woken) {
      const ready = await waitReadable(this.#poll);
      if (ready !== 0 || this.#waker.woken) return;
      try {
        if (drainEventFd(this.#fd, counter) > 0) this.#onKick();
      } catch (error) {
        this.#onError(error);
        return;
      }
    }
  }

  /** Ends the watch, waits for its last notify to return, and closes the fd. */
  async stop(): Promise<void> {
    this.#waker.wake();
    await this.#done;
    closeFd(this.#fd);
    this.#waker.close();
  }
}
