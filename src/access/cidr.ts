/**
 * CIDR ranges as users write them for `--allow` and `--deny`: `10.0.0.0/8`,
 * `2001:db8::/32`, or a single address (`192.0.2.7`, `::1`), which is a /32 or /128.
 *
 * An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) is the IPv4 range it maps
 * (`10.0.0.0/8`), and an IPv4-mapped client address is matched as IPv4, so the two
 * spellings of one IPv4 client always meet the same rules.
 */
import { formatIp, type IpAddress, isIpv4Mapped, parseIp, unmapIp } from '../ip-address.js';

/** Cidr is a parsed range: the network's bytes (bits after the prefix are zero) and the prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** text is the range in canonical form, `10.0.0.0/8`, for messages and the admin API. */
  readonly text: string;
}

/** CidrError explains why a string is not a CIDR range; the caller adds where it came from (the flag, the file and line). */
export class CidrError extends Error {}

const PREFIX = /^(0|[1-9]\d{0,2})$/;

/**
 * parseCidr reads `ADDRESS` or `ADDRESS/PREFIX`. Throws CidrError, with one line naming
 * what is wrong, for a malformed address, a prefix out of range, or bits set after the
 * prefix (`10.1.0.0/8`: the message suggests `10.0.0.0/8`, since a typo there would
 * silently allow or deny far more than meant).
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(addressText);
  if (ip === undefined) {
    throw new CidrError(
      `expected an IP address or CIDR range like 10.0.0.0/8 or 2001:db8::/32, got ${JSON.stringify(text)}`,
    );
  }
  const bits = ip.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    prefix = PREFIX.test(prefixText) ? Number(prefixText) : -1;
    if (prefix < 0 || prefix > bits) {
      throw new CidrError(
        `the prefix length of ${JSON.stringify(text)} must be 0 to ${bits} for an IPv${ip.family} address`,
      );
    }
  }
  const network = maskBytes(ip.bytes, prefix);
  if (!sameBytes(network, ip.bytes)) {
    const suggestion = `${formatIp({ family: ip.family, bytes: network })}/${prefix}`;
    throw new CidrError(
      `${JSON.stringify(text)} has address bits set after the /${prefix} prefix; did you mean ${suggestion}?`,
    );
  }
  return makeCidr({ family: ip.family, bytes: network }, prefix);
}

/** makeCidr builds a range from its network and prefix; an IPv4-mapped range (prefix 96 or more) becomes IPv4. */
function makeCidr(network: IpAddress, prefix: number): Cidr {
  if (isIpv4Mapped(network) && prefix >= 96) return makeCidr(unmapIp(network), prefix - 96);
  return Object.freeze({
    family: network.family,
    bytes: network.bytes,
    prefix,
    text: `${formatIp(network)}/${prefix}`,
  });
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (out[i] as number) & ((0xff00 >> keep) & 0xff);
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * cidrContains tells whether `ip` is in the range. The address is taken as it is: an
 * IPv4-mapped address matches only IPv6 ranges unless unmapped first (`unmapIp`), as
 * AccessList does.
 */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== ip.family) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== ip.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return ((ip.bytes[whole] as number) & mask) === cidr.bytes[whole];
}
