/**
 * The PROXY protocol header as a value: what versions 1 (text) and 2 (binary) carry,
 * and what a parser answers. The wire formats are in v1.ts and v2.ts; parse.ts tells
 * them apart. The specification is haproxy's doc/proxy-protocol.txt.
 */

/** ProxyCommand: `PROXY` (relayed on behalf of a client) or `LOCAL` (v2 only: the sender's own connection, a health check). */
export type ProxyCommand = 'PROXY' | 'LOCAL';

/** ProxyFamily is the address family: v1's TCP4 / TCP6 / UNKNOWN, v2's INET / INET6 / UNIX / UNSPEC. */
export type ProxyFamily = 'IPv4' | 'IPv6' | 'unix' | 'unspec';

/** ProxyTransport: v2's STREAM (TCP), DGRAM (UDP) or UNSPEC; v1's TCP4/TCP6 are `stream`, UNKNOWN `unspec`. */
export type ProxyTransport = 'stream' | 'dgram' | 'unspec';

/**
 * ProxyEndpoint is one end of the proxied connection: an IP address in canonical form
 * (`192.0.2.7`, `2001:db8::1`) and a port, or for family `unix` a socket path and port 0.
 */
export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** ProxyTlv is one v2 Type-Length-Value vector, as received (`value` is a copy). */
export interface ProxyTlv {
  readonly type: number;
  readonly value: Uint8Array;
}

/** PP2_TYPE: the TLV types the specification registers. */
export const PP2_TYPE = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;

/** ProxyHeaderFields is what a header says, whichever version carries it. */
export interface ProxyHeaderFields {
  readonly command: ProxyCommand;
  readonly family: ProxyFamily;
  readonly transport: ProxyTransport;
  /** source is the client (null for `unspec`, and for a LOCAL header the receiver ignores it). */
  readonly source: ProxyEndpoint | null;
  /** destination is the address the client connected to (null for `unspec`). */
  readonly destination: ProxyEndpoint | null;
  /** tlvs: v2's extensions, in order (always empty for v1). */
  readonly tlvs: readonly ProxyTlv[];
}

/** ProxyHeader is a parsed header. */
export interface ProxyHeader extends ProxyHeaderFields {
  readonly version: 1 | 2;
}

/**
 * ProxyHeaderResult is a parser's answer on the bytes read so far:
 * - `more`: no answer yet; nothing can change before `needed` bytes in all have arrived;
 * - `done`: a complete header of `length` bytes; `rest` is every byte read after it;
 * - `error`: not a valid header; `message` is one line naming what is wrong
 *   (`PROXY v1 header: bad source port "99999"`). An error is a value, not a thrown
 *   Error: a stream of junk clients costs no stack traces.
 */
export type ProxyHeaderResult =
  | { readonly status: 'more'; readonly needed: number }
  | {
      readonly status: 'done';
      readonly header: ProxyHeader;
      readonly length: number;
      readonly rest: Buffer;
    }
  | { readonly status: 'error'; readonly message: string };

/** more is the answer "read more": nothing changes before `needed` bytes in all. */
export function more(needed: number): ProxyHeaderResult {
  return { status: 'more', needed };
}

/** failed is an error answer; `where` is `PROXY v1 header`, `PROXY v2 header` or `PROXY header`. */
export function failed(where: string, what: string): ProxyHeaderResult {
  return { status: 'error', message: `${where}: ${what}` };
}

/**
 * quote shows received bytes in an error message: as a JSON string (so control bytes
 * are escaped and the message stays one line), cut after `max` bytes.
 */
export function quote(bytes: Uint8Array | string, max = 48): string {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('latin1');
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
