/**
 * The OPFS benchmark case (scripts/bench/opfs_vs_file.ts) runs each load on
 * both media and reports figures for every one: a short run, no timing
 * asserted.
 */

import assert from "node:assert/strict";
import { formatOpfsBench, runOpfsBench } from "../../scripts/bench/opfs_vs_file.ts";
import { needsTools } from "../helpers/skip.ts";

Deno.test({
  name: "OPFS benchmark: the same loads on an OPFS disk in Chromium and on a file in Deno",
  ignore: needsTools("chromium").ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const rows = await runOpfsBench({ size: "4M", runtime: 1, iodepth: 4 });
    assert.deepEqual(
      rows.map((row) => `${row.medium}: ${row.load}`),
      [
        "OPFS (Chromium): fill (write 1M)",
        "OPFS (Chromium): randread 4k",
        "OPFS (Chromium): randwrite 4k",
        "file (Deno): fill (write 1M)",
        "file (Deno): randread 4k",
        "file (Deno): randwrite 4k",
      ],
    );
    for (const row of rows) {
      assert.ok(row.result.ios > 0, `${row.medium} ${row.load} did I/O`);
      assert.equal(row.result.errors, 0, `${row.medium} ${row.load} without errors`);
    }
    // The fill wrote the whole disk: 4 blocks of 1 MiB on each medium.
    assert.equal(rows[0].result.ios, 4);
    assert.equal(rows[3].result.ios, 4);
    const table = formatOpfsBench(rows);
    assert.equal(table.trimEnd().split("\n").length, 7, "a header and a line per row");
  },
});
