/**
 * What Toxiproxy's HTTP API (admin/toxiproxy-api.ts) acts on: a `ToxiproxyHost`. In a
 * single process that is the proxy itself (`localToxiproxyHost`, over a `Supervisor`);
 * with `--workers N` it is the primary's `ClusterToxiproxy` (cluster-toxiproxy.ts),
 * which sends every change to each worker as a `ToxiproxyAction`, and each worker runs
 * it on its own proxy with `runToxiproxyAction`. Actions and their outcomes are plain
 * data, so that they cross the cluster's IPC channel unchanged.
 */

import type { ListenerOptions } from './config/config.js';
import { errorCode } from './errors.js';
import type { ToxicRegistry } from './faults/registry.js';
import { apiText, type Toxic, ToxicError } from './faults/toxic.js';
import type { ListenerChange, ListenerInfo } from './proxy-info.js';

/** ToxicChange is one change to a listener's toxics; `set` makes the list exactly `toxics`. */
export type ToxicChange =
  | { readonly op: 'add'; readonly toxic: Toxic }
  | { readonly op: 'update'; readonly toxic: Toxic }
  | { readonly op: 'remove'; readonly name: string }
  | { readonly op: 'reset' }
  | { readonly op: 'set'; readonly toxics: readonly Toxic[] };

/**
 * ToxiproxyHost is what the Toxiproxy API needs of a proxy. Every method answers
 * without waiting on a proxied socket. Errors keep Toxiproxy's `status` (a toxic's
 * 400/404/409) or our `code` (PROXY_ERR_INVALID_CONFIG, PROXY_ERR_LISTEN, ...).
 */
export interface ToxiproxyHost {
  /** listenerInfo: every listener, with its toxics (`toxics`, absent when none). */
  listenerInfo(): readonly ListenerInfo[] | Promise<readonly ListenerInfo[]>;
  createListener(options: ListenerOptions, enabled?: boolean): Promise<ListenerInfo | 'exists'>;
  changeListener(name: string, change: ListenerChange): Promise<ListenerInfo | 'no_listener'>;
  deleteListener(name: string): boolean | Promise<boolean>;
  /** changeToxics applies `change` to the toxics of listener `name`: the list after it, or `no_listener`. */
  changeToxics(name: string, change: ToxicChange): Promise<readonly Toxic[] | 'no_listener'>;
}

/** ToxiproxyProxy is what localToxiproxyHost needs of a proxy: a `Supervisor` has it all. */
export interface ToxiproxyProxy {
  listenerInfo(): readonly ListenerInfo[];
  createListener(options: ListenerOptions, enabled?: boolean): Promise<ListenerInfo | 'exists'>;
  changeListener(name: string, change: ListenerChange): Promise<ListenerInfo | 'no_listener'>;
  deleteListener(name: string): boolean;
  toxicRegistry(name: string): ToxicRegistry | undefined;
}

/** isToxiproxyProxy: `proxy` can create and remove listeners and has toxic stores (a Supervisor). */
export function isToxiproxyProxy(proxy: object): proxy is ToxiproxyProxy {
  return 'createListener' in proxy && 'toxicRegistry' in proxy;
}

/** localToxiproxyHost is the ToxiproxyHost of a proxy in this process: every change acts at once. */
export function localToxiproxyHost(proxy: ToxiproxyProxy): ToxiproxyHost {
  return {
    listenerInfo: () => proxy.listenerInfo(),
    createListener: (options, enabled) => proxy.createListener(options, enabled),
    changeListener: (name, change) => proxy.changeListener(name, change),
    deleteListener: (name) => proxy.deleteListener(name),
    changeToxics: async (name, change) => {
      const registry = proxy.toxicRegistry(name);
      if (registry === undefined) return 'no_listener';
      applyToxicChange(registry, change);
      return registry.list();
    },
  };
}

function applyToxicChange(store: ToxicRegistry, change: ToxicChange): void {
  switch (change.op) {
    case 'add':
      store.add(change.toxic);
      return;
    case 'update': {
      const { name, toxicity, attributes } = change.toxic;
      store.update(name, { toxicity, attributes });
      return;
    }
    case 'remove':
      store.remove(change.name);
      return;
    case 'reset':
      store.reset();
      return;
    case 'set':
      store.reset();
      for (const toxic of change.toxics) store.add(toxic);
      return;
  }
}

