/**
 * The TLS ClientHello, read from the first bytes of a raw TCP stream (RFC 8446 §4.1.2,
 * §5.1; RFC 6066 §3 server_name; RFC 7301 ALPN), for routing by SNI without
 * decrypting.
 *
 * How: `parseClientHello(bytes)` takes everything the client sent so far and answers
 * `incomplete` (read more), `complete` (the server name and ALPN list) or `invalid` (one
 * line naming what is wrong). It walks the records left to right and decides only on
 * bytes it has, so the answer for a prefix is `incomplete` or the same as for any
 * longer input: any chunking gives the same result. The ClientHello may be split over
 * several handshake records (each up to 2^14 bytes) and any number of TCP reads.
 *
 * Only the first `limit` bytes (default 16 KiB, the proxy's early-bytes bound) are
 * looked at: a ClientHello that does not end within them is `invalid`, so a client
 * cannot make the proxy hold more. Nothing is consumed or changed: the caller relays
 * every byte as it came.
 *
 * It never throws: every read is checked against what is there, and no input
 * allocates more than the limit.
 */

/** CLIENT_HELLO_LIMIT: the bytes read for a ClientHello by default (the early-bytes bound of handshake.ts). */
export const CLIENT_HELLO_LIMIT = 16 * 1024;

/** ClientHello is what routing needs of a client's first TLS message. */
export interface ClientHello {
  /** serverName is the SNI host name, lower-cased, without a trailing dot; null when the client sent none. */
  readonly serverName: string | null;
  /** alpn lists the client's ALPN protocols in its order (`h2`, `http/1.1`); empty when it sent none. */
  readonly alpn: readonly string[];
  /** length: the bytes of the records that carried the ClientHello, headers included. */
  readonly length: number;
}

/** ClientHelloParse is parseClientHello's answer. */
export type ClientHelloParse =
  | { readonly state: 'incomplete' }
  | { readonly state: 'complete'; readonly hello: ClientHello }
  | { readonly state: 'invalid'; readonly error: string };

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
/** RFC 8446 §5.1: a record's fragment is at most 2^14 bytes. */
const MAX_FRAGMENT = 16384;
const CONTENT_HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST = 0;

const INCOMPLETE: ClientHelloParse = Object.freeze({ state: 'incomplete' });

function invalid(error: string): ClientHelloParse {
  return { state: 'invalid', error: `ClientHello: ${error}` };
}

function hex(n: number, digits: number): string {
  return `0x${n.toString(16).padStart(digits, '0')}`;
}

/**
 * parseClientHello reads the ClientHello at the start of `bytes` (everything the
 * client sent so far); see the module comment. Pure; never throws.
 */
export function parseClientHello(
  bytes: Uint8Array,
  limit: number = CLIENT_HELLO_LIMIT,
): ClientHelloParse {
  const input = bytes.length > limit ? bytes.subarray(0, limit) : bytes;
  const fragments: Uint8Array[] = [];
  let have = 0; // handshake bytes gathered from the records so far
  let need = -1; // the whole handshake message (header included), once its header is known
  let offset = 0;
  for (let record = 0; ; record++) {
    const header = checkRecordHeader(input, offset, record);
    if (header !== null) return header === INCOMPLETE ? incomplete(input, limit) : header;
    const length = ((input[offset + 3] as number) << 8) | (input[offset + 4] as number);
    const start = offset + RECORD_HEADER;
    const fragment = input.subarray(start, Math.min(start + length, input.length));
    fragments.push(fragment);
    have += fragment.length;
    if (need < 0 && have >= 1) {
      const type = first(fragments, 0);
      if (type !== CLIENT_HELLO)
        return invalid(`the first handshake message is type ${type}, not a ClientHello (1)`);
    }
    if (need < 0 && have >= HANDSHAKE_HEADER) {
      const bodyLength =
        (first(fragments, 1) << 16) | (first(fragments, 2) << 8) | first(fragments, 3);
      need = HANDSHAKE_HEADER + bodyLength;
      if (RECORD_HEADER + need > limit)
        return invalid(
          `a ClientHello of ${bodyLength} bytes is larger than the ${limit} bytes read`,
        );
    }
    if (need >= 0 && have >= need) {
      const message = join(fragments, have).subarray(HANDSHAKE_HEADER, need);
      const used = start + fragment.length - (have - need);
      return parseBody(message, used);
    }
    if (fragment.length < length) return incomplete(input, limit);
    offset = start + length;
  }
}

