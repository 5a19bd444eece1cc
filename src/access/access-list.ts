/**
 * The allow and deny lists of `--allow` and `--deny`. Deny wins: an address in any
 * denied range is refused. With at least one allowed range, an address outside every
 * allowed range is refused too; with none, every address not denied is allowed.
 *
 * A short list is walked in order, a few byte comparisons per range; from
 * TRIE_THRESHOLD ranges on, a check walks a prefix trie of them instead (range-trie.ts,
 * at most 32 or 128 steps however long the list: 1000 ranges cost about 12 µs a
 * check walked in order, docs/performance.md). Both find the first range in list
 * order, which the refusal's reason names.
 */
import { type IpAddress, unmapIp } from '../ip-address.js';
import { type Cidr, cidrContains } from './cidr.js';
import { RangeTrie } from './range-trie.js';

/** TRIE_THRESHOLD: a list of this many ranges or more is checked through a RangeTrie. */
export const TRIE_THRESHOLD = 16;

/** firstMatch: the position of the first range of `ranges` containing `ip` (through `trie` if any), or -1. */
function firstMatch(ranges: readonly Cidr[], trie: RangeTrie | null, ip: IpAddress): number {
  if (trie !== null) return trie.firstContaining(ip);
  for (let i = 0; i < ranges.length; i++) if (cidrContains(ranges[i] as Cidr, ip)) return i;
  return -1;
}

/** AccessDecision is what the lists say about one address; `reason` says why it is refused. */
export type AccessDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: string };

const ALLOWED: AccessDecision = Object.freeze({ allowed: true });

/** AccessList holds a listener's allowed and denied ranges; immutable. */
export class AccessList {
  readonly allow: readonly Cidr[];
  readonly deny: readonly Cidr[];
  readonly #allowTrie: RangeTrie | null;
  readonly #denyTrie: RangeTrie | null;

  constructor(allow: readonly Cidr[], deny: readonly Cidr[]) {
    this.allow = Object.freeze([...allow]);
    this.deny = Object.freeze([...deny]);
    this.#allowTrie = allow.length >= TRIE_THRESHOLD ? new RangeTrie(allow) : null;
    this.#denyTrie = deny.length >= TRIE_THRESHOLD ? new RangeTrie(deny) : null;
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
    const denied = firstMatch(this.deny, this.#denyTrie, ip);
    if (denied >= 0) {
      return { allowed: false, reason: `in denied range ${(this.deny[denied] as Cidr).text}` };
    }
    if (this.allow.length === 0) return ALLOWED;
    if (firstMatch(this.allow, this.#allowTrie, ip) >= 0) return ALLOWED;
    return { allowed: false, reason: 'outside every allowed range' };
  }
}