/** ProxyRecord is a listener made or changed through the API, as a new worker must see it. */
export interface ProxyRecord {
  readonly name: string;
  /** create: how to create it (the listen address to bind); absent for a listener of the flags or the file. */
  readonly create: { readonly options: ListenerOptions; readonly enabled: boolean } | undefined;
  /** change: what to change after (or, for a file's listener, instead of) creating it. */
  readonly change: ListenerChange;
}

/**
 * ToxiproxyState is everything the API changed, in the order to apply it: listeners
 * deleted, listeners created or changed, and each listener's toxics (exactly these).
 */
export interface ToxiproxyState {
  readonly deleted: readonly string[];
  readonly proxies: readonly ProxyRecord[];
  readonly toxics: readonly (readonly [string, readonly Toxic[]])[];
}

/** ToxiproxyAction is one ToxiproxyHost call as data (or `sync`: apply a whole state). */
export type ToxiproxyAction =
  | { readonly op: 'create'; readonly options: ListenerOptions; readonly enabled: boolean }
  | { readonly op: 'change'; readonly name: string; readonly change: ListenerChange }
  | { readonly op: 'delete'; readonly name: string }
  | { readonly op: 'toxics'; readonly name: string; readonly change: ToxicChange }
  | { readonly op: 'sync'; readonly state: ToxiproxyState };

/** ToxiproxyOutcome is an action's result, or its error as data (`status`: Toxiproxy's, if it has one). */
export type ToxiproxyOutcome =
  | { readonly ok: true; readonly value: unknown }
  | {
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      readonly status: number | undefined;
    };

/** runToxiproxyAction runs `action` on `host`; it never rejects (an error is an outcome). */
export async function runToxiproxyAction(
  host: ToxiproxyHost,
  action: ToxiproxyAction,
): Promise<ToxiproxyOutcome> {
  try {
    return { ok: true, value: await run(host, action) };
  } catch (err) {
    const status = (err as { status?: unknown } | null)?.status;
    const text = err instanceof ToxicError ? apiText(err) : undefined;
    return {
      ok: false,
      code: errorCode(err),
      message: text ?? (err instanceof Error ? err.message : String(err)),
      status: typeof status === 'number' ? status : undefined,
    };
  }
}

async function run(host: ToxiproxyHost, action: ToxiproxyAction): Promise<unknown> {
  switch (action.op) {
    case 'create':
      return host.createListener(action.options, action.enabled);
    case 'change':
      return host.changeListener(action.name, action.change);
    case 'delete':
      return host.deleteListener(action.name);
    case 'toxics':
      return host.changeToxics(action.name, action.change);
    case 'sync':
      return applyState(host, action.state);
  }
}

/**
 * applyState makes a proxy (a worker just started) match `state`: deletes, then
 * creates (a name it has already, from its config, is changed instead), then sets
 * each listener's toxics. Every step is tried; the first error is thrown at the end.
 */
async function applyState(host: ToxiproxyHost, state: ToxiproxyState): Promise<true> {
  const errors: unknown[] = [];
  const attempt = async (step: () => unknown): Promise<void> => {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  };
  for (const name of state.deleted) await attempt(() => host.deleteListener(name));
  for (const record of state.proxies) {
    await attempt(async () => {
      const { create, change } = record;
      if (create !== undefined) {
        const made = await host.createListener(create.options, create.enabled);
        if (made !== 'exists') return;
      }
      await host.changeListener(record.name, change);
    });
  }
  for (const [name, toxics] of state.toxics)
    await attempt(() => host.changeToxics(name, { op: 'set', toxics }));
  if (errors.length > 0) throw errors[0];
  return true;
}

/** outcomeError turns a failed outcome back into an error with the same code, message and status. */
export function outcomeError(outcome: Extract<ToxiproxyOutcome, { ok: false }>): Error {
  const err = Object.assign(new Error(outcome.message), { code: outcome.code });
  return outcome.status === undefined ? err : Object.assign(err, { status: outcome.status });
}
