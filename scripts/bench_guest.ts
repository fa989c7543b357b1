/**
 * The guest benchmark of issue 7: the same fio jobs inside a Linux guest
 * (4 KiB random read at QD1 and QD32, 4 KiB random write at QD32, 1 MiB
 * sequential read and write at QD8) on one image, served by
 *   (a) our vhost-user-blk back end (this process): the blockif worker
 *       engine or the in-process one, through the page cache or O_DIRECT
 *       (`-nocache`, as qsd's and QEMU's cache.direct=on here),
 *   (b) qemu-storage-daemon's vhost-user-blk export (aio=threads with
 *       O_DIRECT, and aio=io_uring in the cache mode of each of our io_uring
 *       variants that runs: each variant's ratio column is against its peer),
 *   (c) QEMU's built-in virtio-blk,
 * all modern guests, in one run, printed as a table with ratios.
 *
 *     deno run -A scripts/bench_guest.ts [--runtime 10] [--rounds 1] [--size-mib 512]
 *         [--ours worker,worker-nocache,inline,inline-nocache,worker-writeback,inline-writeback,
 *                 uring,uring-nocache]
 *         [--jobs rr4k_qd1,rr4k_qd32,rw4k_qd32,sr1m_qd8,sw1m_qd8]
 *
 * TCG guests on a 2-core machine are noisy (runs differ by tens of per cent):
 * compare within one run, and use --rounds to see the spread.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { describeFile } from "../src/backend/file_spec.ts";
import type { EngineFactory } from "../src/blk/engine.ts";
import { InlineEngine } from "../src/blk/inline_engine.ts";
import { workerEngine } from "../src/blockif/worker_engine.ts";
import { serveVhostUserBlk } from "../src/vhost_user/server.ts";
import { bootGuest, type Result } from "./guest/run_guest.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runtime: { type: "string", default: "10" },
    rounds: { type: "string", default: "1" },
    "size-mib": { type: "string", default: "512" },
    ours: { type: "string", default: "worker,worker-nocache" },
    jobs: { type: "string", default: "rr4k_qd1,rr4k_qd32,rw4k_qd32,sr1m_qd8,sw1m_qd8" },
  },
});

/**
 * Our back end's variants: the engine; O_DIRECT (`nocache`) as qsd's and QEMU's
 * cache.direct=on here; write-back, which like qsd (O_DIRECT, no flush per
 * write) completes a write before it is synced.
 */
const VARIANTS: Record<
  string,
  { engine: EngineFactory; direct?: boolean; writeback?: boolean; aio?: "io_uring" }
> = {
  worker: { engine: workerEngine() },
  inline: { engine: (context) => new InlineEngine(context) },
  "worker-nocache": { engine: workerEngine(), direct: true },
  "inline-nocache": { engine: (context) => new InlineEngine(context), direct: true },
  // Write-back: a write completes without fdatasync (the guest flushes when it needs to).
  "worker-writeback": { engine: workerEngine(), writeback: true },
  "inline-writeback": { engine: (context) => new InlineEngine(context), writeback: true },
  // ACRN's aio=io_uring: each worker's own ring; -nocache as qsd's cache.direct=on.
  uring: { engine: workerEngine(), aio: "io_uring" },
  "uring-nocache": { engine: workerEngine(), direct: true, aio: "io_uring" },
};

const oursVariants = values.ours.split(",").filter((name) => name in VARIANTS);
/** qemu-storage-daemon in each cache mode and aio of the variants of ours that run. */
const qsdConfigs = new Set(["qsd"]);
for (const name of oursVariants) qsdConfigs.add(qsdPeer(name));
const configs = [...oursVariants.map((name) => `ours-${name}`), ...qsdConfigs, "builtin"];

/**
 * The qemu-storage-daemon export to hold variant `name` against: the same
 * aio (threads or io_uring) and the same cache mode (cache.direct=on for
 * `-nocache`, off otherwise; boot.sh's `qsd[-uring][-cache]` kinds). Our
 * threads engine through the page cache is held against qsd's O_DIRECT
 * export as before (qsd's default here), with the `/qsd` column.
 */
