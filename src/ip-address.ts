/**
 * IP addresses as bytes: parsing the text forms strictly, writing them back in the
 * one canonical form (RFC 5952 for IPv6), and seeing an IPv4-mapped IPv6 address
 * (`::ffff:192.0.2.7`) as the IPv4 address it carries.
 *
 * Pure and small on purpose: the PROXY protocol (src/proxy-protocol/) and access
 * control (src/access/) both read addresses, neither imports `node:net`, and both
 * must reject what the other would (a v1 header's `010.0.0.1`, a CIDR's `1.2.3`).
 */

/** IpAddress is an IPv4 (4 bytes) or IPv6 (16 bytes) address, in network order. */
export interface IpAddress {
  readonly family: 4 | 6;
  /** bytes: 4 or 16 of them; never changed after parsing. */
  readonly bytes: Uint8Array;
}

const DECIMAL_OCTET = /^(0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * parseIpv4 reads `a.b.c.d`: exactly four decimal numbers 0 to 255, without leading
 * zeros (which some parsers read as octal). Undefined for anything else.
 */
export function parseIpv4(text: string): IpAddress | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return { family: 4, bytes };
}

/**
 * parseIpv6 reads an IPv6 address: groups of 1 to 4 hex digits, at most one `::`, and
 * optionally a dotted IPv4 address in place of the last two groups. No zone (`%eth0`),
 * no brackets. Undefined for anything else.
 */
export function parseIpv6(text: string): IpAddress | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = groupsOf(halves[0] as string, halves.length === 1);
  const tail = halves.length === 2 ? groupsOf(halves[1] as string, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const bytes = new Uint8Array(16);
  for (const [i, group] of head.entries()) writeGroup(bytes, i, group);
  for (const [i, group] of tail.entries()) writeGroup(bytes, 8 - tail.length + i, group);
  return { family: 6, bytes };
}

/** groupsOf reads one side of `::` into 16-bit groups; an IPv4 tail (if allowed) counts as two. */
function groupsOf(text: string, ipv4TailAllowed: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (i === parts.length - 1 && ipv4TailAllowed && part.includes('.')) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      const [a = 0, b = 0, c = 0, d = 0] = v4.bytes;
      groups.push((a << 8) | b, (c << 8) | d);
    } else {
      if (!HEX_GROUP.test(part)) return undefined;
      groups.push(Number.parseInt(part, 16));
    }
  }
  return groups;
}

function writeGroup(bytes: Uint8Array, index: number, group: number): void {
  bytes[index * 2] = group >> 8;
  bytes[index * 2 + 1] = group & 0xff;
}

/** parseIp reads an IPv4 or IPv6 address (see parseIpv4, parseIpv6). Undefined for anything else. */
export function parseIp(text: string): IpAddress | undefined {
  return text.includes(':') ? parseIpv6(text) : parseIpv4(text);
}

/** ipFromBytes wraps 4 or 16 bytes (copied) as an address. */
export function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  }
  return { family: bytes.length === 4 ? 4 : 6, bytes: Uint8Array.from(bytes) };
}

/** isIpv4Mapped: an IPv6 address in `::ffff:0:0/96`, which carries an IPv4 address. */
export function isIpv4Mapped(ip: IpAddress): boolean {
  if (ip.family !== 6) return false;
  const b = ip.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** unmapIp gives the IPv4 address an IPv4-mapped IPv6 address carries; any other address as it is. */
export function unmapIp(ip: IpAddress): IpAddress {
  return isIpv4Mapped(ip) ? { family: 4, bytes: ip.bytes.slice(12) } : ip;
}

/** mapIpv4 gives the IPv4-mapped IPv6 form (`::ffff:a.b.c.d`) of an IPv4 address; IPv6 as it is. */
export function mapIpv4(ip: IpAddress): IpAddress {
  if (ip.family === 6) return ip;
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(ip.bytes, 12);
  return { family: 6, bytes };
}

/**
 * formatIp writes an address in its canonical form: dotted decimal for IPv4; for IPv6
 * RFC 5952 (lower case, no leading zeros, the longest run of two or more zero groups
 * as `::`, the first on a tie) with an IPv4-mapped address as `::ffff:a.b.c.d`.
 */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (isIpv4Mapped(ip)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((b[i * 2] ?? 0) << 8) | (b[i * 2 + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}
