/**
 * The QMP socket option in our spelling and QEMU's: what each form means
 * (QEMU's `wait` defaults to on with `server`; `nowait` is its old
 * spelling of `wait=off`), and QEMU's `-qmp` read as an option only where
 * it stands as one.
 */

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseQmpOption, withQemuSpelling } from "../../src/cli/qmp_option.ts";

Deno.test("qmp option: a path, and QEMU's unix: forms with server and wait", () => {
  const dir = mkdtempSync(`${tmpdir()}/qmp-option-`);
  try {
    const path = `${dir}/qmp.sock`;
    const forms: [string, boolean][] = [
      [path, false],
      [`unix:${path},server=on,wait=off`, false],
      [`unix:${path},server,nowait`, false],
      [`unix:${path},server=on`, true], // QEMU waits for a client unless told not to
      [`unix:${path},server,wait`, true],
      [`unix:${path},wait=off,server=on`, false],
    ];
    for (const [text, wait] of forms) {
      assert.deepEqual(parseQmpOption(text, "-qmp"), { path, wait }, text);
    }
    assert.equal(readdirSync(dir).length, 0, "checking creates nothing");
  } finally {
    rmSync(dir, { recursive: true });
  }
});

Deno.test("qmp option: QEMU's -qmp is --qmp where it is an option, a value where it follows one", () => {
  const options = {
    qmp: { type: "string" },
    slot: { type: "string", short: "s" },
    json: { type: "boolean" },
  };
  assert.deepEqual(
    withQemuSpelling(["-qmp", "unix:/q,server", "-s", "9,virtio-blk,a.img", "--json"], options),
    ["--qmp", "unix:/q,server", "-s", "9,virtio-blk,a.img", "--json"],
  );
  // A file named -qmp given to -s, or to --qmp itself, stays a value.
  assert.deepEqual(withQemuSpelling(["-s", "-qmp"], options), ["-s", "-qmp"]);
  assert.deepEqual(withQemuSpelling(["--qmp", "-qmp"], options), ["--qmp", "-qmp"]);
  assert.deepEqual(withQemuSpelling(["--json", "-qmp", "x"], options), ["--json", "--qmp", "x"]);
});
