/**
 * `--connection-rate-per-ip N/DUR`: at most N new connections from one address per
 * DUR, as a token bucket per address. A bucket holds up to N tokens, refills at N per
 * DUR, and each new connection takes one: a burst of N is allowed, then one every
 * DUR/N.
 *
 * Memory stays bounded however many addresses connect. A bucket left alone for DUR
 * is full again, the same as no bucket at all, so it can be forgotten. Buckets live in
 * two generations: `#current` gets every bucket used since the last turn, `#previous`
 * those of the turn before. Every DUR the generations turn: `#previous` is dropped
 * whole and `#current` becomes it. A dropped bucket was unused for more than DUR, so
 * full; a bucket used again is moved back to `#current`. Each `take` is a couple of
 * Map operations, with no sweep (walking a Map from the front, where deleted entries
 * pile up, costs more the more addresses churn). So a bucket is forgotten between DUR
 * and 2·DUR after its last use. A spray of addresses faster than that (more than
 * `maxEntries` within the time) turns the generations early, dropping idle buckets
 * sooner; an address whose bucket was dropped starts again with a full one, which
 * errs on the side of letting a client in.
 *
 * The level is kept in units of 1/N token·DUR (a token is `periodMs` units and the
 * bucket gains `count` units per millisecond), so with whole milliseconds it is exact.
 */
import { DurationError, parseDuration } from '../config/duration.js';

/** Rate is N connections per DUR. */
export interface Rate {
  readonly count: number;
  readonly periodMs: number;
}

/** RateError explains why a string is not a rate; the caller adds where it came from. */
export class RateError extends Error {}

/** parseRate reads `N/DUR` (`20/1s`, `600/1m`; DUR as in parseDuration). Throws RateError, one line, for anything else. */
export function parseRate(text: string): Rate {
  const slash = text.indexOf('/');
  const countText = slash < 0 ? '' : text.slice(0, slash);
  if (!/^[1-9]\d{0,8}$/.test(countText)) {
    throw new RateError(
      `expected N/DUR with N a whole number of at least 1 (like 20/1s or 600/1m), got ${JSON.stringify(text)}`,
    );
  }
  let periodMs: number;
  try {
    periodMs = parseDuration(text.slice(slash + 1));
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    throw new RateError(`bad period in ${JSON.stringify(text)}: ${err.message}`);
  }
  if (periodMs === 0) throw new RateError(`the period of ${JSON.stringify(text)} must not be 0`);
  return Object.freeze({ count: Number(countText), periodMs });
}

/** formatRate writes a rate back as a user would: `20/1s`. */
export function formatRate(rate: Rate): string {
  for (const [unit, ms] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (rate.periodMs % ms === 0) return `${rate.count}/${rate.periodMs / ms}${unit}`;
  }
  return `${rate.count}/${rate.periodMs}ms`;
}

/** RateLimiterOptions: the clock and the memory bound. */
export interface RateLimiterOptions {
  /** now is the clock in milliseconds (default `performance.now`); tests inject their own. */
  readonly now?: () => number;
  /** maxEntries bounds the buckets kept at once (default 100 000, a few MB). */
  readonly maxEntries?: number;
}

interface Bucket {
  /** level: the tokens, in units of 1/count token·period: a full bucket holds count·periodMs. */
  level: number;
  /** atMs: when level was last brought up to date. */
  atMs: number;
}

/** DEFAULT_MAX_ENTRIES: RateLimiterOptions.maxEntries by default. */
export const DEFAULT_MAX_ENTRIES = 100_000;

/** RateLimiter is a token bucket per client address (a key: the canonical address). */
export class RateLimiter {
  readonly rate: Rate;
  readonly #now: () => number;
  /** #generationLimit: the size at which #current turns early (half of maxEntries). */
  readonly #generationLimit: number;
  readonly #full: number;
  #current = new Map<string, Bucket>();
  #previous = new Map<string, Bucket>();
  /** #turnedAtMs: when the generations last turned (undefined: never used yet). */
  #turnedAtMs: number | undefined;

  constructor(rate: Rate, options: RateLimiterOptions = {}) {
    this.rate = rate;
    this.#now = options.now ?? (() => performance.now());
    this.#generationLimit = Math.max(
      1,
      Math.floor((options.maxEntries ?? DEFAULT_MAX_ENTRIES) / 2),
    );
    this.#full = rate.count * rate.periodMs;
  }

  /** take takes a token for a new connection of `key`: true if there was one, false if the rate is exceeded. */
  take(key: string): boolean {
    const now = this.#now();
    this.#turn(now);
    const { count, periodMs } = this.rate;
    let bucket = this.#current.get(key);
    if (bucket === undefined) {
      bucket = this.#previous.get(key);
      if (bucket !== undefined) this.#previous.delete(key);
      else bucket = { level: this.#full, atMs: now };
      if (this.#current.size >= this.#generationLimit) this.#turnNow(now);
      this.#current.set(key, bucket);
    }
    const elapsed = Math.max(0, now - bucket.atMs);
    bucket.level = Math.min(this.#full, bucket.level + elapsed * count);
    bucket.atMs = now;
    if (bucket.level < periodMs) return false;
    bucket.level -= periodMs;
    return true;
  }

  /** size is the number of buckets kept: addresses seen within the last DUR to 2·DUR, at most maxEntries. */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  // Every DUR: the previous generation was unused for over DUR (full buckets), drop it.
  #turn(now: number): void {
    if (this.#turnedAtMs === undefined) {
      this.#turnedAtMs = now;
      return;
    }
    const since = now - this.#turnedAtMs;
    if (since < this.rate.periodMs) return;
    if (since >= 2 * this.rate.periodMs) this.#current = new Map(); // both are idle
    this.#turnNow(now);
  }

  #turnNow(now: number): void {
    this.#previous = this.#current;
    this.#current = new Map();
    this.#turnedAtMs = now;
  }
}
