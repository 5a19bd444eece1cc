/**
 * The allow and deny lists of `--allow` and `--deny`. Deny wins: an address in any
 * denied range is refused. With at least one allowed range, an address outside every
 * allowed range is refused too; with none, every address not denied is allowed.
 *
 * A check walks the ranges in order, a few byte comparisons each: lists are a handful
 * of ranges long. (Thousands of ranges would want a prefix trie instead.)
 */
import { type IpAddress, unmapIp } from '../ip-address.js';
import { type Cidr, cidrContains } from './cidr.js';

/** AccessDecision is what the lists say about one address; `reason` says why it is refused. */
export type AccessDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: string };

const ALLOWED: AccessDecision = Object.freeze({ allowed: true });

/** AccessList holds a listener's allowed and denied ranges; immutable. */
export class AccessList {
  readonly allow: readonly Cidr[];
  readonly deny: readonly Cidr[];

  constructor(allow: readonly Cidr[], deny: readonly Cidr[]) {
    this.allow = Object.freeze([...allow]);
    this.deny = Object.freeze([...deny]);
  }

  /** empty: no range at all, so every address is allowed. */
  get empty(): boolean {
    return this.allow.length === 0 && this.deny.length === 0;
  }

  /**
   * check decides on a client address (an IPv4-mapped one counts as IPv4). An address
   * the caller could not read (`undefined`: a Unix socket client, a client gone before
   * its address was known) is allowed only when there is no allowed range.
   */
  check(address: IpAddress | undefined): AccessDecision {
    if (address === undefined) {
      return this.allow.length === 0
        ? ALLOWED
        : { allowed: false, reason: 'no IP address to match against the allowed ranges' };
    }
    const ip = unmapIp(address);
    for (const range of this.deny) {
      if (cidrContains(range, ip))
        return { allowed: false, reason: `in denied range ${range.text}` };
    }
    if (this.allow.length === 0) return ALLOWED;
    for (const range of this.allow) if (cidrContains(range, ip)) return ALLOWED;
    return { allowed: false, reason: 'outside every allowed range' };
  }
}
