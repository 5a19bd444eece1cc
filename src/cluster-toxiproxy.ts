/**
 * ClusterToxiproxy: the Toxiproxy API's host in the primary of `--workers N`, so that
 * every worker applies the same proxies and toxics (issue #12).
 *
 * The primary owns the state the API changes. Each change (create, change or delete a
 * proxy; add, update, remove or reset toxics) is sent to every worker as a
 * `ToxiproxyAction` over the IPC channel; each worker runs it on its own proxy and
 * answers with the outcome, and the API answers with the first worker's outcome once
 * all have answered, so a change is in force in every worker when the client hears of
 * it. The workers share each listening socket through node:cluster, so a proxy created
 * here listens once for all of them. What changed is recorded (`ToxiproxyState`) and
 * sent to a worker started later (one replaced after a crash) before any further
 * change: changes and these catch-ups run one at a time, so no worker misses one.
 * Reads (`listenerInfo`) are the workers' merged answers (`ClusterView`).
 */
import type { WorkerPool } from './cluster-view.js';
import type { ListenerOptions } from './config/config.js';
import { ProxyError } from './errors.js';
import type { Toxic } from './faults/toxic.js';
import type { Logger } from './log.js';
import type { ListenerChange, ListenerInfo } from './proxy-info.js';
import {
  outcomeError,
  type ProxyRecord,
  type ToxicChange,
  type ToxiproxyAction,
  type ToxiproxyHost,
  type ToxiproxyOutcome,
  type ToxiproxyState,
} from './toxiproxy-host.js';

/**
 * Created is what the primary remembers of a proxy created through the API: the
 * address each worker's listener was last bound with (node:cluster shares a socket by
 * the address asked for, so a port 0 stays `:0` here), the listener's own address
 * now (its port once bound), its targets and whether it listens.
 */
interface Created {
  readonly options: ListenerOptions;
  boundWith: string | number;
  listen: string | number;
  targets: readonly string[];
  enabled: boolean;
}

/** ClusterToxiproxy applies the Toxiproxy API's changes in every worker and keeps them for new ones. */
export class ClusterToxiproxy implements ToxiproxyHost {
  readonly #pool: WorkerPool;
  readonly #listeners: () => Promise<ListenerInfo[]>;
  readonly #log: Logger;
  /** #synced: the workers that have every change so far (started ones are caught up first). */
  readonly #synced = new Set<number>();
  /** #queue: changes and catch-ups, one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #deleted = new Set<string>();
  readonly #created = new Map<string, Created>();
  /** #changed: changes to listeners of the flags or the config file, merged. */
  readonly #changed = new Map<string, ListenerChange>();
  readonly #toxics = new Map<string, readonly Toxic[]>();

  constructor(pool: WorkerPool, listeners: () => Promise<ListenerInfo[]>, log: Logger) {
    this.#pool = pool;
    this.#listeners = listeners;
    this.#log = log;
  }

  listenerInfo(): Promise<readonly ListenerInfo[]> {
    return this.#listeners();
  }

