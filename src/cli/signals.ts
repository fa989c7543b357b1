/**
 * The signals that end a command-line run early, caught for as long as the
 * run lasts: SIGINT (Ctrl-C) and SIGTERM (`kill`). The first one asks the
 * run to stop (its {@linkcode StopSignals.signal} aborts) so it can report
 * what it did and clean up; a second one ends the process at once.
 *
 * A run ended by a signal exits with 128 + the signal's number, as a shell
 * reports a process a signal killed and as fio exits when interrupted.
 *
 * @module
 */

import process from "node:process";

/** The exit status of a run each signal ended: 128 + its number (SIGINT 2, SIGTERM 15). */
export const SIGNAL_EXIT_STATUS = { SIGINT: 130, SIGTERM: 143 } as const;

/** A signal that ends a run. */
export type StopSignal = keyof typeof SIGNAL_EXIT_STATUS;

const SIGNALS = Object.keys(SIGNAL_EXIT_STATUS) as StopSignal[];

/** SIGINT and SIGTERM handlers for the length of a run. */
export class StopSignals {
  readonly #controller = new AbortController();
  readonly #handlers: [StopSignal, () => void][];
  #received: StopSignal | undefined;

  /**
   * Installs the handlers.
   *
   * @param onFirst called at the first signal, before `signal` aborts
   * @param onSecond called at any later one: the user insists, end now
   */
  constructor(onFirst: (signal: StopSignal) => void, onSecond: (signal: StopSignal) => void) {
    this.#handlers = SIGNALS.map((name) => [name, () => {
      if (this.#received !== undefined) return onSecond(name);
      this.#received = name;
      onFirst(name);
      this.#controller.abort();
    }]);
    for (const [name, handler] of this.#handlers) process.on(name, handler);
  }

  /** Aborts at the first signal. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The first signal received, if any. */
  get received(): StopSignal | undefined {
    return this.#received;
  }

  /** The run's exit status if a signal ended it. */
  get exitStatus(): number | undefined {
    return this.#received === undefined ? undefined : SIGNAL_EXIT_STATUS[this.#received];
  }

  /** Removes the handlers: the signals' default actions apply again. */
  close(): void {
    for (const [name, handler] of this.#handlers) process.off(name, handler);
  }
}
