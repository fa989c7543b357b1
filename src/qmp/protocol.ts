/**
 * The QEMU Machine Protocol's messages (QEMU's docs/interop/qmp-spec.rst),
 * as QEMU 7.2 writes them: the greeting, replies (`return` or `error`, with
 * the command's `id` echoed), events with their timestamp, and the checks
 * QEMU makes on a command before it looks the command up, with QEMU's
 * messages, so tools that match on them keep working.
 *
 * @module
 */

/** Error classes QMP clients see (QEMU's QapiErrorClass). */
export type QmpErrorClass = "GenericError" | "CommandNotFound" | "DeviceNotFound";

/** A command failed: the reply is `{"error": {"class", "desc"}}`. */
export class QmpError extends Error {
  override name = "QmpError";

  /**
   * @param errorClass the class QEMU gives the failure (GenericError for most)
   * @param desc the human-readable description
   */
  constructor(readonly errorClass: QmpErrorClass, readonly desc: string) {
    super(desc);
  }
}

/** Shorthand for the usual failure, {@linkcode QmpError} of class GenericError. */
export function genericError(desc: string): QmpError {
  return new QmpError("GenericError", desc);
}

/** A JSON value as QMP carries it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** A command as the client sent it, checked for shape. */
export interface QmpCommand {
  /** The command's name. */
  readonly execute: string;
  /** Its arguments (an empty object when none were given). */
  readonly arguments: JsonObject;
  /** The client's `id`, echoed in the reply; absent when it sent none. */
  readonly id?: Json;
}

/** What the server is, in the greeting's `version` (the QEMU version whose QMP it speaks). */
export interface QmpVersion {
  /** The QEMU release whose QMP this is ({@linkcode QEMU_VERSION}: 7.2.0). */
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  /** Free text naming the program: ours, `virtio-blk-dm 0.1.0`. */
  readonly package: string;
}

/** The QEMU release whose QMP this server follows (the one the tests run). */
export const QEMU_VERSION = { major: 7, minor: 2, micro: 0 } as const;

/** The greeting a client gets on connecting; no capability is offered (no out-of-band). */
export function greeting(version: QmpVersion): JsonObject {
  return { QMP: { version: { ...version }, capabilities: [] } };
}

/** A successful reply. */
export function returnReply(value: Json, id?: Json): JsonObject {
  return id === undefined ? { return: value } : { return: value, id };
}

/** A failed reply. */
export function errorReply(error: QmpError, id?: Json): JsonObject {
  const body = { error: { class: error.errorClass, desc: error.desc } };
  return id === undefined ? body : { ...body, id };
}

/** An event, stamped with the time it happened (seconds and microseconds since the epoch). */
export function eventMessage(event: string, data?: JsonObject, now = Date.now()): JsonObject {
  const seconds = Math.floor(now / 1000);
  const timestamp = { seconds, microseconds: Math.round((now - seconds * 1000) * 1000) };
  return data === undefined ? { event, timestamp } : { event, data, timestamp };
}

/**
 * Checks one JSON text for the shape of a command, as QEMU does before it
 * looks the command up. Throws {@linkcode QmpError} with QEMU's message; the
 * `id`, when there is a usable one, is in the error's `id` so the reply can
 * echo it.
 */
export function parseCommand(text: string): QmpCommand {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw genericError(`JSON parse error, ${(error as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw genericError("QMP input must be a JSON object");
  }
  const object = value as JsonObject;
  const id = object.id;
  const fail = (desc: string): never => {
    throw Object.assign(genericError(desc), { id });
  };
  for (const key of Object.keys(object)) {
    if (key !== "execute" && key !== "arguments" && key !== "id") {
      // QEMU also knows exec-oob, which needs the out-of-band capability nobody can enable here.
      fail(`QMP input member '${key}' is unexpected`);
    }
  }
  if (!("execute" in object)) fail("QMP input lacks member 'execute'");
  if (typeof object.execute !== "string") fail("QMP input member 'execute' must be a string");
  const args = object.arguments ?? {};
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    fail("QMP input member 'arguments' must be an object");
  }
  return {
    execute: object.execute as string,
    arguments: args as JsonObject,
    ...(id === undefined ? {} : { id }),
  };
}

/** The `id` a failed {@linkcode parseCommand} found, to echo in its error reply. */
export function idOf(error: unknown): Json | undefined {
  return (error as { id?: Json }).id;
}
