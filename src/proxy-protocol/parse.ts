/**
 * Reading a PROXY protocol header of either version, told apart by its first bytes:
 * `PROXY ` starts version 1, the 12-byte signature `\r\n\r\n\0\r\nQUIT\n` version 2;
 * anything else is refused as soon as one byte differs from both.
 *
 * `parseProxyHeader` answers on everything read so far and keeps no state: a handshake
 * calls it again after each read (the Handshake interface hands it all bytes so far).
 * That costs little: a v1 line is at most 107 bytes, and a v2 header is decoded only
 * once its length has arrived. `ProxyHeaderParser` is the same thing fed chunk by chunk.
 */
import { failed, more, type ProxyHeaderResult, quote } from './header.js';
import { parseV1, V1_PREFIX } from './v1.js';
import { parseV2, V2_SIGNATURE } from './v2.js';

/**
 * parseProxyHeader reads the PROXY header at the start of `bytes` (every byte read from
 * the client so far): `more` until it can tell, then the header and the bytes after it,
 * or a one-line error. It never throws.
 */
export function parseProxyHeader(bytes: Buffer): ProxyHeaderResult {
  if (bytes.length === 0) return more(1);
  const v1 = bytes[0] === V1_PREFIX[0];
  const signature = v1 ? V1_PREFIX : V2_SIGNATURE;
  const known = Math.min(bytes.length, signature.length);
  for (let i = 0; i < known; i++) {
    if (bytes[i] !== signature[i]) {
      // Quote up to the differing byte only: the message must not depend on how much
      // more happened to arrive in the same read.
      return failed(
        'PROXY header',
        `expected "PROXY " (v1) or the v2 signature, got ${quote(bytes.subarray(0, i + 1))}`,
      );
    }
  }
  if (bytes.length < signature.length) return more(bytes.length + 1);
  return v1 ? parseV1(bytes) : parseV2(bytes);
}

/**
 * ProxyHeaderParser reads a PROXY header from chunks as they arrive: `push` each chunk
 * until it answers `done` (with the header and the bytes after it) or `error`. It
 * decodes only when enough bytes for an answer have arrived (the `needed` of `more`).
 * Whichever way the same bytes are split into chunks, the answer is the same.
 */
export class ProxyHeaderParser {
  #chunks: Buffer[] = [];
  #length = 0;
  #needed = 1;
  #finished = false;

  /** push adds a chunk and answers on everything pushed so far. Throws once it has answered done or error. */
  push(chunk: Buffer): ProxyHeaderResult {
    if (this.#finished) throw new Error('ProxyHeaderParser: push after the header was read');
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    if (this.#length < this.#needed) return more(this.#needed);
    const bytes = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks, this.#length);
    this.#chunks = [bytes];
    const result = parseProxyHeader(bytes);
    if (result.status === 'more') this.#needed = result.needed;
    else this.#finished = true;
    return result;
  }
}
