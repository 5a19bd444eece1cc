/**
 * PROXY protocol version 1: one line of US-ASCII text,
 *
 *     PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n
 *     PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n
 *     PROXY UNKNOWN\r\n                  (anything may follow UNKNOWN before the CRLF)
 *
 * at most 107 bytes with its CRLF. Fields are separated by exactly one space;
 * numbers have no leading zeros. A receiver waits for the CRLF before it decodes the
 * addresses, and refuses a line without one in its first 107 bytes, a lone CR or LF,
 * and anything that does not match exactly.
 */
import { formatIp, type IpAddress, parseIpv4, parseIpv6 } from '../ip-address.js';
import {
  failed,
  more,
  type ProxyEndpoint,
  type ProxyHeaderFields,
  type ProxyHeaderResult,
  quote,
} from './header.js';

/** V1_MAX_LENGTH: the longest v1 header, CRLF included (the specification's worst case). */
export const V1_MAX_LENGTH = 107;

/** V1_PREFIX: the bytes every v1 header starts with. */
export const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

const WHERE = 'PROXY v1 header';
const CR = 0x0d;
const LF = 0x0a;
const PORT = /^(0|[1-9]\d{0,4})$/;

/**
 * parseV1 reads a v1 header from the start of `bytes`, which begin with "PROXY "
 * (parse.ts checked). A byte that cannot be in the line fails at once; otherwise the
 * line is decoded when its CRLF arrives.
 */
export function parseV1(bytes: Buffer): ProxyHeaderResult {
  const limit = Math.min(bytes.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const byte = bytes[i] as number;
    if (byte === CR || byte === LF) {
      end = i;
      break;
    }
    if (byte < 0x20 || byte > 0x7e) {
      return failed(WHERE, `byte 0x${hex(byte)} at offset ${i} is not printable US-ASCII`);
    }
  }
  if (end < 0) {
    if (bytes.length >= V1_MAX_LENGTH) {
      return failed(WHERE, `no CRLF in the first ${V1_MAX_LENGTH} bytes`);
    }
    return more(bytes.length + 1);
  }
  if (bytes[end] === LF) return failed(WHERE, `line ends with a bare LF at offset ${end}`);
  if (end + 2 > V1_MAX_LENGTH) {
    return failed(WHERE, `no CRLF in the first ${V1_MAX_LENGTH} bytes`);
  }
  if (end + 1 >= bytes.length) return more(end + 2);
  if (bytes[end + 1] !== LF) return failed(WHERE, `CR at offset ${end} is not followed by LF`);
  const fields = decodeLine(bytes.toString('latin1', 0, end));
  if (typeof fields === 'string') return failed(WHERE, fields);
  const length = end + 2;
  return {
    status: 'done',
    header: { version: 1, ...fields },
    length,
    rest: bytes.subarray(length),
  };
}

const UNKNOWN: ProxyHeaderFields = Object.freeze({
  command: 'PROXY',
  family: 'unspec',
  transport: 'unspec',
  source: null,
  destination: null,
  tlvs: Object.freeze([]),
});

/** decodeLine decodes the line without its CRLF: the fields, or what is wrong with it. */
function decodeLine(line: string): ProxyHeaderFields | string {
  const parts = line.split(' ');
  const protocol = parts[1] ?? '';
  if (protocol === 'UNKNOWN') return UNKNOWN; // the rest of the line is to be ignored
  if (protocol !== 'TCP4' && protocol !== 'TCP6') {
    return `unknown protocol ${quote(protocol)} (expected TCP4, TCP6 or UNKNOWN)`;
  }
  if (parts.length !== 6) {
    return `expected "PROXY ${protocol} SOURCE DESTINATION SOURCE_PORT DESTINATION_PORT" with single spaces, got ${quote(line)}`;
  }
  const [, , sourceText = '', destinationText = '', sourcePort = '', destinationPort = ''] = parts;
  const parseAddress = protocol === 'TCP4' ? parseIpv4 : parseIpv6;
  const source = parseAddress(sourceText);
  if (source === undefined) return `bad source address ${quote(sourceText)} for ${protocol}`;
  const destination = parseAddress(destinationText);
  if (destination === undefined) {
    return `bad destination address ${quote(destinationText)} for ${protocol}`;
  }
  const sourcePortNumber = parsePort(sourcePort);
  if (sourcePortNumber === undefined) return `bad source port ${quote(sourcePort)}`;
  const destinationPortNumber = parsePort(destinationPort);
  if (destinationPortNumber === undefined) {
    return `bad destination port ${quote(destinationPort)}`;
  }
  return {
    command: 'PROXY',
    family: protocol === 'TCP4' ? 'IPv4' : 'IPv6',
    transport: 'stream',
    source: { address: formatIp(source), port: sourcePortNumber },
    destination: { address: formatIp(destination), port: destinationPortNumber },
    tlvs: [],
  };
}

function parsePort(text: string): number | undefined {
  if (!PORT.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/**
 * encodeV1 writes the v1 header of `fields`: `TCP4` or `TCP6` for an IPv4 or IPv6
 * family with both endpoints, `UNKNOWN` for anything else (a LOCAL command, a Unix
 * socket, a missing endpoint); the command and TLVs have no v1 form. Addresses are
 * written in canonical form. Throws a TypeError for an address that is not of its family.
 */
export function encodeV1(fields: ProxyHeaderFields): Buffer {
  const { source, destination } = fields;
  const family = fields.command === 'PROXY' ? fields.family : 'unspec';
  if ((family !== 'IPv4' && family !== 'IPv6') || source === null || destination === null) {
    return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  }
  const parse = family === 'IPv4' ? parseIpv4 : parseIpv6;
  const src = endpointIp(source, parse, family);
  const dst = endpointIp(destination, parse, family);
  const protocol = family === 'IPv4' ? 'TCP4' : 'TCP6';
  const line = `PROXY ${protocol} ${formatIp(src)} ${formatIp(dst)} ${source.port} ${destination.port}\r\n`;
  return Buffer.from(line, 'latin1');
}

function endpointIp(
  endpoint: ProxyEndpoint,
  parse: (text: string) => IpAddress | undefined,
  family: string,
): IpAddress {
  const ip = parse(endpoint.address);
  if (ip === undefined) {
    throw new TypeError(
      `PROXY v1 header: ${JSON.stringify(endpoint.address)} is not an ${family} address`,
    );
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 65535) {
    throw new TypeError(`PROXY v1 header: port ${endpoint.port} is not 0 to 65535`);
  }
  return ip;
}
