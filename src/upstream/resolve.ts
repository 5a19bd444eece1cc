/**
 * Resolving target host names once, not once per connection.
 *
 * A target written as a name (`db.internal:5432`) would otherwise cost a getaddrinfo()
 * call, run on libuv's thread pool, for every client. `cachedLookup` has the
 * signature of `dns.lookup`, so it is handed to `net.connect({ lookup })`: the first
 * connection resolves the name, later ones reuse the answer until it is
 * RESOLVED_TTL_MS old, and connections that arrive while a lookup is under way wait
 * for that one instead of starting their own. A failed lookup is remembered for
 * FAILED_TTL_MS only, so a resolver hiccup does not stick. IP addresses never get
 * here (Node connects to them directly).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';

/** RESOLVED_TTL_MS is how long an answer is reused. */
export const RESOLVED_TTL_MS = 30_000;
/** FAILED_TTL_MS is how long a failed lookup is remembered. */
export const FAILED_TTL_MS = 1000;

type Answer = { error: NodeJS.ErrnoException | null; addresses: LookupAddress[] };
type Waiter = (answer: Answer) => void;
/** Resolve is dns.lookup with `all: true`; tests inject their own. */
export type Resolve = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

interface LookupOptions {
  family?: number | string;
  all?: boolean;
  hints?: number;
}
type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** createCachedLookup makes a dns.lookup look-alike with a cache in front of `resolve`. */
export function createCachedLookup(
  resolve: Resolve = dnsLookup as Resolve,
  now: () => number = Date.now,
) {
  const cache = new Map<string, { answer: Answer; expiresAtMs: number }>();
  const inFlight = new Map<string, Waiter[]>();

  function answerWith(answer: Answer, options: LookupOptions, callback: LookupCallback): void {
    const first = answer.addresses[0];
    if (answer.error !== null) callback(answer.error, options.all ? [] : '');
    else if (options.all) callback(null, answer.addresses);
    else if (first === undefined) callback(notFound(), '');
    else callback(null, first.address, first.family);
  }

  return function cachedLookup(
    hostname: string,
    options: LookupOptions,
    callback: LookupCallback,
  ): void {
    const family = typeof options.family === 'number' ? options.family : 0;
    const key = `${family}/${hostname}`;
    const cached = cache.get(key);
    if (cached !== undefined && cached.expiresAtMs > now()) {
      const answer = cached.answer;
      // Answer asynchronously, as dns.lookup does: callers rely on it.
      process.nextTick(answerWith, answer, options, callback);
      return;
    }
    const waiters = inFlight.get(key);
    const waiter: Waiter = (answer) => answerWith(answer, options, callback);
    if (waiters !== undefined) {
      waiters.push(waiter);
      return;
    }
    inFlight.set(key, [waiter]);
    resolve(hostname, { family, all: true, hints: options.hints }, (error, addresses) => {
      const answer: Answer = { error, addresses: addresses ?? [] };
      cache.set(key, {
        answer,
        expiresAtMs: now() + (error === null ? RESOLVED_TTL_MS : FAILED_TTL_MS),
      });
      const all = inFlight.get(key) ?? [];
      inFlight.delete(key);
      for (const w of all) w(answer);
    });
  };
}

function notFound(): NodeJS.ErrnoException {
  return Object.assign(new Error('no address found'), { code: 'ENOTFOUND' });
}

/** cachedLookup is the process-wide cache every dial uses. */
export const cachedLookup = createCachedLookup();
