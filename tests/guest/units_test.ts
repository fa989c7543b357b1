import assert from "node:assert/strict";
import {
  formatBinary,
  formatCount,
  formatDecimal,
  humanSize,
  parseDuration,
  parseSize,
  printable,
} from "../../src/guest/jobs/units.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

Deno.test("units: fio sizes are binary, with optional i/b after the suffix", () => {
  const cases: [string, number | undefined][] = [
    ["4096", 4096],
    ["512b", 512],
    ["4k", 4 * KiB],
    ["4K", 4 * KiB],
    ["4KiB", 4 * KiB],
    ["4kb", 4 * KiB],
    ["64M", 64 * MiB],
    ["1g", GiB],
    ["2T", 2 * 1024 * GiB],
    ["1.5k", 1536],
    [" 8k ", 8 * KiB],
    ["0", 0],
    ["0.3k", undefined], // not a whole number of bytes
    ["4x", undefined],
    ["-4k", undefined],
    ["k", undefined],
    ["", undefined],
    ["4 k b x", undefined],
    ["99999999999999999999", undefined],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
});

Deno.test("units: fio runtimes are seconds unless a unit says otherwise", () => {
  const cases: [string, number | undefined][] = [
    ["10", 10_000],
    ["10s", 10_000],
    ["500ms", 500],
    ["250us", 0.25],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1.5s", 1500],
    ["1d", 86_400_000],
    ["ten", undefined],
    ["10 minutes", undefined],
    ["", undefined],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("units: sizes read like lsblk's (1024 based, one decimal, no trailing .0)", () => {
  const cases: [number, string][] = [
    [0, "0B"],
    [1000, "1000B"],
    [1023, "1023B"],
    [KiB, "1K"],
    [1536, "1.5K"],
    [16 * MiB, "16M"],
    [512 * MiB, "512M"],
    [GiB, "1G"],
    [1.5 * GiB, "1.5G"],
    [GiB + 100 * MiB, "1.1G"],
    [GiB - 1, "1024M"], // rounds up to the next whole unit, as lsblk does
    [8 * 1024 * GiB, "8T"],
  ];
  for (const [bytes, text] of cases) assert.equal(humanSize(bytes), text, String(bytes));
});

Deno.test("units: rates read like fio's (IOPS=12.3k, BW=176MiB/s (185MB/s))", () => {
  assert.deepEqual(
    [950, 9999, 12_345, 99_960, 123_456, 1_234_567, 12_345_678].map(formatCount),
    ["950", "9999", "12.3k", "100k", "123k", "1235k", "12.3M"],
  );
  assert.deepEqual(
    [500, 4096, 176 * MiB, 12.34 * MiB, 1.5 * GiB, 9.999 * MiB, 99.96 * MiB].map(formatBinary),
    ["500B", "4KiB", "176MiB", "12.3MiB", "1.50GiB", "10.0MiB", "100MiB"],
  );
  assert.equal(formatDecimal(176 * MiB), "185MB");
});

Deno.test("units: text from a disk cannot drive the terminal", () => {
  assert.equal(printable("\x1b[31mred\x07"), "\\x1b[31mred\\x07");
  assert.equal(printable("a\nb\u202ec"), "a\\x0ab\\u202ec");
  assert.equal(printable("données ✓"), "données ✓");
});
