/**
 * The QMP commands this device model answers, each with QEMU 7.2's
 * argument schema: `qmp_capabilities` (negotiation, handled by the session),
 * `query-block`, `block_resize`, `eject`, `blockdev-change-medium`,
 * `query-status`, `query-version`, `query-commands` and `quit`.
 *
 * @module
 */

import { type ArgumentsSpec, checkArguments } from "./arguments.ts";
import type { DriveTable, ReadOnlyMode } from "./drive_table.ts";
import {
  type Json,
  type JsonObject,
  type QmpCommand,
  QmpError,
  type QmpVersion,
} from "./protocol.ts";

/** What the commands act on: the drives, and the machine's state. */
export interface QmpHost {
  /** The drives, by the names QMP uses. */
  readonly drives: DriveTable;
  /** The greeting's and `query-version`'s version. */
  readonly version: QmpVersion;
  /** Whether the guest runs now (`query-status`). */
  running(): boolean;
  /**
   * `quit`: the device model stops, after the reply and the SHUTDOWN event
   * went out (QEMU's order).
   */
  quit(): void;
}

interface Command {
  readonly args: ArgumentsSpec;
  run(args: JsonObject, host: QmpHost): Json | Promise<Json>;
}

const str = (value: Json | undefined) => value as string | undefined;

/** Every command but `qmp_capabilities`, by name. */
const COMMANDS: Readonly<Record<string, Command>> = {
  "query-block": {
    args: {},
    run: (_, host) => host.drives.queryBlock(),
  },
  "block_resize": {
    args: {
      device: { type: "str", optional: true },
      "node-name": { type: "str", optional: true },
      size: { type: "int" },
    },
    run: async (args, host) => {
      await host.drives.resize(str(args.device), str(args["node-name"]), args.size as number);
      return {};
    },
  },
  "eject": {
    args: {
      device: { type: "str", optional: true },
      id: { type: "str", optional: true },
      // No drive here is locked by its guest, so there is nothing to force.
      force: { type: "bool", optional: true },
    },
    run: async (args, host) => {
      await host.drives.eject(str(args.device), str(args.id));
      return {};
    },
  },
  "blockdev-change-medium": {
    args: {
      device: { type: "str", optional: true },
      id: { type: "str", optional: true },
      filename: { type: "str" },
      format: { type: "enum", values: ["raw"], optional: true },
      "read-only-mode": {
        type: "enum",
        values: ["retain", "read-only", "read-write"],
        optional: true,
      },
      force: { type: "bool", optional: true },
    },
    run: async (args, host) => {
      await host.drives.changeMedium(
        str(args.device),
        str(args.id),
        args.filename as string,
        (args["read-only-mode"] ?? "retain") as ReadOnlyMode,
      );
      return {};
    },
  },
  "query-status": {
    args: {},
    run: (_, host) => {
      const running = host.running();
      return { status: running ? "running" : "shutdown", singlestep: false, running };
    },
  },
  "query-version": {
    args: {},
    run: (_, host) => ({ ...host.version }),
  },
  "query-commands": {
    args: {},
    run: () => [NEGOTIATION, ...Object.keys(COMMANDS)].map((name) => ({ name })),
  },
  "quit": {
    args: {},
    // The session sends the reply and SHUTDOWN, then calls host.quit().
    run: () => ({}),
  },
};

/** The negotiation command, the only one a client may send first. */
export const NEGOTIATION = "qmp_capabilities";

/** Arguments of {@linkcode NEGOTIATION}: capabilities to enable (none are offered here). */
export const NEGOTIATION_ARGS: ArgumentsSpec = {
  enable: { type: "list-of-enum", values: ["oob"], optional: true },
};

/**
 * Runs `command` (already past negotiation) and returns its `return`
 * value.
 *
 * @throws {QmpError} CommandNotFound for an unknown command; GenericError
 *   (or DeviceNotFound) for bad arguments or a failure
 */
export async function runCommand(command: QmpCommand, host: QmpHost): Promise<Json> {
  const found = Object.hasOwn(COMMANDS, command.execute) ? COMMANDS[command.execute] : undefined;
  if (found === undefined) {
    throw new QmpError("CommandNotFound", `The command ${command.execute} has not been found`);
  }
  return await found.run(checkArguments(command.arguments, found.args), host);
}
