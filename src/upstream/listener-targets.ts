/**
 * ListenerTargets: the upstream side of one listener. It owns the listener's
 * TargetPool and, for a listener with `routes`, each route's pool; it drains and
 * undrains a target in all of them, runs their health, and follows a reload.
 *
 * The pools outlive reloads: a reload updates the targets in place (update()), so
 * the targets keep their states, open connections and round-robin position, and a
 * route keeps its pool where its sni stays (routePools). A Listener holds one;
 * connections take their plans from `pool`, or from the pool their route chose.
 */
import type { ListenerConfig, Target } from '../config/config.js';
import type { Logger } from '../log.js';
import type { TimerSet } from '../timer-set.js';
import {
  type PooledRoute,
  type RoutePools,
  routePools,
  sniHandshake,
} from '../tls/sni-handshake.js';
import { strategyFor } from './balance.js';
import {
  type ListenerHealth,
  PoolHealth,
  type PoolHealthOptions,
  sameHealthOptions,
} from './pool-health.js';
import { type PoolTarget, TargetPool } from './target-pool.js';

/** HealthFactory starts the health of a listener's pool in place of its own PoolHealth (ListenerEvents.startHealth). */
export type HealthFactory = (
  pool: TargetPool<Target>,
  listener: string,
  options: PoolHealthOptions,
) => ListenerHealth;

/** TargetsEvents: what the listener's owner decides about its targets. */
export interface TargetsEvents {
  /**
   * startHealth: how the owner wants the health of the listener's pool run (a worker
   * of `--workers N` shares it through the primary); undefined, or absent: the
   * listener runs its own PoolHealth.
   */
  startHealth?(...args: Parameters<HealthFactory>): ListenerHealth | undefined;
}

/** ListenerTargets owns a listener's pools (its own and its routes'), their drain and their health. */
export class ListenerTargets {
  /** pool holds the targets, their state and open connections; kept across reloads. */
  readonly pool: TargetPool<Target>;
  /**
   * #routes are the pools of a listener with `routes`, kept across reloads (the default
   * route's pool is `pool`); null without routes.
   */
  #routes: RoutePools | null = null;
  /** #config: the listener's config as last given (constructor, update()), without the SNI handshake. */
  #config: ListenerConfig;
  #health: ListenerHealth | null = null;
  readonly #timers: TimerSet;
  readonly #log: Logger;
  readonly #events: TargetsEvents;

  constructor(config: ListenerConfig, timers: TimerSet, log: Logger, events: TargetsEvents) {
    this.#config = config;
    this.#timers = timers;
    this.#log = log;
    this.#events = events;
    this.pool = new TargetPool(config.targets, {
      addressOf: targetAddress,
      weightOf: targetWeight,
      backupOf: targetBackup,
      strategy: strategyFor(config.balance),
      now: () => timers.now(),
    });
  }

  /** routes are the routes of a listener with `routes`, each with its pool, in order; null without. */
  get routes(): readonly PooledRoute[] | null {
    return this.#routes?.routes ?? null;
  }

  /**
   * entries returns a target's entries in every pool of this listener: its own
   * and, with routes, each route's that lists it.
   */
  entries(address: string): PoolTarget<Target>[] {
    const entries: PoolTarget<Target>[] = [];
    for (const pool of this.#pools()) {
      const entry = pool.get(address);
      if (entry !== undefined) entries.push(entry);
    }
    return entries;
  }

  #pools(): Set<TargetPool<Target>> {
    const pools = new Set([this.pool]);
    for (const route of this.#routes?.routes ?? []) pools.add(route.pool);
    return pools;
  }

