/**
 * CRC-32 checksums computed in JavaScript: the IEEE polynomial that GPT
 * headers and partition arrays use (UEFI 2.10 §5.3.2), and Castagnoli's
 * (CRC-32C) that ext4's metadata_csum and the load generator's block
 * verification use. Table driven, eight bytes per step ("slicing by 8"),
 * because verification checksums every block a load reads or writes.
 *
 * Both are the standard reflected forms with initial value and final XOR
 * 0xFFFFFFFF, so `crc32(ascii("123456789"))` is 0xCBF43926 and
 * `crc32c(ascii("123456789"))` is 0xE3069283.
 *
 * @module
 */

/** A CRC-32 over `bytes[start, end)`. Pass an earlier result as `previous` to continue it. */
export type Crc32Function = (
  bytes: Uint8Array,
  start?: number,
  end?: number,
  previous?: number,
) => number;

/** Reflected IEEE 802.3 polynomial (GPT, zlib, Ethernet). */
export const CRC32_POLYNOMIAL = 0xedb88320;

/** Reflected Castagnoli polynomial (iSCSI, ext4, btrfs). */
export const CRC32C_POLYNOMIAL = 0x82f63b78;

/** Eight 256-entry tables: table k gives the CRC of a byte followed by k zero bytes. */
function slicingTables(polynomial: number): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ polynomial : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n];
    for (let k = 1; k < 8; k++) {
      c = tables[c & 0xff] ^ (c >>> 8);
      tables[k * 256 + n] = c >>> 0;
    }
  }
  return tables;
}

/**
 * Builds a CRC-32 function for a reflected `polynomial`.
 *
 * @example
 * ```ts
 * const crc = makeCrc32(CRC32_POLYNOMIAL);
 * crc(new TextEncoder().encode("123456789")); // 0xcbf43926
 * ```
 */
export function makeCrc32(polynomial: number): Crc32Function {
  const t = slicingTables(polynomial);
  return (bytes, start = 0, end = bytes.length, previous = 0) => {
    let crc = ~previous;
    let i = start;
    const fast = end - 8;
    while (i <= fast) {
      const a = crc ^
        (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
      crc = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^
        t[1280 + ((a >>> 16) & 0xff)] ^ t[1024 + (a >>> 24)] ^
        t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
      i += 8;
    }
    while (i < end) crc = t[(crc ^ bytes[i++]) & 0xff] ^ (crc >>> 8);
    return ~crc >>> 0;
  };
}

/** CRC-32 (IEEE): GPT header and partition-array checksums. */
export const crc32: Crc32Function = makeCrc32(CRC32_POLYNOMIAL);

/** CRC-32C (Castagnoli): ext4 metadata_csum and load-generator block checksums. */
export const crc32c: Crc32Function = makeCrc32(CRC32C_POLYNOMIAL);
