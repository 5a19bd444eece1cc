/**
 * TargetHealth: when a target of a pool is down and when it is up again, from what
 * the health checks (health-check.ts) and the clients' own connect attempts say.
 *
 * Two counters per target, kept on its pool entry: `fails`, consecutive failures,
 * and `passes`, consecutive passed checks. `fall` failures in a row, whether failed
 * checks or failed connect attempts of clients (passive health), mark an up target
 * down; `rise` passed checks in a row mark a down target up. A client connection
 * that reaches a down target (the pool's passive retry lets one try it when checks
 * are off) marks it up at once: a real connection just worked. Out of file
 * descriptors (EMFILE, ENFILE) is our problem, not the target's, and is not counted.
 *
 * Every change of state is reported once, with its reason, and so is the moment no
 * target is up any more (once, until one is up again): the log says so once, not
 * once per client. Pure bookkeeping: no sockets, no timers.
 */
import type { PoolObserver, PoolTarget, TargetPool } from './target-pool.js';

/** HealthOptions: `rise` passed checks mark a down target up (default 2), `fall` failures mark an up one down (default 3). */
export interface HealthOptions {
  readonly rise: number;
  readonly fall: number;
}

/** HEALTH_DEFAULTS are the contract's defaults of `--health-rise` and `--health-fall`. */
export const HEALTH_DEFAULTS: HealthOptions = { rise: 2, fall: 3 };

/** PASSIVE_RETRY_MS: with checks off, a down target waits this long before one client may try it. */
export const PASSIVE_RETRY_MS = 10_000;

/** HealthSource is what produced a result: an active `check`, or a client's `connect` attempt. */
export type HealthSource = 'check' | 'connect';

/** HealthChange is one target going down or coming up, for the `target down` / `target up` log line. */
export interface HealthChange {
  readonly address: string;
  readonly state: 'up' | 'down';
  /** reason says why, in words: "3 failures in a row, last: check: connect: ECONNREFUSED". */
  readonly reason: string;
  readonly source: HealthSource;
}

/** HealthEvents are how TargetHealth reports to its owner (the listener logs them). */
export interface HealthEvents {
  /** stateChanged: a target went down or came up; called once per change. */
  stateChanged(change: HealthChange): void;
  /** noHealthyTarget: a target went down and now none is up; called once until one is up again. */
  noHealthyTarget(): void;
}

/**
 * TargetHealth keeps the fall/rise counters of `pool`'s targets and marks them down
 * and up (pool.setDown). Creating it makes it the pool's observer, so the pool
 * passes on the clients' connects and failed attempts; `close` stops that.
 */
export class TargetHealth<T> implements PoolObserver<T> {
  readonly pool: TargetPool<T>;
  readonly options: HealthOptions;
  readonly #events: HealthEvents;
  #noneUp = false;

  constructor(pool: TargetPool<T>, options: HealthOptions, events: HealthEvents) {
    this.pool = pool;
    this.options = options;
    this.#events = events;
    pool.observer = this;
  }

  /** close stops hearing the pool's connects; the targets keep their state. */
  close(): void {
    if (this.pool.observer === this) this.pool.observer = null;
  }

  /** checkPassed counts a passed check of `entry`. */
  checkPassed(entry: PoolTarget<T>): void {
    entry.fails = 0;
    if (!entry.down) return;
    entry.passes += 1;
    if (entry.passes >= this.options.rise) {
      const rise = this.options.rise;
      this.#change(entry, false, rise === 1 ? 'a check passed' : `${rise} checks passed`, 'check');
    }
  }

  /** checkFailed counts a failed check of `entry`; `reason` says how it failed. */
  checkFailed(entry: PoolTarget<T>, reason: string): void {
    this.#failure(entry, `check: ${reason}`, 'check');
  }

  /** connected: a client connected to `entry` (PoolObserver); a down target is up again. */
  connected(entry: PoolTarget<T>): void {
    entry.fails = 0;
    if (entry.down) this.#change(entry, false, 'a client connected', 'connect');
  }

  /** failed: a client's connect attempt to `entry` failed with `code` (PoolObserver). */
  failed(entry: PoolTarget<T>, code: string): void {
    if (code === 'EMFILE' || code === 'ENFILE') return; // our descriptors, not the target
    this.#failure(entry, `connect: ${code}`, 'connect');
  }

  #failure(entry: PoolTarget<T>, reason: string, source: HealthSource): void {
    entry.passes = 0;
    if (entry.down) return;
    entry.fails += 1;
    const fall = this.options.fall;
    if (entry.fails < fall) return;
    this.#change(
      entry,
      true,
      fall === 1 ? reason : `${fall} failures in a row, last: ${reason}`,
      source,
    );
  }

  #change(entry: PoolTarget<T>, down: boolean, reason: string, source: HealthSource): void {
    entry.fails = 0;
    entry.passes = 0;
    this.pool.setDown(entry.address, down);
    this.#events.stateChanged({
      address: entry.address,
      state: down ? 'down' : 'up',
      reason,
      source,
    });
    // Looked at on every change, so a target an operator undrained counts as up too.
    const noneUp = this.pool.upCount === 0;
    if (noneUp && !this.#noneUp) this.#events.noHealthyTarget();
    this.#noneUp = noneUp;
  }
}
