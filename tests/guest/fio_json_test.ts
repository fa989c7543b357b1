/**
 * `--json` of the load job loads into what reads fio's JSON: a real fio run
 * of the same job (`fio --output-format=json`, fio 3.33 in Debian bookworm)
 * has every field we share with it, under the same path and with the same
 * JSON type; fields of our own have names fio does not use.
 */

import assert from "node:assert/strict";
import { runLoad } from "../../src/guest/jobs/load.ts";
import { parseLoadOptions } from "../../src/guest/jobs/load_options.ts";
import { loadResultJson } from "../../src/guest/jobs/report.ts";
import { harness, MiB } from "../helpers/harness.ts";
import { jsonType } from "../helpers/json_type.ts";
import { needsTools } from "../helpers/skip.ts";
import { TempDir } from "./tools.ts";

const FIO = needsTools("fio");

/** Our fields (by path, `*` any key), which fio does not have. */
const OURS = new Set([
  "jobs.*.region",
  "jobs.*.depth",
  "jobs.*.stopped_by",
  "jobs.*.verify",
  "jobs.*.errors",
  "jobs.*.flushed",
  "jobs.*.notes",
  "jobs.*.read.errors",
  "jobs.*.write.errors",
  "jobs.*.trim.errors",
]);

/** Checks every field of `ours` against `theirs`, recursively; returns the paths compared. */
function assertFioShape(ours: unknown, theirs: unknown, path: string[], seen: string[]): void {
  const name = path.join(".");
  const pattern = path.map((part, i) => i === 1 && path[0] === "jobs" ? "*" : part).join(".");
  if (OURS.has(pattern)) {
    assert.ok(theirs === undefined, `${name} is fio's, not ours`);
    return;
  }
  assert.notEqual(theirs, undefined, `fio has no ${name}`);
  assert.equal(jsonType(ours), jsonType(theirs), `type of ${name}`);
  seen.push(name);
  if (jsonType(ours) === "object" || jsonType(ours) === "array") {
    for (const [key, value] of Object.entries(ours as Record<string, unknown>)) {
      assertFioShape(value, (theirs as Record<string, unknown>)[key], [...path, key], seen);
    }
  }
}

Deno.test({
  name: "load --json: every field we share with fio's JSON has fio's path and type",
  ignore: FIO.ignore,
  fn: async () => {
    const h = harness({ diskBytes: MiB });
    const options = { rw: "randrw", bs: "4k", iodepth: "4", verify: "crc32c", seed: "7" };
    const result = runLoad(h, parseLoadOptions(options));
    await h.close();
    const ours = loadResultJson(result, "vda");

    using dir = new TempDir();
    const file = dir.file("fio.dat");
    Deno.writeFileSync(file, new Uint8Array(MiB));
    const output = new Deno.Command("fio", {
      // fio leaves its verify state file in its working directory.
      cwd: dir.path,
      args: [
        "--name=vda",
        `--filename=${file}`,
        "--ioengine=psync",
        "--rw=randrw",
        "--rwmixread=50",
        "--bs=4096",
        "--iodepth=4",
        "--offset=0",
        `--size=${MiB}`,
        "--randseed=7",
        "--verify=crc32c",
        // Percentiles of clat and of lat, as ours has them (fio's default: clat only).
        "--lat_percentiles=1",
        "--output-format=json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const text = new TextDecoder().decode(output.stdout);
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    // fio may print notes before its JSON document.
    const theirs = JSON.parse(text.slice(text.indexOf("{")));

    const seen: string[] = [];
    assertFioShape(ours, theirs, [], seen);
    for (
      const path of [
        "fio version",
        "jobs.0.jobname",
        "jobs.0.job options.randseed",
        "jobs.0.read.io_bytes",
        "jobs.0.read.bw",
        "jobs.0.read.iops",
        "jobs.0.read.clat_ns.percentile.50.000000",
        "jobs.0.write.clat_ns.percentile.99.900000",
        "jobs.0.write.lat_ns.mean",
        "jobs.0.trim.io_bytes",
      ]
    ) {
      assert.ok(seen.includes(path), `${path} was compared`);
    }
    // The same job options, by fio's names and as fio echoes them.
    const given = theirs.jobs[0]["job options"] as Record<string, string>;
    for (const [key, value] of Object.entries(ours.jobs[0]["job options"] as object)) {
      assert.equal(value, given[key], `job option ${key}`);
    }
  },
});
