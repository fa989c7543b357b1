/**
 * The words a guest program (`test_guest.ts`, job `reset-in-flight`) and the
 * thread that releases a paused medium (`medium_gate_worker.ts`) share, in an
 * Int32Array over a SharedArrayBuffer of {@linkcode ResetGate.COUNT} words.
 *
 * @module
 */

/** Word indexes of the gate. */
export const ResetGate = {
  /**
   * Set by the guest just before its reset (STATUS = 0): only from then on
   * does the gate thread look for the device model waiting (the guest's
   * driver reset the device once already, when it started).
   */
  RESETTING: 0,
  /** Set by the guest once its reset has returned. */
  RESET_RETURNED: 1,
  COUNT: 2,
} as const;
