import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { VirtioBlkError } from "../../src/errors.ts";
import {
  DEFAULT_LOAD_OPTIONS,
  LOAD_OPTION_DEFINITIONS,
  LOAD_OPTION_HELP,
  type LoadOptions,
  parseLoadOptions,
} from "../../src/guest/jobs/load_options.ts";
import { type LoadDisk, planLoad } from "../../src/guest/jobs/load_plan.ts";

const MiB = 1 << 20;

/** Parses a command line the way the CLI will: parseArgs with the exported definitions. */
function fromArgs(...args: string[]): LoadOptions {
  const { values } = parseArgs({ args, options: { ...LOAD_OPTION_DEFINITIONS }, strict: true });
  return parseLoadOptions(values);
}

function rejects(values: Record<string, unknown>, message: string): void {
  assert.throws(() => parseLoadOptions(values), (error) => {
    assert.ok(error instanceof VirtioBlkError);
    assert.equal(error.code, "INVALID_CONFIG");
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("load options: nothing given is fio's defaults", () => {
  assert.deepEqual(fromArgs(), DEFAULT_LOAD_OPTIONS);
  assert.equal(DEFAULT_LOAD_OPTIONS.rw, "read");
  assert.equal(DEFAULT_LOAD_OPTIONS.bs, 4096);
  assert.equal(DEFAULT_LOAD_OPTIONS.iodepth, 1);
});

Deno.test("load options: a fio command line", () => {
  assert.deepEqual(
    fromArgs(
      "--rw=randwrite",
      "--bs=4k",
      "--iodepth=32",
      "--size=64M",
      "--runtime=10",
      "--verify=crc32c",
    ),
    {
      ...DEFAULT_LOAD_OPTIONS,
      rw: "randwrite",
      bs: 4096,
      iodepth: 32,
      size: { bytes: 64 * MiB },
      runtimeMs: 10_000,
      verify: "crc32c",
    },
  );
  assert.deepEqual(
    fromArgs(
      "--rw",
      "readwrite",
      "--rwmixread=70",
      "--offset=50%",
      "--size=25%",
      "--runtime=500ms",
      "--time_based",
      "--ramp_time=2s",
      "--seed=0xdeadbeef",
      "--end_fsync",
      "--continue_on_error",
      "--verify=none",
    ),
    {
      ...DEFAULT_LOAD_OPTIONS,
      rw: "rw",
      rwmixread: 70,
      offset: { percent: 50 },
      size: { percent: 25 },
      runtimeMs: 500,
      timeBased: true,
      rampMs: 2000,
      seed: 0xdeadbeef,
      endFsync: true,
      continueOnError: true,
    },
  );
});

Deno.test("load options: other keys of parseArgs' values are ignored; the last of repeated values wins", () => {
  assert.equal(parseLoadOptions({ json: true, slot: ["9,virtio-blk,a.img"], bs: "8k" }).bs, 8192);
  assert.equal(parseLoadOptions({ bs: ["8k", "16k"] }).bs, 16384);
});

Deno.test("load options: each bad value is one clear error naming the option", () => {
  const cases: [Record<string, unknown>, string][] = [
    [
      { rw: "randtrim" },
      "--rw=randtrim: expected one of read, write, randread, randwrite, rw, randrw",
    ],
    [{ rwmixread: "101" }, "--rwmixread=101: must be a whole number from 0 to 100"],
    [{ rwmixread: "half" }, "--rwmixread=half: must be a whole number from 0 to 100"],
    [{ bs: "4x" }, "--bs=4x: expected a size such as 512, 4k or 1M"],
    [{ bs: "1000" }, "--bs=1000: must be a multiple of 512"],
    [{ bs: "0" }, "--bs=0: must be a multiple of 512"],
    [{ bs: "1g" }, "--bs=1g: must be at most 256M"],
    [{ iodepth: "0" }, "--iodepth=0: must be a whole number from 1 to 32768"],
    [{ iodepth: "1.5" }, "--iodepth=1.5: must be a whole number from 1 to 32768"],
    [{ iodepth: "-1" }, "--iodepth=-1: must be a whole number from 1 to 32768"],
    [{ size: "0" }, "--size=0: must be more than 0"],
    [{ size: "0%" }, "--size=0%: a percentage must be above 0, at most 100"],
    [{ size: "lots" }, "--size=lots: expected a size such as 4096, 64k, 1M or 50%"],
    [{ offset: "101%" }, "--offset=101%: a percentage must be from 0 to 100"],
    [{ offset: "100" }, "--offset=100: must be a multiple of 512"],
    [{ runtime: "soon" }, "--runtime=soon: expected a time such as 10, 10s, 500ms or 2m"],
    [{ runtime: "0" }, "--runtime=0: must be more than 0"],
    [{ time_based: true }, "--time_based needs --runtime"],
    [{ ramp_time: "later" }, "--ramp_time=later: expected a time such as 2, 2s or 500ms"],
    [{ ramp_time: "1s", runtime: "1s" }, "--ramp_time needs --time_based"],
    [{ seed: "-1" }, "--seed=-1: must be a whole number from 0 to 4294967295"],
    [{ seed: "4294967296" }, "--seed=4294967296: must be a whole number from 0 to 4294967295"],
    [{ verify: "md5" }, "--verify=md5: only crc32c (or none) is supported"],
    [{ bs: true }, "--bs needs a value"],
    [{ time_based: "yes" }, "--time_based takes no value"],
  ];
  for (const [values, message] of cases) rejects(values, message);
});

Deno.test("load options: every definition has a help line and every help line a definition", () => {
  assert.deepEqual(
    LOAD_OPTION_HELP.map((h) => h.name).sort(),
    Object.keys(LOAD_OPTION_DEFINITIONS).sort(),
  );
});

const DISK: LoadDisk = {
  capacity: 16 * MiB,
  logicalBlockSize: 512,
  readOnly: false,
  queueSize: 64,
  indirect: false,
};

function plans(values: Record<string, unknown>, disk: Partial<LoadDisk> = {}) {
  return planLoad(parseLoadOptions(values), { ...DISK, ...disk });
}

function refuses(values: Record<string, unknown>, disk: Partial<LoadDisk>, message: string): void {
  assert.throws(() => plans(values, disk), (error) => {
    assert.ok(error instanceof VirtioBlkError);
    assert.equal(error.code, "INVALID_CONFIG");
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("load plan: the region, block count and share of reads", () => {
  const whole = plans({ rw: "randwrite" });
  assert.deepEqual(
    [whole.offset, whole.size, whole.blocks, whole.random, whole.readPercent, whole.notes],
    [0, 16 * MiB, 4096, true, 0, []],
  );
  const half = plans({ rw: "rw", rwmixread: "30", offset: "50%", size: "25%", bs: "64k" });
  assert.deepEqual(
    [half.offset, half.size, half.blocks, half.random, half.readPercent],
    [8 * MiB, 4 * MiB, 64, false, 30],
  );
  // A percentage that would run past the end is cut at the end.
  assert.equal(plans({ offset: "75%", size: "50%" }).size, 4 * MiB);
  assert.equal(plans({ rw: "randread" }).readPercent, 100);
});

Deno.test("load plan: a region that is not a whole number of blocks is rounded down, with a note", () => {
  const plan = plans({ bs: "64k", size: "100k" });
  assert.equal(plan.size, 64 * 1024);
  assert.deepEqual(plan.notes, ["region rounded down to 1 block of 64KiB"]);
});

Deno.test("load plan: the queue depth is what the ring can hold", () => {
  const direct = plans({ iodepth: "32" });
  assert.equal(direct.depth, 21);
  assert.deepEqual(direct.notes, [
    "iodepth 32 limited to 21: the ring has 64 descriptors and each request takes 3",
  ]);
  assert.equal(plans({ iodepth: "32" }, { indirect: true }).depth, 32);
  assert.equal(plans({ iodepth: "100" }, { indirect: true }).depth, 64);
});

Deno.test("load plan: writing to a read-only disk is allowed but noted", () => {
  assert.deepEqual(plans({ rw: "write" }, { readOnly: true }).notes, [
    "the disk is read-only: its writes will fail",
  ]);
  assert.deepEqual(plans({ rw: "read" }, { readOnly: true }).notes, []);
});

Deno.test("load plan: what the disk cannot take is one clear error", () => {
  refuses(
    { bs: "512" },
    { logicalBlockSize: 4096 },
    "--bs=512 is not a multiple of the disk's logical block size 4096",
  );
  refuses(
    { offset: "1024" },
    { logicalBlockSize: 4096 },
    "--offset=1024 is not a multiple of the logical block size 4096",
  );
  refuses(
    { offset: "16M" },
    {},
    `--offset=${16 * MiB} is at or past the end of the disk (${16 * MiB} bytes)`,
  );
  refuses(
    { offset: "8M", size: "9M" },
    {},
    `--offset=${8 * MiB} + --size=${9 * MiB} runs past the end of the disk (${16 * MiB} bytes)`,
  );
  refuses(
    { bs: "1M" },
    { capacity: MiB / 2 },
    `the region (${MiB / 2} bytes from 0) is smaller than --bs=${MiB}`,
  );
});
