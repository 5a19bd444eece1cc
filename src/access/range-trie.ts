/**
 * RangeTrie: which of a list of CIDR ranges is the first (in list order) to contain an
 * address, in one walk down a binary trie of the ranges' prefix bits, so a check costs
 * at most 32 (IPv4) or 128 (IPv6) steps however many ranges there are, instead of one
 * comparison per range.
 *
 * One trie per family. A range sits at the node its prefix leads to, which keeps the
 * smallest list position of the ranges that end there (a range listed twice counts
 * once). Walking an address's bits from the root passes exactly the nodes of the
 * ranges that contain it, so the smallest position seen on the way is the first
 * containing range, as a walk of the list in order would find. Same family only, as
 * cidrContains: callers unmap IPv4-mapped addresses first. Pure, immutable once built.
 */
import type { IpAddress } from '../ip-address.js';
import type { Cidr } from './cidr.js';

interface TrieNode {
  /** zero and one: the children for the next bit. */
  zero: TrieNode | null;
  one: TrieNode | null;
  /** first: the smallest list position of a range ending here; -1: none. */
  first: number;
}

function newNode(): TrieNode {
  return { zero: null, one: null, first: -1 };
}

/** RangeTrie finds the first range of a list that contains an address. */
export class RangeTrie {
  readonly #v4: TrieNode = newNode();
  readonly #v6: TrieNode = newNode();

  /** ranges are indexed by their position in this list. */
  constructor(ranges: readonly Cidr[]) {
    for (const [position, range] of ranges.entries()) this.#add(range, position);
  }

  #add(range: Cidr, position: number): void {
    let node = range.family === 4 ? this.#v4 : this.#v6;
    for (let bit = 0; bit < range.prefix; bit++) {
      const set = (((range.bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1) === 1;
      let next = set ? node.one : node.zero;
      if (next === null) {
        next = newNode();
        if (set) node.one = next;
        else node.zero = next;
      }
      node = next;
    }
    if (node.first < 0 || position < node.first) node.first = position;
  }

  /** firstContaining is the list position of the first range that contains `ip`, or -1. */
  firstContaining(ip: IpAddress): number {
    let node: TrieNode | null = ip.family === 4 ? this.#v4 : this.#v6;
    const bits = ip.bytes.length * 8;
    let first = -1;
    for (let bit = 0; node !== null; bit++) {
      if (node.first >= 0 && (first < 0 || node.first < first)) first = node.first;
      if (bit >= bits) break;
      const set = (((ip.bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1) === 1;
      node = set ? node.one : node.zero;
    }
    return first;
  }
}