  /**
   * withRoutes gives the config new connections use: as given, or for a listener with
   * `routes` with the SNI handshake (tls/sni-handshake.ts) over its route pools, which
   * it keeps from the routes before (a reload keeps a route's pool where its sni stays).
   */
  withRoutes(config: ListenerConfig): ListenerConfig {
    if (config.routes === undefined) {
      this.#routes = null;
      return config;
    }
    const pools = routePools(config.routes, { previous: this.#routes, defaultPool: this.pool });
    this.#routes = pools;
    const timeoutMs = config.proxyHeaderTimeoutMs;
    const handshake = sniHandshake({ route: pools.route, timeoutMs });
    return Object.freeze({ ...config, hooks: Object.freeze({ ...config.hooks, handshake }) });
  }

  /**
   * update follows a reload: the pool takes the new targets (keeping the states of
   * those that stay) and `--balance`, the routes their new pools, and a running
   * health the new options (useHealth); turning `--target-insecure` on is logged
   * (warnInsecure). Returns the config new connections use
   * (withRoutes). Open connections keep the targets they started with.
   */
  update(config: ListenerConfig): ListenerConfig {
    const previous = this.#config;
    if (!sameTargets(previous.targets, config.targets)) {
      this.pool.update(config.targets);
      this.#health?.sync();
    }
    if (config.balance !== previous.balance) this.pool.strategy = strategyFor(config.balance);
    this.#config = config;
    const routed = this.withRoutes(config);
    if (!(previous.targetTls && previous.targetInsecure)) this.warnInsecure();
    // Targets keep their states: the same health options keep the running one; others
    // replace it without resetting states. A listener that stopped accepting stays off.
    if (this.#health !== null) this.useHealth(healthOptionsOf(config));
    return routed;
  }

  /**
   * warnInsecure logs that TLS to the targets is not verified, if so: whenever a
   * listener starts, or a reload turns `--target-insecure` on (it is for tests).
   */
  warnInsecure(): void {
    const config = this.#config;
    if (!config.targetTls || !config.targetInsecure) return;
    this.#log.warn(
      'TLS to targets is not verified (--target-insecure): anyone on the path can read and change the traffic',
      {
        listener: config.name,
      },
    );
  }

  /**
   * setDrained takes a target out of rotation (`drained` true) or puts it back. New
   * connections skip a drained target; open ones are not touched. Returns false when
   * this listener has no such target.
   */
  setDrained(address: string, drained: boolean): boolean {
    let found = false;
    // With routes, a target is drained in every route that lists it.
    for (const pool of this.#pools()) found = pool.setDrained(address, drained) || found;
    if (!found) return false;
    this.#log.info(drained ? 'target drained' : 'target undrained', {
      listener: this.#config.name,
      upstream: address,
    });
    return true;
  }

  /** startHealth starts the health with the listener's settings, unless it runs already. */
  startHealth(): void {
    if (this.#health === null) this.useHealth(healthOptionsOf(this.#config));
  }

  /**
   * useHealth starts the health of this listener's targets (checks, passive marking,
   * `target down` / `target up` logs; upstream/pool-health.ts, or the owner's
   * `startHealth`), or stops it (null). Off until called (`listen` does). Called
   * again (a reload) with the same options it keeps running; with other options it
   * starts afresh, and the targets keep their states.
   */
  useHealth(options: PoolHealthOptions | null): void {
    const running = this.#health;
    if (running !== null && options !== null && sameHealthOptions(running.options, options)) return;
    running?.stop(options !== null);
    if (options === null) {
      this.#health = null;
      return;
    }
    const name = this.#config.name;
    this.#health =
      this.#events.startHealth?.(this.pool, name, options) ??
      new PoolHealth(this.pool, this.#timers, this.#log, name, options);
  }
}

function targetAddress(target: Target): string {
  return target.address;
}

function targetWeight(target: Target): number {
  return target.weight;
}

function targetBackup(target: Target): boolean {
  return target.backup === true;
}

function sameTargets(a: readonly Target[], b: readonly Target[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (t, i) =>
        t.address === b[i]?.address &&
        t.weight === b[i]?.weight &&
        targetBackup(t) === (b[i] !== undefined && targetBackup(b[i])),
    )
  );
}

/** healthOptionsOf gives the health options of a listener's settings (`--health-*`, `health`). */
function healthOptionsOf(config: ListenerConfig): PoolHealthOptions {
  return {
    intervalMs: config.healthIntervalMs,
    timeoutMs: config.healthTimeoutMs,
    rise: config.healthRise,
    fall: config.healthFall,
    ...config.health,
  };
}
