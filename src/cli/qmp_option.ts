/**
 * The QMP socket option, in our spelling or QEMU's:
 *
 *     --qmp /tmp/qmp.sock
 *     -qmp unix:/tmp/qmp.sock,server=on,wait=off
 *
 * QEMU's form takes `server` (this device model only listens, so it must
 * be on; `server` alone and `server=on` say so) and `wait` (`wait=on`, the
 * default with `server` as in QEMU, holds the guest until a QMP client has
 * connected; `nowait` is QEMU's old spelling of `wait=off`). Anything else
 * (`tcp:`, `stdio`, an unknown key) is refused naming what, and so is a path
 * that cannot be listened on (see `checkSocketPath`). Checking creates
 * nothing.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { checkSocketPath } from "../qmp/socket_path.ts";

/** Where the QMP server listens, and whether the run waits for a client first. */
export interface QmpOption {
  /** The Unix socket path. */
  readonly path: string;
  /** Hold the guest (or the vhost-user export) until a client connects. */
  readonly wait: boolean;
}

/** QEMU's spelling of the option, which the command line also takes. */
export const QEMU_SPELLING = "-qmp";

/**
 * Parses one `--qmp`/`-qmp` value; `spelled` is the option as the user
 * typed it, for the message.
 *
 * @throws {VirtioBlkError} `INVALID_CONFIG`: one line naming the value
 */
export function parseQmpOption(text: string, spelled = "--qmp"): QmpOption {
  const invalid = (why: string) =>
    new VirtioBlkError("INVALID_CONFIG", `${spelled} ${text}: ${why}`);
  let option: QmpOption;
  if (!text.startsWith("unix:")) {
    if (/^[a-z]+:/.test(text) || text === "stdio" || text === "none") {
      throw invalid("only a Unix socket is served here: PATH or unix:PATH,server=on,wait=off");
    }
    option = { path: text, wait: false };
  } else {
    const [path, ...settings] = text.slice("unix:".length).split(",");
    let server = false;
    let wait = true;
    for (const setting of settings) {
      const at = setting.indexOf("=");
      const key = at < 0 ? setting : setting.slice(0, at);
      const value = at < 0 ? undefined : setting.slice(at + 1);
      // QEMU's boolean: "on"/"off", or the key alone for on.
      const flag = () => {
        if (value !== undefined && value !== "on" && value !== "off") {
          throw invalid(`${setting}: expected ${key}=on or ${key}=off`);
        }
        return value !== "off";
      };
      switch (key) {
        case "server":
          server = flag();
          break;
        case "wait":
          wait = flag();
          break;
        case "nowait":
          if (value !== undefined) throw invalid("nowait takes no value");
          wait = false;
          break;
        default:
          throw invalid(`unknown setting "${key}" (server=on and wait=on|off are taken)`);
      }
    }
    if (!server) {
      throw invalid(
        "without server=on QEMU would connect to a client; this device model only listens " +
          "(add server=on)",
      );
    }
    option = { path, wait };
  }
  if (option.path === "") throw invalid("no socket path");
  try {
    checkSocketPath(option.path);
  } catch (error) {
    throw invalid((error as Error).message);
  }
  return option;
}

/** What {@linkcode withQemuSpelling} needs to know of each option. */
type OptionShapes = Readonly<Record<string, { readonly type: string; readonly short?: string }>>;

/**
 * The command line with QEMU's `-qmp` written `--qmp` wherever it stands as
 * an option, and left alone where it is the value of the option before it
 * (an option that takes a value takes the next argument, whatever it is).
 */
export function withQemuSpelling(args: readonly string[], options: OptionShapes): string[] {
  const takesValue = (arg: string): boolean => {
    if (arg.startsWith("--")) {
      return !arg.includes("=") && options[arg.slice(2)]?.type === "string";
    }
    return /^-[A-Za-z]$/.test(arg) &&
      Object.values(options).some((o) => o.short === arg[1] && o.type === "string");
  };
  return args.map((arg, i) =>
    arg === QEMU_SPELLING && (i === 0 || !takesValue(args[i - 1])) ? "--qmp" : arg
  );
}
