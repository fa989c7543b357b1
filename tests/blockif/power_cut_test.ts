/**
 * Durability against a power cut: the disk is a FUSE file (nbdfuse) served
 * by nbdkit's file plugin through its cache filter in write-back mode, so a
 * write that the device did not make stable lives only in nbdkit's cache (a
 * deleted file of nbdkit's): the filter passes it to the file plugin only at
 * a flush (the device's fdatasync becomes NBD_CMD_FLUSH, which writes the
 * dirty blocks back and flushes the plugin) or for a write with FUA
 * (nbdkit-cache-filter(1), cache=writeback). Killing nbdkit (SIGKILL) is the
 * power cut: its cache is gone, and what survives is in the backing file.
 *
 * A machine whose guest streams writes (`kill_child.ts`) runs on the FUSE
 * file until the cut; every write it acknowledged as durable — on
 * completion in write-through, once a later FLUSH completed in write-back —
 * must then be in the backing file, whole. The same harness catches a
 * device that lies (its medium's flush does nothing: `lying_backend.ts`),
 * which loses them.
 *
 * Each runs with the device's threads on synchronous calls and on io_uring
 * (`aio=io_uring`: write-through as RWF_DSYNC writes, FLUSH as an fsync op).
 *
 * `POWER_CUT_ROUNDS=N` sets the rounds per cache mode (default 2; the long
 * run is 50: `POWER_CUT_ROUNDS=50 deno test -A tests/blockif/power_cut_test.ts`).
 */

import assert from "node:assert/strict";
import { IO_VARIANTS, type IoVariant } from "../helpers/io_variants.ts";
import { NBD_MEDIUM_TOOLS, NbdMedium } from "../helpers/nbd_medium.ts";
import { needsTools } from "../helpers/skip.ts";
import { lostWrites, streamUntilCut } from "../helpers/stream_block.ts";

const skip = needsTools(...NBD_MEDIUM_TOOLS);
const ROUNDS = Number(Deno.env.get("POWER_CUT_ROUNDS") ?? "2");
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  throw new Error(`POWER_CUT_ROUNDS must be a whole number of rounds, at least 1`);
}
const LYING_ROUNDS = Math.min(ROUNDS, 3);
const IMAGE_BYTES = 1 << 20;

/** One stream, cut `delayMs` after its first acknowledgement; what it acknowledged and lost. */
async function powerCutRound(
  mode: "writethru" | "writeback",
  device: "honest" | "lying",
  delayMs: number,
  variant: IoVariant = IO_VARIANTS[0],
) {
  const dir = await Deno.makeTempDir({ prefix: "power-cut-" });
  try {
    const backing = `${dir}/backing.img`;
    await Deno.writeFile(backing, new Uint8Array(IMAGE_BYTES));
    await using medium = await NbdMedium.start({ plugin: { file: backing }, cache: "writeback" });
    const run = await streamUntilCut(
      medium.path,
      mode,
      device,
      delayMs,
      () => medium.powerCut(),
      variant.name === "io_uring" ? "io_uring" : "threads",
    );
    await medium.close();
    assert.ok(run.acked.size > 0, `nothing was acknowledged before the cut: ${run.stderr}`);
    return { acked: run.acked, lost: lostWrites(await Deno.readFile(backing), run.acked) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const delay = (round: number) => 100 + (round * 97) % 400;

for (const mode of ["writethru", "writeback"] as const) {
  for (const variant of IO_VARIANTS) {
    Deno.test({
      name:
        `power cut (${variant.name}, ${mode}, ${ROUNDS} rounds): every write acknowledged as durable is in the backing file, whole`,
      ignore: skip.ignore || variant.skip.ignore,
      fn: async () => {
        let acknowledged = 0;
        for (let round = 0; round < ROUNDS; round++) {
          const { acked, lost } = await powerCutRound(mode, "honest", delay(round), variant);
          acknowledged += acked.size;
          assert.deepEqual(lost, [], `round ${round} (cut ${delay(round)} ms after the first ack)`);
        }
        console.log(
          `power cut (${variant.name}, ${mode}): ${ROUNDS} rounds, ${acknowledged} acknowledged blocks, none lost`,
        );
      },
    });
  }

  Deno.test({
    name:
      `power cut (${mode}), a device whose medium's flush does nothing: the same harness finds acknowledged writes lost`,
    ignore: skip.ignore,
    fn: async () => {
      for (let round = 0; round < LYING_ROUNDS; round++) {
        const { acked, lost } = await powerCutRound(mode, "lying", delay(round));
        assert.ok(lost.length > 0, `round ${round}: ${acked.size} acknowledged, none lost`);
      }
    },
  });
}