function qsdPeer(name: string): string {
  const variant = VARIANTS[name];
  if (variant.aio !== "io_uring") return "qsd";
  return variant.direct ? "qsd-uring" : "qsd-uring-cache";
}
const dir = await Deno.makeTempDir({ prefix: "bench-guest-" });
const image = `${dir}/bench.img`;
const sizeMiB = Number(values["size-mib"]);

console.log(`creating ${image} (${sizeMiB} MiB of random data)`);
{
  const file = await Deno.open(image, { create: true, write: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < sizeMiB; i++) {
    for (let at = 0; at < chunk.length; at += 65536) {
      crypto.getRandomValues(chunk.subarray(at, at + 65536));
    }
    await file.write(chunk);
  }
  file.close();
}

/** iops and MiB/s per config, per job, per round. */
const rows = new Map<string, Map<string, Result[]>>();

async function runConfig(config: string): Promise<Result[]> {
  const env = { RUNTIME: values.runtime, JOBS: values.jobs, TAG: config };
  if (!config.startsWith("ours-")) {
    const kind = config.startsWith("qsd") ? config : "builtin";
    const boot = await bootGuest({
      disks: [`${kind}:${image}`],
      run: ["bench.sh"],
      env,
      timeoutSeconds: 900,
    });
    if (boot.rc !== 0) throw new Error(`${config} failed:\n${boot.output}`);
    return boot.results;
  }
  const socket = `${dir}/ours.sock`;
  const variant = VARIANTS[config.slice("ours-".length)];
  const server = serveVhostUserBlk({
    socketPath: socket,
    device: {
      backend: describeFile(image, { direct: variant.direct, aio: variant.aio }),
      engine: variant.engine,
      writeback: variant.writeback,
    },
  });
  try {
    const boot = await bootGuest({
      disks: [`vhost:${socket}`],
      run: ["bench.sh"],
      env,
      timeoutSeconds: 900,
    });
    if (boot.rc !== 0) throw new Error(`${config} failed:\n${boot.output}`);
    return boot.results;
  } finally {
    await server.close();
  }
}

try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const config of configs) {
      const started = performance.now();
      const results = await runConfig(config);
      console.log(
        `round ${round} ${config}: ${((performance.now() - started) / 1000).toFixed(1)} s, ` +
          results.filter((r) => r.job).map((r) => `${r.job}=${r.iops}`).join(" "),
      );
      for (const r of results.filter((r) => r.job && r.iops)) {
        const byConfig = rows.get(r.job) ?? new Map<string, Result[]>();
        rows.set(r.job, byConfig);
        byConfig.set(config, [...(byConfig.get(config) ?? []), r]);
      }
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

function mean(results: Result[] | undefined, key: string): number {
  if (!results || results.length === 0) return NaN;
  return results.reduce((sum, r) => sum + Number(r[key]), 0) / results.length;
}

const metric = (job: string) => job.startsWith("s") ? "bw_MiBs" : "iops";
const unit = (job: string) => job.startsWith("s") ? "MiB/s" : "IOPS";
const header = ["job", "unit", ...configs];
for (const variant of oursVariants) {
  header.push(`ours-${variant}/${qsdPeer(variant)}`, `ours-${variant}/builtin`);
}
console.log(
  `\nguest fio, modern guests, TCG, runtime ${values.runtime} s, mean of ${values.rounds} round(s)\n`,
);
console.log(`| ${header.join(" | ")} |`);
console.log(`|${header.map(() => "---").join("|")}|`);
for (const [job, byConfig] of rows) {
  const key = metric(job);
  const cells = [job, unit(job), ...configs.map((c) => mean(byConfig.get(c), key).toFixed(0))];
  for (const variant of oursVariants) {
    const ours = mean(byConfig.get(`ours-${variant}`), key);
    cells.push(
      (ours / mean(byConfig.get(qsdPeer(variant)), key)).toFixed(2),
      (ours / mean(byConfig.get("builtin"), key)).toFixed(2),
    );
  }
  console.log(`| ${cells.join(" | ")} |`);
}
