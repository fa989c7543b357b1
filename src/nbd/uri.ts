/**
 * NBD URIs (the NetworkBlockDevice project's `doc/uri.md`), the way a disk
 * names its NBD export:
 *
 *     nbd://host[:port]/export            TCP, port 10809 unless given
 *     nbd+unix:///export?socket=/path     a Unix socket
 *
 * The export name is the path without its leading `/`, percent-decoded
 * (`nbd://h/` and `nbd://h` name the empty, default export; `nbd://h//x`
 * names `/x`). Anything else is refused with one line that names the
 * problem as the user typed it: TLS schemes and parameters (this client
 * has no TLS), a user name (only for TLS authentication), a missing host,
 * a bad port, a Unix URI with a host or without `socket=`, a repeated or
 * unknown query parameter (uri.md: "SHOULD be diagnosed"), a fragment.
 *
 * Browser-safe: string work only.
 *
 * @module
 */

import { VirtioBlkError } from "../errors.ts";
import { MAX_STRING, NBD_DEFAULT_PORT } from "./protocol.ts";

/** Where an NBD export is, and which one. */
export type NbdAddress = NbdTcpAddress | NbdUnixAddress;

/** An export served over TCP. */
export interface NbdTcpAddress {
  /** Over TCP. */
  readonly transport: "tcp";
  /** Host name or IP address (an IPv6 address without its brackets). */
  readonly host: string;
  /** TCP port (10809 unless the URI gave one). */
  readonly port: number;
  /** The export name sent to the server ("" for the default export). */
  readonly exportName: string;
  /** The URI as given, for messages. */
  readonly uri: string;
}

/** An export served on a Unix socket. */
export interface NbdUnixAddress {
  /** Over a Unix socket. */
  readonly transport: "unix";
  /** The socket's path. */
  readonly socketPath: string;
  /** The export name sent to the server ("" for the default export). */
  readonly exportName: string;
  /** The URI as given, for messages. */
  readonly uri: string;
}

/** Whether `text` looks like an NBD URI (an `nbd…:` scheme), so a disk path is one. */
export function isNbdUri(text: string): boolean {
  return /^nbds?(\+[a-z]+)?:/i.test(text);
}

// RFC 3986 appendix B: scheme, authority, path, query, fragment.
const URI = /^([A-Za-z][A-Za-z0-9+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(#.*)?$/;

const TLS_PARAMETERS = ["tls-type", "tls-hostname", "tls-verify-peer"];

/**
 * Parses an NBD URI.
 *
 * @throws VirtioBlkError INVALID_CONFIG naming the problem (UNSUPPORTED for TLS)
 */
export function parseNbdUri(uri: string): NbdAddress {
  const fail = (problem: string, code: "INVALID_CONFIG" | "UNSUPPORTED" = "INVALID_CONFIG") =>
    new VirtioBlkError(code, `${uri}: ${problem}`);
  const parts = URI.exec(uri);
  if (parts === null) throw fail("not a URI (expected nbd://host[:port]/export)");
  const [, schemeText, authority, path, query, fragment] = parts;
  const scheme = schemeText.toLowerCase();
  if (scheme === "nbds" || scheme === "nbds+unix") {
    throw fail(`TLS (${scheme}:) is not supported; use nbd:// or nbd+unix://`, "UNSUPPORTED");
  }
  if (scheme !== "nbd" && scheme !== "nbd+unix") {
    throw fail(`unsupported scheme "${schemeText}:" (expected nbd: or nbd+unix:)`);
  }
  if (authority === undefined) {
    throw fail(
      scheme === "nbd"
        ? `expected nbd://host[:port]/export`
        : `expected nbd+unix:///export?socket=/path`,
    );
  }
  if (fragment !== undefined) throw fail(`unexpected fragment "${fragment}"`);
  if (path !== "" && !path.startsWith("/")) throw fail(`bad export path "${path}"`);
  const exportName = decode(path.slice(1), "export name", fail);
  if (exportName.includes("\0")) throw fail("the export name contains NUL");
  if (new TextEncoder().encode(exportName).length > MAX_STRING) {
    throw fail(`the export name is longer than ${MAX_STRING} bytes`);
  }
  const parameters = parseQuery(query ?? "", fail);
  for (const name of parameters.keys()) {
    if (TLS_PARAMETERS.includes(name)) {
      throw fail(`"${name}" is a TLS parameter; TLS is not supported`, "UNSUPPORTED");
    }
    if (name !== "socket" || scheme === "nbd") {
      throw fail(
        name === "socket"
          ? `socket= is only for nbd+unix:// URIs`
          : `unknown query parameter "${name}"`,
      );
    }
  }

  if (scheme === "nbd+unix") {
    if (authority !== "") {
      throw fail(`a Unix-socket URI has no host ("${authority}"); use nbd+unix:///export?socket=`);
    }
    const socketPath = parameters.get("socket");
    if (socketPath === undefined) throw fail("missing socket=/path of the Unix socket");
    if (socketPath === "") throw fail("empty socket= path");
    if (socketPath.includes("\0")) {
      throw fail("abstract Unix sockets (socket=%00…) are not supported");
    }
    return { transport: "unix", socketPath, exportName, uri };
  }

  const { host, port } = parseAuthority(authority, fail);
  return { transport: "tcp", host, port, exportName, uri };
}

/** `host:port` of an address for messages, or the socket path. */
export function describeEndpoint(address: NbdAddress): string {
  if (address.transport === "unix") return address.socketPath;
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

type Fail = (problem: string) => VirtioBlkError;

function parseAuthority(authority: string, fail: Fail): { host: string; port: number } {
  if (authority.includes("@")) {
    throw fail("a user name in the URI is only for TLS authentication, which is not supported");
  }
  let host: string;
  let portText: string | undefined;
  if (authority.startsWith("[")) {
    // RFC 3986 3.2.2 / RFC 2732: an IPv6 literal in brackets.
    const close = authority.indexOf("]");
    if (close < 0) throw fail(`bad IPv6 address "${authority}" (no closing "]")`);
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) throw fail(`bad host "${authority}"`);
    if (!/^[0-9A-Fa-f:.]+$/.test(host) || !host.includes(":")) {
      throw fail(`bad IPv6 address "[${host}]"`);
    }
    portText = rest === "" ? undefined : rest.slice(1);
  } else {
    const colon = authority.lastIndexOf(":");
    host = decode(colon < 0 ? authority : authority.slice(0, colon), "host", fail);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
  }
  if (host === "") throw fail("missing host (expected nbd://host[:port]/export)");
  if (/[\s/\\]/.test(host)) throw fail(`bad host "${host}"`);
  // An empty port ("host:/x") is the default port (RFC 3986 3.2.3).
  if (portText === undefined || portText === "") return { host, port: NBD_DEFAULT_PORT };
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw fail(`bad port "${portText}" (expected 1 to 65535)`);
  return { host, port };
}

function parseQuery(query: string, fail: Fail): Map<string, string> {
  const parameters = new Map<string, string>();
  if (query === "") return parameters;
  for (const item of query.split("&")) {
    if (item === "") continue;
    const equals = item.indexOf("=");
    if (equals < 0) throw fail(`query parameter "${item}" has no value (expected name=value)`);
    const name = decode(item.slice(0, equals), "query parameter", fail);
    if (parameters.has(name)) throw fail(`query parameter "${name}" is given twice`);
    parameters.set(name, decode(item.slice(equals + 1), `${name}=`, fail));
  }
  return parameters;
}

function decode(text: string, what: string, fail: Fail): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw fail(`bad percent-encoding in the ${what} "${text}"`);
  }
}