/** incomplete: more bytes are needed, unless the limit was reached without a whole ClientHello. */
function incomplete(input: Uint8Array, limit: number): ClientHelloParse {
  if (input.length < limit) return INCOMPLETE;
  return invalid(`no complete ClientHello in the first ${limit} bytes`);
}

/** checkRecordHeader checks the header of record number `record` at `offset`: null when good. */
function checkRecordHeader(
  input: Uint8Array,
  offset: number,
  record: number,
): ClientHelloParse | null {
  const type = input[offset];
  if (type === undefined) return INCOMPLETE;
  if (type !== CONTENT_HANDSHAKE) {
    if (record > 0)
      return invalid(`record ${record + 1} has content type ${type} before the ClientHello ended`);
    return invalid(`not a TLS handshake record (first byte ${hex(type, 2)}${printable(type)})`);
  }
  const major = input[offset + 1];
  if (major === undefined) return INCOMPLETE;
  if (major !== 3)
    return invalid(`not a TLS handshake record (record version major byte ${hex(major, 2)})`);
  const high = input[offset + 3];
  const low = input[offset + 4];
  if (high === undefined || low === undefined) return INCOMPLETE;
  const length = (high << 8) | low;
  if (length === 0) return invalid(`record ${record + 1} is empty`);
  if (length > MAX_FRAGMENT)
    return invalid(
      `record ${record + 1} says ${length} bytes, more than the ${MAX_FRAGMENT} allowed`,
    );
  return null;
}

function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? ` '${String.fromCharCode(byte)}'` : '';
}

/** first reads byte `i` of the fragments as one stream (i is within what they hold). */
function first(fragments: readonly Uint8Array[], i: number): number {
  let at = i;
  for (const fragment of fragments) {
    if (at < fragment.length) return fragment[at] as number;
    at -= fragment.length;
  }
  return 0;
}

function join(fragments: readonly Uint8Array[], length: number): Uint8Array {
  if (fragments.length === 1) return fragments[0] as Uint8Array;
  const out = new Uint8Array(length);
  let at = 0;
  for (const fragment of fragments) {
    out.set(fragment, at);
    at += fragment.length;
  }
  return out;
}

/**
 * Cursor reads big-endian numbers and length-prefixed vectors from a message. Each
 * read returns -1 (or null) instead of reading past `end`; the caller names the field.
 */
class Cursor {
  pos: number;
  readonly #bytes: Uint8Array;
  readonly #end: number;

  constructor(bytes: Uint8Array, pos = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.pos = pos;
    this.#end = end;
  }

  get left(): number {
    return this.#end - this.pos;
  }

  uint(size: 1 | 2): number {
    if (this.left < size) return -1;
    const b = this.#bytes;
    const value =
      size === 1
        ? (b[this.pos] as number)
        : ((b[this.pos] as number) << 8) | (b[this.pos + 1] as number);
    this.pos += size;
    return value;
  }

