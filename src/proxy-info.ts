/**
 * What a proxy says about itself: the events it emits, its counters, and each
 * listener as `listenerInfo()`, `/api/listeners` and the status page show it
 * (`describeListener`). The Supervisor answers with these; the admin server, the
 * cluster's views and the library's users read them.
 */
import type { Target } from './config/config.js';
import { type SettingsJson, settingsJson } from './config/options.js';
import type { ConnectionInfo } from './connection-info.js';
import type { Toxic } from './faults/toxic.js';
import type { Listener } from './listener.js';
import type { StatsSnapshot } from './stats.js';
import { type PoolTarget, stateOf, type TargetState } from './upstream/target-pool.js';

/** ProxyEvents are the events a proxy emits, with their arguments. */
export interface ProxyEvents {
  /** connectionOpen: a client was accepted (its upstream is not connected yet). */
  connectionOpen: [connection: ConnectionInfo];
  /** connectionConnect: a connection reached its upstream (`connectMs`, `upstream` are set). */
  connectionConnect: [connection: ConnectionInfo];
  /** connectionClose: a connection closed; `cause` says why. Emitted once per connection. */
  connectionClose: [connection: ConnectionInfo];
}

/** ProxyStats are the summed counters plus each listener's own, by name. */
export interface ProxyStats extends StatsSnapshot {
  listeners: Record<string, StatsSnapshot>;
}

/** ReloadResult names the listeners a reload added, removed and changed. */
export interface ReloadResult {
  added: string[];
  removed: string[];
  changed: string[];
}

/** TargetInfo describes one target of one listener: its weight, state and counters. */
export interface TargetInfo {
  address: string;
  weight: number;
  /** backup: the target gets connections only while no other target is up (config `backup: true`). */
  backup: boolean;
  /**
   * state: `up` takes new connections; `down` failed its health check; `drained` was
   * taken out of rotation by an operator.
   */
  state: TargetState;
  /** connections counts the connections open to this target now. */
  connections: number;
  connects: number;
  failures: Record<string, number>;
}

/** RouteInfo describes one SNI route of a listener: its name (null: the default route) and targets. */
export interface RouteInfo {
  sni: string | null;
  /** targets: as a listener's, but `connections` counts this route's only. */
  targets: TargetInfo[];
}

/**
 * ListenerState: `serving` is in the configuration in force; `removing` was removed by
 * a reload and stopped accepting, and is shown until its last open connection ends;
 * `disabled` was switched off through the admin API (Toxiproxy's `enabled: false`):
 * it is kept, but does not listen, so clients are refused.
 */
export type ListenerState = 'serving' | 'removing' | 'disabled';

/**
 * ListenerChange is what `changeListener` may change: the listen address, the
 * targets (as `HOST:PORT` strings) and whether it listens. Absent fields stay.
 */
export interface ListenerChange {
  listen?: string | number | undefined;
  targets?: readonly string[] | undefined;
  enabled?: boolean | undefined;
}

/**
 * ListenerInfo describes one listener: its settings (every listener setting of the
 * option table, config/options.ts: `idleTimeoutMs`, ..., `maxConnections`, which is
 * null when there is no limit), its targets and its counters.
 */
export interface ListenerInfo extends SettingsJson {
  name: string;
  state: ListenerState;
  listen: string;
  address: string;
  /** targets: every target, once; with routes, those of all routes (connections of all counted). */
  targets: TargetInfo[];
  /** routes: a listener with `routes` only: each route with its own targets, the default last. */
  routes?: RouteInfo[];
  stats: StatsSnapshot;
  /** toxics: the listener's toxics (Toxiproxy API), in their order; absent when it has none. */
  toxics?: readonly Toxic[];
}

/**
 * ListenOptions: `fds` maps listener names to listening sockets inherited from the
 * parent process (systemd socket activation, src/socket-activation.ts): those
 * listeners take their socket instead of binding their `listen` address.
 */
export interface ListenOptions {
  fds?: ReadonlyMap<string, number>;
}

/** CloseOptions: `graceful` (default true) lets open connections finish within the shutdown timeout. */
export interface CloseOptions {
  graceful?: boolean;
}

/** describeListener is one listener as listenerInfo() gives it: options, targets, routes, counters, toxics. */
export function describeListener(
  listener: Listener,
  state: ListenerState,
  stats: StatsSnapshot,
  toxics?: readonly Toxic[],
): ListenerInfo {
  const config = listener.config;
  const routes = listener.targets.routes;
  const info = (t: Target, entries: readonly (PoolTarget<Target> | undefined)[]): TargetInfo => {
    const first = entries[0];
    return {
      address: t.address,
      weight: t.weight,
      backup: t.backup === true,
      state: first === undefined ? 'up' : stateOf(first),
      connections: entries.reduce((sum, entry) => sum + (entry?.connections ?? 0), 0),
      connects: stats.targets[t.address]?.connects ?? 0,
      failures: stats.targets[t.address]?.failures ?? {},
    };
  };
  // With routes, the listener's targets are those of all its routes, each once.
  const targets =
    routes === null
      ? config.targets
      : [...new Map(routes.flatMap((r) => r.targets.map((t) => [t.address, t]))).values()];
  return {
    name: config.name,
    state,
    listen: listener.listenAddress,
    address: listener.boundAddress(),
    ...settingsJson(config),
    targets: targets.map((t) => info(t, listener.targets.entries(t.address))),
    ...(routes === null
      ? {}
      : {
          routes: routes.map((r) => ({
            sni: r.sni ?? null,
            targets: r.targets.map((t) => info(t, [r.pool.get(t.address)])),
          })),
        }),
    stats,
    ...(toxics === undefined || toxics.length === 0 ? {} : { toxics }),
  };
}
