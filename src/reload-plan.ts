/**
 * Reload plan: what a reload does to the running listeners, worked out as data from
 * the listeners and the new configuration, before anything is bound or changed. The
 * `Supervisor` applies it (binds the new addresses, all or nothing, then updates,
 * retires and starts). `planChange` does the same for the admin API's change of one
 * listener (Toxiproxy's PATCH). No sockets, no timers, no logging.
 *
 * Listeners are matched by name first. A name not running yet takes over the
 * listening socket of a removed listener on the same address (a rename: binding it
 * again would collide with itself). Listeners added through the admin API (`runtime`)
 * are not the file's: they are kept unless the file names them.
 */

import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { Address } from './config/address.js';
import { type ListenerConfig, resolveListener } from './config/config.js';
import type { ListenerChange, ReloadResult } from './proxy-info.js';

/** PlannedListener is what the plan reads of a running listener (a `Listener`). */
export interface PlannedListener {
  readonly config: ListenerConfig;
  readonly inheritedFd: number | undefined;
  sameConfig(config: ListenerConfig): boolean;
}

/**
 * Placement says what serves one listener of the new configuration: a running
 * listener (`same`, kept as is or updated in place), a new listener at a new address
 * taking over from the old one, which drains (`moved`), or a new listener (`new`).
 */
export type Placement<L> =
  | { readonly kind: 'same'; readonly listener: L }
  | { readonly kind: 'moved'; readonly from: L; readonly config: ListenerConfig }
  | { readonly kind: 'new'; readonly config: ListenerConfig };

/** ReloadPlan is the outcome of `planReload`, in the order the reload applies it. */
export interface ReloadPlan<L> {
  /** result: the names added, removed (a renamed listener's old name too) and changed. */
  readonly result: ReloadResult;
  /** placements: one per listener of the new configuration, in its order. */
  readonly placements: Placement<L>[];
  /** update: running listeners that take a new config in place (changed or renamed). */
  readonly update: [L, ListenerConfig][];
  /** retire: listeners that stop accepting and drain: moved ones first, then removed. */
  readonly retire: L[];
  /** kept: listeners of the admin API the new configuration does not name. */
  readonly kept: L[];
}

/**
 * planReload works out a reload of `listeners` (running, in their order) to
 * `listeners` of the new configuration. `runtime` holds the names of listeners added
 * through the admin API.
 */
export function planReload<L extends PlannedListener>(
  running: readonly L[],
  runtime: ReadonlySet<string>,
  listeners: readonly ListenerConfig[],
): ReloadPlan<L> {
  const result: ReloadResult = { added: [], removed: [], changed: [] };
  const kept = new Map(
    running.filter((l) => runtime.has(l.config.name)).map((l) => [l.config.name, l]),
  );
  for (const l of listeners) kept.delete(l.name);
  const byName = new Map(
    running.filter((l) => !kept.has(l.config.name)).map((l) => [l.config.name, l]),
  );
  const update: [L, ListenerConfig][] = [];
  const retire: L[] = [];
  // First match by name; a name not running yet is decided in the second pass.
  const first = listeners.map((listenerConfig): Placement<L> => {
    const name = listenerConfig.name;
    const old = byName.get(name);
    if (old === undefined) {
      result.added.push(name);
      return { kind: 'new', config: listenerConfig };
    }
    byName.delete(name);
    if (old.sameConfig(listenerConfig)) return { kind: 'same', listener: old };
    result.changed.push(name);
    // An inherited socket is where systemd put it: it stays, whatever `listen` says now.
    if (
      old.inheritedFd !== undefined ||
      isDeepStrictEqual(old.config.listen, listenerConfig.listen)
    ) {
      update.push([old, listenerConfig]);
      return { kind: 'same', listener: old };
    }
    // The address changed: a new listener there, the old one drains.
    retire.push(old);
    return { kind: 'moved', from: old, config: listenerConfig };
  });
  // A new name on the address of a removed listener is a rename: the listening socket
  // stays (binding it again would collide with itself) and takes the new config.
  const placements = first.map((placement): Placement<L> => {
    if (placement.kind !== 'new') return placement;
    const listen = placement.config.listen;
    // (Port 0 means "any free port": two of those are never the same address.)
    const renamed =
      listen.port === 0
        ? undefined
        : [...byName.values()].find((l) => isDeepStrictEqual(l.config.listen, listen));
    if (renamed === undefined) return placement;
    byName.delete(renamed.config.name);
    result.removed.push(renamed.config.name);
    update.push([renamed, placement.config]);
    return { kind: 'same', listener: renamed };
  });
  for (const old of byName.values()) {
    result.removed.push(old.config.name);
    retire.push(old);
  }
  return { result, placements, update, retire, kept: [...kept.values()] };
}

/** ChangedListener is what `planChange` reads of a running listener (a `Listener`). */
export interface ChangedListener {
  readonly config: ListenerConfig;
  address(): AddressInfo | null;
}

/** ChangePlan: a listener's config with a change filled in, and what the change does. */
export interface ChangePlan {
  readonly fresh: ListenerConfig;
  /** moved: the change names another address (the listener binds there anew). */
  readonly moved: boolean;
  /** retarget: the change names other targets. */
  readonly retarget: boolean;
}

/**
 * planChange works out a Toxiproxy change of one listener (`changeListener`): absent
 * fields stay as they are. Throws PROXY_ERR_INVALID_CONFIG for a bad address.
 */
export function planChange(listener: ChangedListener, change: ListenerChange): ChangePlan {
  const config = listener.config;
  const fresh = resolveListener(
    {
      name: config.name,
      listen: change.listen ?? formatListen(config.listen),
      targets: change.targets ?? config.targets.map((t) => t.address),
    },
    '',
  );
  const moved = change.listen !== undefined && !sameListen(fresh.listen, listener);
  const retarget =
    change.targets !== undefined &&
    fresh.targets.map((t) => t.address).join(',') !==
      config.targets.map((t) => t.address).join(',');
  return { fresh, moved, retarget };
}

/** formatListen writes a parsed listen address back in a form `resolveListener` reads. */
function formatListen(listen: Address): string {
  if (listen.path !== undefined) return `unix:${listen.path}`;
  if (listen.host === undefined) return String(listen.port);
  return listen.host.includes(':')
    ? `[${listen.host}]:${listen.port}`
    : `${listen.host}:${listen.port}`;
}

/**
 * sameListen: `listen` names the address the listener has (configured or bound), so
 * changing to it moves nothing. Port 0 is never the same: it asks for a new port.
 */
function sameListen(listen: Address, listener: ChangedListener): boolean {
  const own = listener.config.listen;
  if (listen.path !== undefined || own.path !== undefined) return listen.path === own.path;
  const bound = listener.address();
  if (listen.port === 0 || listen.port !== (bound?.port ?? own.port)) return false;
  const host = listen.host ?? '::';
  return host === (own.host ?? '::') || host === bound?.address;
}
