/**
 * Another thread's action, made to land between two atomic operations of
 * the code under test, in one thread: every `Atomics` operation on a given
 * typed array calls a hook first, which may do what the other thread would
 * do at that moment (and may itself use `Atomics` on the array: the hook is
 * not called again from inside itself).
 */

/** The `Atomics` functions that read or write a shared word. */
const OPERATIONS = [
  "load",
  "store",
  "add",
  "sub",
  "and",
  "or",
  "xor",
  "exchange",
  "compareExchange",
] as const;

/**
 * Runs `action`, calling `hook(index)` just before each of its atomic
 * operations on word `index` of `array`. The `Atomics` functions are
 * restored when `action` returns or throws.
 */
export function beforeAtomicOps(
  array: Int32Array,
  hook: (index: number) => void,
  action: () => void,
): void {
  const saved = OPERATIONS.map((name) => [name, Atomics[name]] as const);
  let inside = false;
  // deno-lint-ignore no-explicit-any
  const atomics = Atomics as any;
  for (const [name, original] of saved) {
    atomics[name] = (target: Int32Array, index: number, ...rest: number[]) => {
      if (target === array && !inside) {
        inside = true;
        try {
          hook(index);
        } finally {
          inside = false;
        }
      }
      // deno-lint-ignore no-explicit-any
      return (original as any)(target, index, ...rest);
    };
  }
  try {
    action();
  } finally {
    for (const [name, original] of saved) atomics[name] = original;
  }
}
