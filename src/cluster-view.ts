/**
 * ClusterView: the admin server's view of several worker processes (`--workers N`).
 * It lives in the primary and answers each question by asking every ready worker
 * over IPC (see `ClusterPrimary.ask`, which puts a deadline on each answer) and
 * merging what comes back:
 *
 * - counters are summed: per listener (by name), per target (by address), per close
 *   cause and error code (`sumSnapshots`);
 * - connections are listed together, each id prefixed with its worker's id (`2:17`),
 *   so that `closeConnection('2:17')` goes to worker 2 alone;
 * - actions (drain, undrain, reload) go to every worker. A drain is remembered and
 *   applied again to a worker started later, in place of one that died;
 * - the latency histograms are added bucket by bucket (prom-client's
 *   `AggregatorRegistry.aggregate`).
 *
 * A worker that exits while being asked is left out of the answer (its counters are
 * gone with it); one that is alive but does not answer in time fails the whole
 * question with PROXY_ERR_WORKER (the admin API answers 503), rather than showing a
 * sum that silently misses a worker.
 */
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { HistogramSource, ProxyView } from './admin/view.js';
import type { WorkerAnswers, WorkerRequest } from './cluster-protocol.js';
import type { ConnectionInfo } from './connection-info.js';
import { ProxyError } from './errors.js';
import type { Logger } from './log.js';
import type { ListenerInfo, ReloadResult, RouteInfo, TargetInfo } from './proxy-info.js';
import { addCounts, sumSnapshots } from './stats.js';

/** WorkerPool is what the view needs from the primary: who is ready, and a way to ask. */
export interface WorkerPool {
  uptimeMs(): number;
  readyWorkers(): number[];
  ask<K extends WorkerRequest['kind']>(
    id: number,
    request: Extract<WorkerRequest, { kind: K }>,
  ): Promise<WorkerAnswers[K]>;
  /** drained hears of a drain or undrain every worker applied (the shared target health follows it). */
  drained?(listener: string, address: string, drained: boolean): void;
}

type DrainRequest = Extract<WorkerRequest, { kind: 'drain' }>;

/** ClusterView merges the workers' answers into one proxy's, for the admin server and metrics. */
export class ClusterView implements ProxyView, HistogramSource {
  readonly #pool: WorkerPool;
  readonly #log: Logger;
  /** #drains: targets taken out of rotation, by `listener\naddress`, to apply to new workers. */
  readonly #drains = new Map<string, DrainRequest>();

  constructor(pool: WorkerPool, log: Logger) {
    this.#pool = pool;
    this.#log = log;
  }

  uptimeMs(): number {
    return this.#pool.uptimeMs();
  }

  async connections(): Promise<ConnectionInfo[]> {
    const answers = await this.#askAll({ kind: 'connections' });
    return answers.flatMap(([id, list]) => list.map((c) => ({ ...c, id: `${id}:${c.id}` })));
  }

  async listenerInfo(): Promise<ListenerInfo[]> {
    const answers = await this.#askAll({ kind: 'listeners' });
    return mergeListeners(answers.map(([, list]) => list));
  }

