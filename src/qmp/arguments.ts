/**
 * Checking a QMP command's arguments against its schema, with the messages
 * QEMU's input visitor gives: a missing, unexpected or mistyped argument
 * and a value outside an enumeration are each refused before the command
 * runs.
 *
 * @module
 */

import { genericError, type Json, type JsonObject } from "./protocol.ts";

/** One argument of a command. */
export type ArgumentSpec =
  | { readonly type: "str" | "int" | "bool"; readonly optional?: boolean }
  | { readonly type: "enum"; readonly values: readonly string[]; readonly optional?: boolean }
  | {
    readonly type: "list-of-enum";
    readonly values: readonly string[];
    readonly optional?: boolean;
  };

/** A command's arguments by name. */
export type ArgumentsSpec = Readonly<Record<string, ArgumentSpec>>;

/** QEMU's name of each type, in "expected: …". */
const TYPE_NAMES = {
  str: "string",
  int: "integer",
  bool: "boolean",
  enum: "string",
  "list-of-enum": "array",
} as const;

function matches(spec: ArgumentSpec, value: Json): boolean {
  switch (spec.type) {
    case "str":
    case "enum":
      return typeof value === "string";
    case "int":
      return typeof value === "number" && Number.isInteger(value);
    case "bool":
      return typeof value === "boolean";
    case "list-of-enum":
      return Array.isArray(value);
  }
}

/**
 * Returns `args` once every argument is known, of its type and (for an
 * enumeration) one of its values, and every required one is there.
 *
 * @throws {QmpError} GenericError with QEMU's message
 */
export function checkArguments(args: JsonObject, spec: ArgumentsSpec): JsonObject {
  for (const name of Object.keys(args)) {
    if (!Object.hasOwn(spec, name)) throw genericError(`Parameter '${name}' is unexpected`);
  }
  for (const [name, argument] of Object.entries(spec)) {
    const value = args[name];
    if (value === undefined) {
      if (!argument.optional) throw genericError(`Parameter '${name}' is missing`);
      continue;
    }
    if (!matches(argument, value)) {
      throw genericError(
        `Invalid parameter type for '${name}', expected: ${TYPE_NAMES[argument.type]}`,
      );
    }
    if (argument.type === "enum" || argument.type === "list-of-enum") {
      const given = argument.type === "enum" ? [value] : value as Json[];
      for (const item of given) {
        if (typeof item !== "string" || !argument.values.includes(item)) {
          throw genericError(`Parameter '${name}' does not accept value '${String(item)}'`);
        }
      }
    }
  }
  return args;
}
