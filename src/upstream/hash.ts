/**
 * Hashing for source-hash balancing (balance.ts): a string to 32 well-mixed bits,
 * cheap enough to run per connection. Not cryptographic: a client who picks its
 * address could pick its target anyway by connecting from another one.
 */

/** hashString is 32-bit FNV-1a over the string's UTF-16 code units, then mixed (fmix32). */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return fmix32(hash);
}

/** fmix32 is MurmurHash3's finalizer: every input bit changes about half the output bits. */
export function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
