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

/**
 * ListenerHealth is what runs the health of a listener's pool: a PoolHealth in a
 * process on its own, a SharedHealth (shared-health.ts) in a worker of `--workers N`.
 */
export interface ListenerHealth {
  readonly options: PoolHealthOptions;
  /** sync follows the pool after a reload changed its targets (pool.update). */
  sync(): void;
  /** stop ends it; `keepStates`: another takes over, so down targets stay down. */
  stop(keepStates?: boolean): void;
}

/** PoolHealthEvents: `changed` hears every change of state after it is logged (the cluster's primary shares it). */
export interface PoolHealthEvents {
  changed?(change: HealthChange): void;
}

/** PoolHealth runs the health of `pool` for the listener named `listener`; `stop` ends it. */
export class PoolHealth<T extends DialAddress> implements ListenerHealth {
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
    events: PoolHealthEvents = {},
  ) {
    this.options = options;
    this.#pool = pool;
    this.#log = log;
    this.#listener = listener;
    this.#health = new TargetHealth(pool, options, {
      stateChanged: (change) => {
        this.#logChange(change);
        events.changed?.(change);
      },
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
   * report counts a client's connect attempt to the target at `address` made
   * elsewhere (a worker of `--workers N`): failed with errno `code`, or connected
   * (null), as if the pool had seen it. Unknown addresses are ignored.
   */
  report(address: string, code: string | null): void {
    const entry = this.#pool.get(address);
    if (entry === undefined) return;
    if (code === null) this.#health.connected(entry);
    else this.#health.failed(entry, code);
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
