/**
 * Reads a command line the way getopt does, with `node:util`'s `parseArgs`:
 * an option that takes a value takes the next argument whatever it starts
 * with (`-m -5`, `-s -1,virtio-blk,…`), so a bad value reaches the check that
 * names what is wrong with it. Every problem with the shape of the command
 * line is one `VirtioBlkError` line naming the option as the user typed it.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { VirtioBlkError } from "../errors.ts";

/** Option definitions, as `parseArgs` takes them. */
type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig["options"]>;

/** The values `parseArgs` gives in strict mode for `T`, which a checked command line has. */
type StrictValues<T extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: T; strict: true; allowPositionals: false }>
>["values"];

/** A parsed command line. */
export interface CommandLine<T extends ParseArgsOptionsConfig> {
  /** The options' values, typed as `parseArgs` types them in strict mode. */
  readonly values: StrictValues<T>;
  /** How the user spelled each option given (`-m` or `--memory`), the last time it was given. */
  readonly spelled: Readonly<Record<string, string>>;
}

function invalid(message: string): VirtioBlkError {
  return new VirtioBlkError("INVALID_CONFIG", `${message} (see --help)`);
}

/**
 * Parses `args` against `options`. Throws a one-line `VirtioBlkError`
 * (INVALID_CONFIG) for an unknown option, a missing or unwanted value, or
 * an argument that is not an option.
 */
export function parseCommandLine<T extends ParseArgsOptionsConfig>(
  args: readonly string[],
  options: T,
): CommandLine<T> {
  const { values, tokens } = parseArgs({
    args: [...args],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const spelled: Record<string, string> = {};
  for (const token of tokens) {
    if (token.kind === "positional") {
      throw invalid(`unexpected argument "${token.value}": every value follows its option`);
    }
    if (token.kind !== "option") continue;
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (option === undefined) throw invalid(`unknown option ${token.rawName}`);
    if (option.type === "string" && token.value === undefined) {
      throw invalid(`${token.rawName} needs a value`);
    }
    if (option.type === "boolean" && token.value !== undefined) {
      throw invalid(`${token.rawName} takes no value (got ${token.rawName}=${token.value})`);
    }
    spelled[token.name] = token.rawName;
  }
  // Every token was checked against `options` above: the values are what strict mode gives.
  return { values: values as StrictValues<T>, spelled };
}
