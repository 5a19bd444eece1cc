/**
 * PoolHealth: the health of one listener's pool, put together: a TargetHealth that
 * keeps the rise/fall counters (fed by the clients' connect attempts through the
 * pool), a HealthChecker when active checks are on, and the log lines of every
 * change (`target down`, `target up`, and `no healthy target` once while none is).
 *
 * With checks on (`intervalMs` > 0), a down target comes back through the checks
 * only. With checks off, passive health alone: after PASSIVE_RETRY_MS one client's
 * connection tries a down target first (TargetPool.retryAfterMs), and brings it back
 * if it connects.
 */
import type { Logger } from '../log.js';
import type { TimerSet } from '../timer-set.js';
import type { DialAddress } from './dial.js';
import { HealthChecker } from './health-check.js';
import { type HealthChange, PASSIVE_RETRY_MS, TargetHealth } from './target-health.js';
import type { TargetPool } from './target-pool.js';

/**
 * PoolHealthOptions are a listener's `--health-*` options and its config file's
 * `health: { send, expect }`: `intervalMs` 0 means no active checks (passive only).
 */
export interface PoolHealthOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly send?: string;
  readonly expect?: string;
}

/** sameHealthOptions: `a` and `b` ask for the same health (a reload that changed nothing). */
export function sameHealthOptions(a: PoolHealthOptions, b: PoolHealthOptions): boolean {
  return (
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.rise === b.rise &&
    a.fall === b.fall &&
    a.send === b.send &&
    a.expect === b.expect
  );
}

/** PoolHealth runs the health of `pool` for the listener named `listener`; `stop` ends it. */
export class PoolHealth<T extends DialAddress> {
  readonly options: PoolHealthOptions;
  readonly #pool: TargetPool<T>;
  readonly #log: Logger;
  readonly #listener: string;
  readonly #health: TargetHealth<T>;
  readonly #checker: HealthChecker<T> | null;

  constructor(
    pool: TargetPool<T>,
    timers: TimerSet,
    log: Logger,
    listener: string,
    options: PoolHealthOptions,
  ) {
    this.options = options;
    this.#pool = pool;
    this.#log = log;
    this.#listener = listener;
    this.#health = new TargetHealth(pool, options, {
      stateChanged: (change) => this.#logChange(change),
      noHealthyTarget: () =>
        log.warn('no healthy target: every target is down', { listener: this.#listener }),
    });
    pool.retryAfterMs = options.intervalMs > 0 ? 0 : PASSIVE_RETRY_MS;
    this.#checker =
      options.intervalMs > 0
        ? new HealthChecker(pool, this.#health, timers, options, {
            probed: (result) => {
              if (result.ok || !log.enabled('debug')) return;
              log.debug('health check failed', {
                listener: this.#listener,
                target: result.address,
                reason: result.reason,
              });
            },
          })
        : null;
    this.#checker?.start();
  }

  /** sync follows the pool after a reload changed its targets (pool.update). */
  sync(): void {
    this.#checker?.sync();
  }

  /**
   * stop ends the checks (no timer, no socket left) and stops counting the clients'
   * connects. With `keepStates` (another PoolHealth takes over: new options on a
   * reload) the targets stay as they are; without, targets that are down are put back
   * up, since nothing would bring them back.
   */
  stop(keepStates = false): void {
    this.#checker?.stop();
    this.#health.close();
    this.#pool.retryAfterMs = 0;
    for (const entry of this.#pool.entries) {
      entry.fails = 0;
      entry.passes = 0;
      if (entry.down && !keepStates) this.#pool.setDown(entry.address, false);
    }
  }

  #logChange(change: HealthChange): void {
    const fields = { listener: this.#listener, target: change.address, reason: change.reason };
    if (change.state === 'down') this.#log.warn('target down', fields);
    else this.#log.info('target up', fields);
  }
}
