/**
 * PROXY protocol version 2: a binary header.
 *
 *     bytes 0-11   the signature \r\n\r\n\0\r\nQUIT\n
 *     byte  12     version (high nibble, 2) and command (low nibble: 0 LOCAL, 1 PROXY)
 *     byte  13     family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) and
 *                  transport (low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM)
 *     bytes 14-15  the length of what follows, big-endian (so at most 16 + 65535 bytes)
 *     then         the addresses (INET 4+4+2+2 bytes, INET6 16+16+2+2, UNIX 108+108,
 *                  UNSPEC none), then TLVs (type: 1 byte, length: 2, value) to the end
 *
 * A LOCAL header (a health check of the sender's own) must be accepted whatever its
 * address block holds: the receiver uses the real connection's addresses. A PP2_TYPE_CRC32C
 * TLV, when present, is checked.
 */
import { formatIp, ipFromBytes, mapIpv4, parseIp, unmapIp } from '../ip-address.js';
import { crc32c } from './crc32c.js';
import {
  failed,
  more,
  PP2_TYPE,
  type ProxyEndpoint,
  type ProxyFamily,
  type ProxyHeaderFields,
  type ProxyHeaderResult,
  type ProxyTlv,
  type ProxyTransport,
} from './header.js';

/** V2_SIGNATURE: the 12 bytes every v2 header starts with. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

/** V2_MAX_LENGTH: the longest v2 header, 16 fixed bytes and a 16-bit length. */
export const V2_MAX_LENGTH = 16 + 0xffff;

const WHERE = 'PROXY v2 header';
const FAMILIES: readonly ProxyFamily[] = ['unspec', 'IPv4', 'IPv6', 'unix'];
const TRANSPORTS: readonly ProxyTransport[] = ['unspec', 'stream', 'dgram'];
/** ADDRESS_BYTES: the size of the address block of each family, in FAMILIES order. */
const ADDRESS_BYTES: readonly number[] = [0, 12, 36, 216];
const UNIX_PATH_BYTES = 108;

/**
 * parseV2 reads a v2 header from the start of `bytes`, which begin with the signature
 * (parse.ts checked). The version, command and family bytes fail as soon as they arrive;
 * the rest is decoded once the whole header, as long as its length says, is there.
 */
export function parseV2(bytes: Buffer): ProxyHeaderResult {
  if (bytes.length > 12) {
    const version = (bytes[12] as number) >> 4;
    if (version !== 2) return failed(WHERE, `unsupported version ${version} (expected 2)`);
    const command = (bytes[12] as number) & 0x0f;
    if (command > 1) return failed(WHERE, `unknown command 0x${command.toString(16)}`);
  }
  if (bytes.length > 13) {
    const family = (bytes[13] as number) >> 4;
    const transport = (bytes[13] as number) & 0x0f;
    if (family >= FAMILIES.length) {
      return failed(WHERE, `unknown address family 0x${family.toString(16)}`);
    }
    if (transport >= TRANSPORTS.length) {
      return failed(WHERE, `unknown transport protocol 0x${transport.toString(16)}`);
    }
  }
  if (bytes.length < 16) return more(bytes.length + 1);
  const length = 16 + bytes.readUInt16BE(14);
  if (bytes.length < length) return more(length);
  const header = bytes.subarray(0, length);
  const local = ((bytes[12] as number) & 0x0f) === 0;
  let fields = decodeBody(header);
  if (typeof fields === 'string') {
    // A LOCAL header is valid whatever its address block holds: the receiver ignores it.
    if (!local) return failed(WHERE, fields);
    fields = { ...LOCAL_UNSPEC };
  }
  return {
    status: 'done',
    header: { version: 2, ...fields, command: local ? 'LOCAL' : 'PROXY' },
    length,
    rest: bytes.subarray(length),
  };
}

const LOCAL_UNSPEC: ProxyHeaderFields = Object.freeze({
  command: 'LOCAL',
  family: 'unspec',
  transport: 'unspec',
  source: null,
  destination: null,
  tlvs: Object.freeze([]),
});

/** decodeBody decodes the addresses and TLVs of a whole header; a string says what is wrong. */
function decodeBody(header: Buffer): ProxyHeaderFields | string {
  const familyIndex = (header[13] as number) >> 4;
  const family = FAMILIES[familyIndex] as ProxyFamily;
  const transport = TRANSPORTS[(header[13] as number) & 0x0f] as ProxyTransport;
  const addressBytes = ADDRESS_BYTES[familyIndex] as number;
  const bodyLength = header.length - 16;
  if (bodyLength < addressBytes) {
    return `length ${bodyLength} is too short for ${family} addresses (${addressBytes} bytes)`;
  }
  const block = header.subarray(16, 16 + addressBytes);
  const [source, destination] = decodeAddresses(family, block);
  const tlvs = decodeTlvs(header, 16 + addressBytes);
  if (typeof tlvs === 'string') return tlvs;
  return { command: 'PROXY', family, transport, source, destination, tlvs };
}

function decodeAddresses(
  family: ProxyFamily,
  block: Buffer,
): [ProxyEndpoint | null, ProxyEndpoint | null] {
  switch (family) {
    case 'IPv4':
    case 'IPv6': {
      const size = family === 'IPv4' ? 4 : 16;
      const ports = size * 2;
      return [
        {
          address: formatIp(ipFromBytes(block.subarray(0, size))),
          port: block.readUInt16BE(ports),
        },
        {
          address: formatIp(ipFromBytes(block.subarray(size, ports))),
          port: block.readUInt16BE(ports + 2),
        },
      ];
    }
    case 'unix':
      return [
        { address: unixPath(block.subarray(0, UNIX_PATH_BYTES)), port: 0 },
        { address: unixPath(block.subarray(UNIX_PATH_BYTES)), port: 0 },
      ];
    default:
      return [null, null];
  }
}

