/**
 * The command line's exit statuses, each with what it means; `--help`
 * lists {@linkcode EXIT_STATUSES}, so what it says is what the code uses.
 *
 * @module
 */

import { SIGNAL_EXIT_STATUS } from "./signals.ts";

/** The job ran and found nothing wrong. */
export const EXIT_OK = 0;
/** A load saw failed requests or verification mismatches, or the machine or its guest failed. */
export const EXIT_FAILURE = 1;
/** Bad input: an option, a value or a file (nothing was created or changed). */
export const EXIT_USAGE = 2;

/** Every exit status, in order, with its meaning as `--help` prints it. */
export const EXIT_STATUSES: readonly { readonly status: number; readonly meaning: string }[] = [
  { status: EXIT_OK, meaning: "the job ran and found nothing wrong" },
  {
    status: EXIT_FAILURE,
    meaning: "failed requests or verification mismatches, or the machine failed",
  },
  { status: EXIT_USAGE, meaning: "bad input (options, files); nothing was created or changed" },
  {
    status: SIGNAL_EXIT_STATUS.SIGINT,
    meaning: "ended by SIGINT (Ctrl-C); a load prints what it measured until then",
  },
  { status: SIGNAL_EXIT_STATUS.SIGTERM, meaning: "ended by SIGTERM, likewise" },
];