  /** closeConnection routes `WORKER:ID` to that worker; any other id is not found. */
  async closeConnection(id: string, { reset = false }: { reset?: boolean } = {}): Promise<boolean> {
    const match = /^(\d+):(.+)$/.exec(id);
    const worker = Number(match?.[1]);
    if (match === null || !this.#pool.readyWorkers().includes(worker)) return false;
    try {
      return await this.#pool.ask(worker, { kind: 'close', id: match[2] ?? '', reset });
    } catch (err) {
      if (this.#pool.readyWorkers().includes(worker)) throw err;
      return false; // it exited meanwhile, and its connections with it
    }
  }

  async setTargetDrained(
    listener: string,
    address: string,
    drained: boolean,
  ): Promise<TargetInfo | 'no_listener' | 'no_target'> {
    const request: DrainRequest = { kind: 'drain', listener, address, drained };
    const answers = (await this.#askAll(request)).map(([, answer]) => answer);
    const refusal = answers.find((a) => typeof a === 'string');
    if (refusal !== undefined || answers.length === 0) return refusal ?? 'no_listener';
    const key = `${listener}\n${address}`;
    if (drained) this.#drains.set(key, request);
    else this.#drains.delete(key);
    this.#pool.drained?.(listener, address, drained);
    return mergeTargets(answers as TargetInfo[])[0] as TargetInfo;
  }

  /**
   * reload asks every worker to re-read the config file; each logs `config reloaded`
   * or why it refused. Rejects with the first refusal if any worker refused.
   */
  async reload(): Promise<ReloadResult> {
    const ids = this.#pool.readyWorkers();
    if (ids.length === 0) throw new ProxyError('PROXY_ERR_WORKER', 'reload: no worker is running');
    const settled = await Promise.allSettled(
      ids.map((id) => this.#pool.ask(id, { kind: 'reload' })),
    );
    const applied = ids.filter((_, i) => settled[i]?.status === 'fulfilled');
    const refused = settled.find((r) => r.status === 'rejected');
    if (refused !== undefined) {
      if (applied.length > 0) {
        // Workers read the file at slightly different times; say plainly that they differ now.
        this.#log.error('config reload applied by some workers only', {
          applied: applied.map(String),
          refused: ids.filter((id) => !applied.includes(id)).map(String),
        });
      }
      throw refused.reason;
    }
    const first = settled[0];
    return (first as PromiseFulfilledResult<ReloadResult>).value;
  }

  /** histograms adds up every worker's latency histograms. */
  async histograms(): Promise<Registry> {
    const answers = await this.#askAll({ kind: 'histograms' });
    return AggregatorRegistry.aggregate(answers.map(([, metrics]) => metrics));
  }

  /** workerReady applies the remembered drains to a worker that has just started. */
  workerReady(id: number): void {
    for (const request of this.#drains.values()) {
      this.#pool.ask(id, request).catch(() => {});
    }
  }

  /** #askAll asks every ready worker; workers that exit meanwhile are left out. */
  async #askAll<K extends WorkerRequest['kind']>(
    request: Extract<WorkerRequest, { kind: K }>,
  ): Promise<[number, WorkerAnswers[K]][]> {
    const ids = this.#pool.readyWorkers();
    const answers = await Promise.all(
      ids.map((id) =>
        this.#pool.ask(id, request).then(
          (answer): [number, WorkerAnswers[K]] | null => [id, answer],
          (err: unknown) => {
            if (this.#pool.readyWorkers().includes(id)) throw err;
            return null;
          },
        ),
      ),
    );
    return answers.filter((a) => a !== null);
  }
}

/**
 * mergeListeners sums the listeners of several workers, matched by name, in first-seen
 * order; a listener is `serving` if any worker serves it, else `removing`.
 */
export function mergeListeners(answers: readonly (readonly ListenerInfo[])[]): ListenerInfo[] {
  const byName = new Map<string, ListenerInfo[]>();
  for (const list of answers) {
    for (const listener of list) {
      const same = byName.get(listener.name);
      if (same === undefined) byName.set(listener.name, [listener]);
      else same.push(listener);
    }
  }
  return Array.from(byName.values(), (same) => {
    const first = same[0] as ListenerInfo;
    return {
      ...first,
      state: same.some((l) => l.state === 'serving') ? 'serving' : 'removing',
      targets: mergeTargets(same.flatMap((l) => l.targets)),
      ...(first.routes === undefined ? {} : { routes: mergeRoutes(first.routes, same) }),
      stats: sumSnapshots(same.map((l) => l.stats)),
    };
  });
}

/** mergeRoutes sums each SNI route's targets over the workers that have the same route there. */
function mergeRoutes(routes: readonly RouteInfo[], same: readonly ListenerInfo[]): RouteInfo[] {
  return routes.map((route, i) => ({
    sni: route.sni,
    targets: mergeTargets(
      same.flatMap((l) => {
        const theirs = l.routes?.[i];
        return theirs?.sni === route.sni ? theirs.targets : [];
      }),
    ),
  }));
}

/**
 * mergeTargets sums targets with the same address; drained if any worker has it
 * drained, else down if any worker found it down.
 */
function mergeTargets(targets: readonly TargetInfo[]): TargetInfo[] {
  const byAddress = new Map<string, TargetInfo>();
  for (const t of targets) {
    const into = byAddress.get(t.address);
    if (into === undefined) {
      byAddress.set(t.address, { ...t, failures: { ...t.failures } });
      continue;
    }
    into.connects += t.connects;
    into.connections += t.connections;
    if (t.state === 'drained' || (t.state === 'down' && into.state === 'up')) into.state = t.state;
    addCounts(into.failures, t.failures);
  }
  return [...byAddress.values()];
}