  async createListener(options: ListenerOptions, enabled = true): Promise<ListenerInfo | 'exists'> {
    const info = (await this.#apply({ op: 'create', options, enabled })) as ListenerInfo | 'exists';
    if (info === 'exists') return info;
    this.#deleted.delete(info.name);
    this.#changed.delete(info.name);
    this.#toxics.delete(info.name);
    this.#created.set(info.name, {
      options,
      boundWith: options.listen,
      listen: enabled ? info.address : options.listen,
      targets: info.targets.map((t) => t.address),
      enabled,
    });
    return info;
  }

  async changeListener(
    name: string,
    change: ListenerChange,
  ): Promise<ListenerInfo | 'no_listener'> {
    const info = (await this.#apply({ op: 'change', name, change })) as
      | ListenerInfo
      | 'no_listener';
    if (info === 'no_listener') return info;
    const created = this.#created.get(name);
    if (created === undefined) {
      this.#changed.set(name, { ...this.#changed.get(name), ...definedOf(change) });
      return info;
    }
    const enabled = change.enabled ?? created.enabled;
    // A listener binds again when it moves while enabled, or when it is enabled again,
    // with its own address then; once bound, that is its port.
    const binds = enabled && (change.listen !== undefined || !created.enabled);
    if (change.listen !== undefined) created.listen = change.listen;
    if (binds) {
      created.boundWith = created.listen;
      created.listen = info.address;
    }
    created.enabled = enabled;
    created.targets = info.targets.map((t) => t.address);
    return info;
  }

  async deleteListener(name: string): Promise<boolean> {
    const deleted = (await this.#apply({ op: 'delete', name })) as boolean;
    if (deleted) {
      this.#created.delete(name);
      this.#changed.delete(name);
      this.#toxics.delete(name);
      this.#deleted.add(name);
    }
    return deleted;
  }

  async changeToxics(name: string, change: ToxicChange): Promise<readonly Toxic[] | 'no_listener'> {
    const toxics = (await this.#apply({ op: 'toxics', name, change })) as
      | readonly Toxic[]
      | 'no_listener';
    if (toxics !== 'no_listener') this.#toxics.set(name, toxics);
    return toxics;
  }

  /** state is what the API has changed so far, as a worker started now must apply it. */
  state(): ToxiproxyState {
    const proxies: ProxyRecord[] = [];
    for (const [name, change] of this.#changed) proxies.push({ name, create: undefined, change });
    for (const [name, c] of this.#created) {
      const listen = c.enabled ? c.boundWith : c.listen;
      proxies.push({
        name,
        create: { options: { ...c.options, listen, targets: c.targets }, enabled: c.enabled },
        change: { listen, targets: c.targets, enabled: c.enabled },
      });
    }
    return { deleted: [...this.#deleted], proxies, toxics: [...this.#toxics] };
  }

  /**
   * workerReady catches a worker that has just started up with every change so far;
   * only then do further changes go to it too.
   */
  workerReady(id: number): void {
    void this.#oneAtATime(async () => {
      const state = this.state();
      const empty =
        state.deleted.length === 0 && state.proxies.length === 0 && state.toxics.length === 0;
      if (!empty) {
        try {
          const outcome = await this.#pool.ask(id, {
            kind: 'toxiproxy',
            action: { op: 'sync', state },
          });
          if (!outcome.ok) throw outcomeError(outcome);
        } catch (err) {
          this.#log.warn('worker did not take the toxiproxy state', {
            worker: id,
            message: err instanceof Error ? err.message : String(err),
          });
        }
      }
      this.#synced.add(id);
    });
  }

  /** #apply sends `action` to every caught-up worker; the first worker's outcome is the answer. */
  #apply(action: ToxiproxyAction): Promise<unknown> {
    return this.#oneAtATime(async () => {
      const ids = this.#pool.readyWorkers().filter((id) => this.#synced.has(id));
      if (ids.length === 0)
        throw new ProxyError('PROXY_ERR_WORKER', `toxiproxy ${action.op}: no worker is running`);
      const settled = await Promise.allSettled(
        ids.map((id) => this.#pool.ask(id, { kind: 'toxiproxy', action })),
      );
      const outcomes: ToxiproxyOutcome[] = [];
      for (const [i, result] of settled.entries()) {
        if (result.status === 'fulfilled') outcomes.push(result.value);
        // One that exited meanwhile is left out; one alive that did not answer fails the change.
        else if (this.#pool.readyWorkers().includes(ids[i] as number)) throw result.reason;
      }
      const first = outcomes[0];
      if (first === undefined)
        throw new ProxyError('PROXY_ERR_WORKER', `toxiproxy ${action.op}: no worker answered`);
      if (outcomes.some((o) => o.ok !== first.ok)) {
        this.#log.error('toxiproxy change applied by some workers only', { op: action.op });
      }
      if (!first.ok) throw outcomeError(first);
      return first.value;
    });
  }

  #oneAtATime<T>(run: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(run);
    this.#queue = result.catch(() => {});
    return result;
  }
}

/** definedOf: the fields of a change that are given. */
function definedOf(change: ListenerChange): ListenerChange {
  return Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined));
}
