/**
 * NBD URIs (doc/uri.md of the NetworkBlockDevice project): the forms a
 * disk path may take, the export name and endpoint each names, and one
 * clear line for every form that is refused.
 */

import assert from "node:assert/strict";
import { VirtioBlkError } from "../../src/errors.ts";
import { describeEndpoint, isNbdUri, parseNbdUri } from "../../src/nbd/uri.ts";

Deno.test("nbd:// names a TCP endpoint, port 10809 unless given, and the export after the slash", () => {
  const cases: [string, string, number, string][] = [
    ["nbd://example.com/disk", "example.com", 10809, "disk"],
    ["nbd://127.0.0.1:2000/disk", "127.0.0.1", 2000, "disk"],
    ["nbd://example.com/", "example.com", 10809, ""],
    ["nbd://example.com", "example.com", 10809, ""],
    ["nbd://example.com//disk", "example.com", 10809, "/disk"],
    ["nbd://example.com/hello%20world", "example.com", 10809, "hello world"],
    ["nbd://[::1]:10810/x", "::1", 10810, "x"],
    ["nbd://[fe80::1]/x", "fe80::1", 10809, "x"],
    ["nbd://host:/x", "host", 10809, "x"],
    ["NBD://host:65535/x", "host", 65535, "x"],
  ];
  for (const [uri, host, port, exportName] of cases) {
    const address = parseNbdUri(uri);
    assert.deepEqual(address, { transport: "tcp", host, port, exportName, uri }, uri);
  }
  assert.equal(describeEndpoint(parseNbdUri("nbd://[::1]:5/x")), "[::1]:5");
  assert.equal(describeEndpoint(parseNbdUri("nbd://h:5/x")), "h:5");
});

Deno.test("nbd+unix:/// names a socket path (socket=) and the export", () => {
  assert.deepEqual(parseNbdUri("nbd+unix:///disk?socket=/tmp/nbd.sock"), {
    transport: "unix",
    socketPath: "/tmp/nbd.sock",
    exportName: "disk",
    uri: "nbd+unix:///disk?socket=/tmp/nbd.sock",
  });
  assert.equal(parseNbdUri("nbd+unix:///?socket=sock").exportName, "");
  assert.equal(describeEndpoint(parseNbdUri("nbd+unix://?socket=a%20b")), "a b");
  assert.equal(describeEndpoint(parseNbdUri("nbd+unix:///?socket=/s")), "/s");
});

Deno.test("everything else is refused with one line naming the problem", () => {
  const refused: [string, string, string][] = [
    [
      "nbds://host/disk",
      "UNSUPPORTED",
      "nbds://host/disk: TLS (nbds:) is not supported; use nbd:// or nbd+unix://",
    ],
    ["nbds+unix:///d?socket=/s", "UNSUPPORTED", "TLS (nbds+unix:) is not supported"],
    [
      "nbd://host/disk?tls-type=x509",
      "UNSUPPORTED",
      `"tls-type" is a TLS parameter; TLS is not supported`,
    ],
    [
      "nbd://user@host/disk",
      "INVALID_CONFIG",
      "a user name in the URI is only for TLS authentication",
    ],
    ["nbd+vsock://1/disk", "INVALID_CONFIG", `unsupported scheme "nbd+vsock:"`],
    ["http://host/disk", "INVALID_CONFIG", `unsupported scheme "http:"`],
    ["/var/disk.img", "INVALID_CONFIG", "not a URI"],
    ["nbd:disk", "INVALID_CONFIG", "expected nbd://host[:port]/export"],
    ["nbd:///disk", "INVALID_CONFIG", "missing host"],
    ["nbd://host:0/disk", "INVALID_CONFIG", `bad port "0" (expected 1 to 65535)`],
    ["nbd://host:65536/disk", "INVALID_CONFIG", `bad port "65536"`],
    ["nbd://host:80x/disk", "INVALID_CONFIG", `bad port "80x"`],
    ["nbd://host:-1/disk", "INVALID_CONFIG", `bad port "-1"`],
    ["nbd://[::1/disk", "INVALID_CONFIG", "bad IPv6 address"],
    ["nbd://[zz]/disk", "INVALID_CONFIG", `bad IPv6 address "[zz]"`],
    ["nbd://host/disk?socket=/s", "INVALID_CONFIG", "socket= is only for nbd+unix:// URIs"],
    ["nbd://host/disk?timeout=5", "INVALID_CONFIG", `unknown query parameter "timeout"`],
    ["nbd://host/disk#frag", "INVALID_CONFIG", `unexpected fragment "#frag"`],
    ["nbd://host/%zz", "INVALID_CONFIG", `bad percent-encoding in the export name "%zz"`],
    ["nbd://host/a%00b", "INVALID_CONFIG", "the export name contains NUL"],
    [
      `nbd://host/${"x".repeat(4097)}`,
      "INVALID_CONFIG",
      "the export name is longer than 4096 bytes",
    ],
    ["nbd+unix:///disk", "INVALID_CONFIG", "missing socket=/path of the Unix socket"],
    ["nbd+unix:///disk?socket=", "INVALID_CONFIG", "empty socket= path"],
    [
      "nbd+unix:///disk?socket=/a&socket=/b",
      "INVALID_CONFIG",
      `query parameter "socket" is given twice`,
    ],
    ["nbd+unix:///disk?socket", "INVALID_CONFIG", `query parameter "socket" has no value`],
    ["nbd+unix://host/disk?socket=/s", "INVALID_CONFIG", `a Unix-socket URI has no host ("host")`],
    ["nbd+unix:///disk?socket=%00abstract", "INVALID_CONFIG", "abstract Unix sockets"],
    ["nbd+unix:///disk?socket=/s&x-debug=1", "INVALID_CONFIG", `unknown query parameter "x-debug"`],
  ];
  for (const [uri, code, message] of refused) {
    assert.throws(() => parseNbdUri(uri), (error: unknown) => {
      assert.ok(error instanceof VirtioBlkError, uri);
      assert.equal(error.code, code, uri);
      assert.ok(error.message.startsWith(`${uri}: `), `${uri}: ${error.message}`);
      assert.ok(error.message.includes(message), `${uri}: ${error.message}`);
      assert.ok(!error.message.includes("\n"), "one line");
      return true;
    });
  }
});

Deno.test("isNbdUri tells NBD URIs from file paths", () => {
  for (const uri of ["nbd://h/x", "nbd+unix:///x?socket=/s", "nbds://h/x", "NBD://h"]) {
    assert.ok(isNbdUri(uri), uri);
  }
  for (const path of ["/var/disk.img", "disk.img", "nbd.img", "./nbd://x"]) {
    assert.ok(!isNbdUri(path), path);
  }
});
