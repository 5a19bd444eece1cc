/**
 * CRC32c (Castagnoli, RFC 4960 appendix B), the checksum of the v2 header's
 * PP2_TYPE_CRC32C TLV. Node has no CRC32c of its own (`zlib.crc32`, Node 22+, is the
 * IEEE polynomial), and this is a few lines; the table is built on first use.
 */

let table: Int32Array | undefined;

function makeTable(): Int32Array {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  return t;
}

/** crc32c is the CRC32c of `bytes`, as an unsigned 32-bit number (`123456789` gives 0xe3069283). */
export function crc32c(bytes: Uint8Array): number {
  table ??= makeTable();
  let c = -1;
  for (let i = 0; i < bytes.length; i++) {
    c = (table[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  }
  return ~c >>> 0;
}