  /** take returns the next `n` bytes as a Cursor over them, or null if fewer are left. */
  take(n: number): Cursor | null {
    if (n < 0 || n > this.left) return null;
    const inner = new Cursor(this.#bytes, this.pos, this.pos + n);
    this.pos += n;
    return inner;
  }

  /** vector reads a `size`-byte length and that many bytes, as a Cursor over them; null if short. */
  vector(size: 1 | 2): Cursor | null {
    const length = this.uint(size);
    return length < 0 ? null : this.take(length);
  }

  text(): string {
    let out = '';
    for (let i = this.pos; i < this.#end; i++) out += String.fromCharCode(this.#bytes[i] as number);
    return out;
  }
}

/** parseBody reads the ClientHello's body (RFC 8446 §4.1.2) once all of it is there. */
function parseBody(body: Uint8Array, length: number): ClientHelloParse {
  const c = new Cursor(body);
  const version = c.uint(2);
  if (version < 0) return invalid('truncated before its version');
  if (version >> 8 !== 3) return invalid(`client version ${hex(version, 4)} is not TLS`);
  if (c.left < 32) return invalid('truncated in its random');
  c.pos += 32;
  const session = c.vector(1);
  if (session === null) return invalid('truncated session id');
  if (session.left > 32) return invalid(`session id of ${session.left} bytes (at most 32)`);
  const suites = c.vector(2);
  if (suites === null) return invalid('truncated cipher suites');
  if (suites.left < 2 || suites.left % 2 !== 0)
    return invalid(`cipher suites of ${suites.left} bytes (an even number, at least 2)`);
  const compression = c.vector(1);
  if (compression === null) return invalid('truncated compression methods');
  if (compression.left < 1) return invalid('no compression methods');
  // Before TLS 1.3 a ClientHello may end here, without extensions (so without SNI).
  if (c.left === 0) return { state: 'complete', hello: { serverName: null, alpn: [], length } };
  const extensions = c.vector(2);
  if (extensions === null) return invalid('truncated extensions (bad length)');
  if (c.left !== 0) return invalid(`${c.left} bytes after the extensions`);
  return parseExtensions(extensions, length);
}

const EXTENSION_NAMES: Readonly<Record<number, string>> = {
  [EXT_SERVER_NAME]: 'server_name',
  [EXT_ALPN]: 'application_layer_protocol_negotiation',
};

function extensionName(type: number): string {
  const name = EXTENSION_NAMES[type];
  return name === undefined ? `extension ${hex(type, 4)}` : `extension ${name}`;
}

function parseExtensions(list: Cursor, length: number): ClientHelloParse {
  const seen = new Set<number>();
  let serverName: string | null = null;
  let alpn: readonly string[] = [];
  while (list.left > 0) {
    const type = list.uint(2);
    const size = list.uint(2);
    if (size < 0) return invalid('truncated extension header');
    const data = list.take(size);
    if (data === null)
      return invalid(`truncated ${extensionName(type)}: says ${size} bytes, ${list.left} left`);
    if (seen.has(type)) return invalid(`${extensionName(type)} appears twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = readServerName(data);
      if (name.error !== undefined) return invalid(`server_name: ${name.error}`);
      serverName = name.value;
    } else if (type === EXT_ALPN) {
      const protocols = readAlpn(data);
      if (protocols.error !== undefined) return invalid(`ALPN: ${protocols.error}`);
      alpn = protocols.value;
    }
  }
  return { state: 'complete', hello: { serverName, alpn, length } };
}

type Read<T> = { readonly value: T; readonly error?: undefined } | { readonly error: string };

/** A host name as DNS allows it (letters, digits, hyphens, underscores; dots between labels). */
const HOST_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/**
 * readServerName reads a ServerNameList (RFC 6066 §3): the host_name entry, if any.
 * Other name types are skipped; two host names, or one that is no DNS name, are errors.
 */
function readServerName(data: Cursor): Read<string | null> {
  const list = data.vector(2);
  if (list === null || data.left !== 0) return { error: 'bad list length' };
  if (list.left === 0) return { error: 'empty list' };
  let name: string | null = null;
  while (list.left > 0) {
    const type = list.uint(1);
    const entry = list.vector(2);
    if (entry === null) return { error: 'truncated name' };
    if (type !== NAME_TYPE_HOST) continue;
    if (name !== null) return { error: 'two host names' };
    if (entry.left === 0 || entry.left > 255)
      return { error: `host name of ${entry.left} bytes (1 to 255)` };
    const text = entry.text().toLowerCase();
    const bare = text.endsWith('.') ? text.slice(0, -1) : text;
    if (!HOST_NAME.test(bare)) return { error: `${JSON.stringify(text)} is not a host name` };
    name = bare;
  }
  return { value: name };
}

/** readAlpn reads a ProtocolNameList (RFC 7301 §3.1): at least one name, each 1 to 255 bytes. */
function readAlpn(data: Cursor): Read<string[]> {
  const list = data.vector(2);
  if (list === null || data.left !== 0) return { error: 'bad list length' };
  if (list.left === 0) return { error: 'empty list' };
  const protocols: string[] = [];
  while (list.left > 0) {
    const name = list.vector(1);
    if (name === null) return { error: 'truncated protocol name' };
    if (name.left === 0) return { error: 'empty protocol name' };
    protocols.push(name.text());
  }
  return { value: protocols };
}