/** unixPath: the path up to its first NUL (so the name of an abstract socket, after a NUL, is lost). */
function unixPath(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end < 0 ? bytes.length : end);
}

function decodeTlvs(header: Buffer, start: number): ProxyTlv[] | string {
  const tlvs: ProxyTlv[] = [];
  let offset = start;
  while (offset < header.length) {
    if (header.length - offset < 3) {
      return `TLV at offset ${offset} is cut short: ${header.length - offset} bytes left, a TLV needs 3`;
    }
    const type = header[offset] as number;
    const size = header.readUInt16BE(offset + 1);
    const valueStart = offset + 3;
    if (valueStart + size > header.length) {
      return `TLV 0x${hex(type)} at offset ${offset} claims ${size} bytes, only ${header.length - valueStart} are left`;
    }
    if (type === PP2_TYPE.CRC32C) {
      const wrong = checkCrc32c(header, valueStart, size);
      if (wrong !== undefined) return wrong;
    }
    tlvs.push({ type, value: Uint8Array.from(header.subarray(valueStart, valueStart + size)) });
    offset = valueStart + size;
  }
  return tlvs;
}

/** checkCrc32c: the checksum of the header with the checksum's own 4 bytes as zeros must match them. */
function checkCrc32c(header: Buffer, at: number, size: number): string | undefined {
  if (size !== 4) return `CRC32C TLV has ${size} bytes, expected 4`;
  const copy = Buffer.from(header);
  const received = copy.readUInt32BE(at);
  copy.writeUInt32BE(0, at);
  const computed = crc32c(copy);
  if (computed === received) return undefined;
  return `CRC32C checksum 0x${received.toString(16)} does not match the header (0x${computed.toString(16)})`;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/** EncodeV2Options: what encodeV2 adds beyond the fields. */
export interface EncodeV2Options {
  /** crc32c appends a PP2_TYPE_CRC32C TLV with the header's checksum (default false). */
  readonly crc32c?: boolean;
}

/**
 * encodeV2 writes the v2 header of `fields`, exactly: its command, family and
 * transport, the endpoints in the family's layout, then the TLVs in order. An `unspec`
 * family writes no addresses. Throws a TypeError when an endpoint does not fit its
 * family (or is missing) or the header would be longer than V2_MAX_LENGTH.
 */
export function encodeV2(fields: ProxyHeaderFields, options: EncodeV2Options = {}): Buffer {
  const familyIndex = FAMILIES.indexOf(fields.family);
  const addressBytes = ADDRESS_BYTES[familyIndex] as number;
  const tlvs = options.crc32c
    ? [...fields.tlvs, { type: PP2_TYPE.CRC32C, value: new Uint8Array(4) }]
    : fields.tlvs;
  let length = 16 + addressBytes;
  for (const tlv of tlvs) length += 3 + tlv.value.length;
  if (length > V2_MAX_LENGTH) {
    throw new TypeError(`PROXY v2 header: ${length} bytes is over the limit of ${V2_MAX_LENGTH}`);
  }
  const out = Buffer.alloc(length);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20 | (fields.command === 'LOCAL' ? 0 : 1);
  out[13] = (familyIndex << 4) | TRANSPORTS.indexOf(fields.transport);
  out.writeUInt16BE(length - 16, 14);
  if (fields.family !== 'unspec') encodeAddresses(fields, out.subarray(16, 16 + addressBytes));
  let offset = 16 + addressBytes;
  for (const tlv of tlvs) {
    if (tlv.value.length > 0xffff)
      throw new TypeError('PROXY v2 header: a TLV value is over 65535 bytes');
    out[offset] = tlv.type;
    out.writeUInt16BE(tlv.value.length, offset + 1);
    out.set(tlv.value, offset + 3);
    offset += 3 + tlv.value.length;
  }
  if (options.crc32c) out.writeUInt32BE(crc32c(out), length - 4);
  return out;
}

function encodeAddresses(fields: ProxyHeaderFields, block: Buffer): void {
  const { source, destination, family } = fields;
  if (source === null || destination === null) {
    throw new TypeError(`PROXY v2 header: family ${family} needs a source and a destination`);
  }
  if (family === 'unix') {
    writeUnixPath(block, 0, source.address);
    writeUnixPath(block, UNIX_PATH_BYTES, destination.address);
    return;
  }
  const size = family === 'IPv4' ? 4 : 16;
  block.set(ipBytes(source, family), 0);
  block.set(ipBytes(destination, family), size);
  block.writeUInt16BE(checkPort(source.port), size * 2);
  block.writeUInt16BE(checkPort(destination.port), size * 2 + 2);
}

function ipBytes(endpoint: ProxyEndpoint, family: ProxyFamily): Uint8Array {
  const ip = parseIp(endpoint.address);
  if (ip !== undefined) {
    if (family === 'IPv6') return mapIpv4(ip).bytes;
    const v4 = unmapIp(ip);
    if (v4.family === 4) return v4.bytes;
  }
  throw new TypeError(
    `PROXY v2 header: ${JSON.stringify(endpoint.address)} is not an ${family} address`,
  );
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`PROXY v2 header: port ${port} is not 0 to 65535`);
  }
  return port;
}

function writeUnixPath(block: Buffer, at: number, path: string): void {
  const bytes = Buffer.from(path, 'utf8');
  if (bytes.length > UNIX_PATH_BYTES) {
    throw new TypeError(`PROXY v2 header: Unix socket path is over ${UNIX_PATH_BYTES} bytes`);
  }
  bytes.copy(block, at);
}
