/**
 * Who may connect to one listener: the allow and deny lists, the open connections per
 * address and the new connections per address and period (contract, "Who may
 * connect"). `admit` decides on a client address when it connects; `release` counts
 * an admitted connection off when it ends.
 *
 * One AccessControl lives as long as its listener: `update` (a reload) changes the
 * lists and limits without forgetting the connections that are open, so a lowered
 * `--max-connections-per-ip` applies to new clients at once and open ones are never
 * touched. Pure: no sockets, no timers; the clock is injectable.
 */
import { formatIp, parseIp, unmapIp } from '../ip-address.js';
import { AccessList } from './access-list.js';
import type { Cidr } from './cidr.js';
import { ConnectionCount } from './connection-count.js';
import { formatRate, type Rate, RateLimiter } from './rate-limit.js';

/** AccessOptions are a listener's rules; every one is optional, and absent means no rule. */
export interface AccessOptions {
  /** allow: with any range here, a client outside all of them is refused (`denied`). */
  readonly allow?: readonly Cidr[];
  /** deny: a client in any of these ranges is refused (`denied`), even if also allowed. */
  readonly deny?: readonly Cidr[];
  /** maxConnectionsPerIp: at most this many open connections per client address (0 or absent: no limit). */
  readonly maxConnectionsPerIp?: number;
  /** connectionRatePerIp: at most `count` new connections per `periodMs` per client address. */
  readonly connectionRatePerIp?: Rate;
}

/** AccessControlOptions: the clock and memory bound of the rate limiter, fixed for the AccessControl's life. */
export interface AccessControlOptions {
  /** now is the clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
  /** maxRateEntries bounds the rate limiter's table (RateLimiterOptions.maxEntries). */
  readonly maxRateEntries?: number;
}

/**
 * Admission is the answer of `admit`. An admitted client carries the `key` to pass to
 * `release` when its connection ends (null when nothing was counted, so nothing is
 * to be released).
 */
export type Admission =
  | { readonly allowed: true; readonly key: string | null }
  | { readonly allowed: false; readonly cause: 'denied' | 'rate_limited'; readonly reason: string };

const ADMITTED_UNCOUNTED: Admission = Object.freeze({ allowed: true, key: null });

/** AccessControl applies one listener's AccessOptions to its clients. */
export class AccessControl {
  #list = new AccessList([], []);
  #maxPerIp = 0;
  #open: ConnectionCount | null = null;
  #limiter: RateLimiter | null = null;
  readonly #options: AccessControlOptions;

  constructor(rules: AccessOptions = {}, options: AccessControlOptions = {}) {
    this.#options = options;
    this.update(rules);
  }

  /**
   * update replaces the rules (a reload). Open connections stay counted; the rate
   * limiter's buckets are kept when the rate is unchanged and start afresh otherwise.
   */
  update(rules: AccessOptions): void {
    this.#list = new AccessList(rules.allow ?? [], rules.deny ?? []);
    this.#maxPerIp = rules.maxConnectionsPerIp ?? 0;
    if (this.#maxPerIp > 0) {
      this.#open ??= new ConnectionCount(this.#maxPerIp);
      this.#open.max = this.#maxPerIp;
    }
    const rate = rules.connectionRatePerIp;
    const current = this.#limiter?.rate;
    if (rate === undefined) this.#limiter = null;
    else if (current?.count !== rate.count || current.periodMs !== rate.periodMs) {
      const { now, maxRateEntries } = this.#options;
      this.#limiter = new RateLimiter(rate, { now, maxEntries: maxRateEntries });
    }
  }

  /** active: there is a rule to apply (an AccessControl with none need not be consulted). */
  get active(): boolean {
    return !this.#list.empty || this.#maxPerIp > 0 || this.#limiter !== null;
  }

  /**
   * admit decides on a new client from `address` (an IP address as Node or a PROXY
   * header gives it; IPv4-mapped counts as IPv4; undefined or not an IP address when
   * there is none, as for a Unix socket client, which per-address limits then skip).
   * Checked in order: the lists (`denied`), the open connections, then the rate
   * (both `rate_limited`); a refused client takes no token and counts nothing.
   */
  admit(address: string | undefined): Admission {
    const parsed = address === undefined ? undefined : parseIp(withoutZone(address));
    const decision = this.#list.check(parsed);
    if (!decision.allowed) return { allowed: false, cause: 'denied', reason: decision.reason };
    if (parsed === undefined || (this.#maxPerIp === 0 && this.#limiter === null)) {
      return ADMITTED_UNCOUNTED;
    }
    const key = formatIp(unmapIp(parsed));
    const open = this.#maxPerIp > 0 ? this.#open : null;
    if (open !== null && open.count(key) >= open.max) {
      return {
        allowed: false,
        cause: 'rate_limited',
        reason: `${key} has ${open.max} open connections, the most allowed`,
      };
    }
    if (this.#limiter !== null && !this.#limiter.take(key)) {
      return {
        allowed: false,
        cause: 'rate_limited',
        reason: `${key} opens connections faster than ${formatRate(this.#limiter.rate)}`,
      };
    }
    if (open === null) return ADMITTED_UNCOUNTED;
    open.tryOpen(key);
    return { allowed: true, key };
  }

  /** release counts off a connection that `admit` admitted with this key, when it ends. */
  release(key: string): void {
    this.#open?.close(key);
  }

  /** openConnections is how many admitted connections of `address` are open (counted only with maxConnectionsPerIp). */
  openConnections(address: string): number {
    const parsed = parseIp(withoutZone(address));
    return parsed === undefined ? 0 : (this.#open?.count(formatIp(unmapIp(parsed))) ?? 0);
  }

  /** countEntries is the size of the open-connection table: the addresses with a counted connection open (0 without maxConnectionsPerIp). */
  get countEntries(): number {
    return this.#open?.size ?? 0;
  }

  /** rateEntries is the size of the rate limiter's table (0 without a rate). */
  get rateEntries(): number {
    return this.#limiter?.size ?? 0;
  }
}

/** withoutZone drops an IPv6 zone (`fe80::1%eth0`): it names the interface, not the client. */
function withoutZone(address: string): string {
  const percent = address.indexOf('%');
  return percent < 0 ? address : address.slice(0, percent);
}
