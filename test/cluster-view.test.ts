/**
 * ClusterView (src/cluster-view.ts) with a pool of fake workers: how answers are
 * merged, how prefixed connection ids are routed, and what happens when a worker is
 * gone or does not answer. The real processes are tested in test/e2e/workers.test.ts.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WorkerAnswers, WorkerRequest } from '../src/cluster-protocol.js';
import { ClusterView, mergeListeners, type WorkerPool } from '../src/cluster-view.js';
import { DEFAULTS } from '../src/config/config.js';
import { settingsJson } from '../src/config/options.js';
import { ProxyError } from '../src/errors.js';
import type { ConnectionInfo, ListenerInfo, StatsSnapshot } from '../src/index.js';
import { Logger } from '../src/log.js';
import { emptySnapshot } from '../src/stats.js';

function stats(partial: Partial<StatsSnapshot>): StatsSnapshot {
  return { ...emptySnapshot(), ...partial };
}

function listener(name: string, partial: Partial<StatsSnapshot>, connects = 0): ListenerInfo {
  return {
    name,
    state: 'serving',
    listen: '127.0.0.1:8080',
    address: '127.0.0.1:8080',
    ...settingsJson(DEFAULTS),
    targets: [
      {
        address: '127.0.0.1:9000',
        weight: 1,
        backup: false,
        state: 'up',
        connections: 0,
        connects,
        failures: connects > 0 ? { ECONNREFUSED: 1 } : {},
      },
    ],
    stats: stats(partial),
  };
}

function connection(id: string): ConnectionInfo {
  return {
    id,
    listener: 'web',
    state: 'relaying',
    client: '127.0.0.1:50000',
    upstream: '127.0.0.1:9000',
    bytesToUpstream: 1,
    bytesToClient: 2,
    bytesFromClient: 1,
    bytesFromUpstream: 2,
    attempts: 1,
    connectFailures: [],
    buffered: 0,
    connectMs: 1,
    ageMs: 10,
    cause: null,
    firstClose: null,
    error: undefined,
  };
}

type Behaviour = (request: WorkerRequest) => Promise<unknown>;

/** FakePool answers for each worker id with its behaviour and records every request. */
class FakePool implements WorkerPool {
  readonly asked: [number, WorkerRequest][] = [];
  readonly workers: Map<number, Behaviour>;
  constructor(workers: Record<number, Behaviour>) {
    this.workers = new Map(Object.entries(workers).map(([id, b]) => [Number(id), b]));
  }
  uptimeMs(): number {
    return 1234;
  }
  readyWorkers(): number[] {
    return [...this.workers.keys()];
  }
  ask<K extends WorkerRequest['kind']>(
    id: number,
    request: Extract<WorkerRequest, { kind: K }>,
  ): Promise<WorkerAnswers[K]> {
    this.asked.push([id, request]);
    const behaviour = this.workers.get(id);
    if (behaviour === undefined) return Promise.reject(new Error(`no worker ${id}`));
    return behaviour(request) as Promise<WorkerAnswers[K]>;
  }
}

const quiet = new Logger({ level: 'silent' });

describe('mergeListeners', () => {
  test('sums counters per listener and per target, in first-seen order', () => {
    const merged = mergeListeners([
      [
        listener(
          'web',
          { accepted: 3, active: 1, closed: { client_fin: 2 }, bytesToClient: 10 },
          2,
        ),
        listener('db', { accepted: 1 }),
      ],
      [listener('web', { accepted: 4, active: 2, closed: { client_fin: 1, shutdown: 1 } }, 5)],
    ]);
    assert.deepEqual(
      merged.map((l) => l.name),
      ['web', 'db'],
    );
    const web = merged[0] as ListenerInfo;
    assert.equal(web.stats.accepted, 7);
    assert.equal(web.stats.active, 3);
    assert.deepEqual(web.stats.closed, { client_fin: 3, shutdown: 1 });
    assert.equal(web.stats.bytesToClient, 10);
    assert.equal(web.targets[0]?.connects, 7);
    assert.deepEqual(web.targets[0]?.failures, { ECONNREFUSED: 2 });
    assert.equal(merged[1]?.stats.accepted, 1);
  });

  test("sums each SNI route's targets over the workers", () => {
    const withRoutes = (connections: number): ListenerInfo => {
      const base = listener('tls', {}, 1);
      const target = { ...(base.targets[0] as ListenerInfo['targets'][number]), connections };
      return {
        ...base,
        routes: [
          { sni: 'a.example.com', targets: [target] },
          { sni: null, targets: [target] },
        ],
      };
    };
    const [merged] = mergeListeners([[withRoutes(1)], [withRoutes(2)]]);
    assert.deepEqual(
      merged?.routes?.map((r) => [r.sni, r.targets.map((t) => [t.connections, t.connects])]),
      [
        ['a.example.com', [[3, 2]]],
        [null, [[3, 2]]],
      ],
    );
  });

  test('a listener is serving if any worker serves it, removing only if every worker removes it', () => {
    const removing = (name: string): ListenerInfo => ({
      ...listener(name, { active: 1 }),
      state: 'removing',
    });
    const merged = mergeListeners([
      [removing('web'), removing('old')],
      [listener('web', {}), removing('old')],
    ]);
    assert.deepEqual(
      merged.map((l) => [l.name, l.state, l.stats.active]),
      [
        ['web', 'serving', 1],
        ['old', 'removing', 2],
      ],
    );
  });
});

describe('ClusterView', () => {
  test('lists every worker’s connections with ids prefixed by the worker id', async () => {
    const pool = new FakePool({
      1: async () => [connection('1'), connection('2')],
      3: async () => [connection('1')],
    });
    const view = new ClusterView(pool, quiet);
    const ids = (await view.connections()).map((c) => c.id);
    assert.deepEqual(ids, ['1:1', '1:2', '3:1']);
  });

  test('routes closeConnection to the worker named by the prefix, and only there', async () => {
    const pool = new FakePool({ 1: async () => false, 2: async () => true });
    const view = new ClusterView(pool, quiet);
    assert.equal(await view.closeConnection('2:17', { reset: true }), true);
    assert.deepEqual(pool.asked, [[2, { kind: 'close', id: '17', reset: true }]]);
    for (const id of ['17', '9:1', 'x:1', ':1']) {
      assert.equal(await view.closeConnection(id), false, id);
    }
    assert.equal(pool.asked.length, 1, 'nothing else was asked');
  });

  test('leaves out a worker that exits while being asked', async () => {
    const pool = new FakePool({
      1: async () => [listener('web', { accepted: 2 })],
      2: async () => {
        pool.workers.delete(2); // gone by the time the rejection arrives
        throw new ProxyError('PROXY_ERR_WORKER', 'worker 2 exited');
      },
    });
    const view = new ClusterView(pool, quiet);
    const [web] = await view.listenerInfo();
    assert.equal(web?.stats.accepted, 2);
  });

  test('fails the whole answer when a live worker does not answer in time', async () => {
    const pool = new FakePool({
      1: async () => [listener('web', { accepted: 2 })],
      2: async () => {
        throw new ProxyError('PROXY_ERR_WORKER', 'worker 2 did not answer listeners within 2000ms');
      },
    });
    const view = new ClusterView(pool, quiet);
    await assert.rejects(view.listenerInfo(), { code: 'PROXY_ERR_WORKER' });
  });

  test('drains in every worker, sums the target, and drains again in a worker started later', async () => {
    const target = (connects: number) => async (request: WorkerRequest) =>
      request.kind === 'drain'
        ? { address: request.address, weight: 1, state: 'drained', connects, failures: {} }
        : undefined;
    const pool = new FakePool({ 1: target(2), 2: target(3) });
    const view = new ClusterView(pool, quiet);
    const result = await view.setTargetDrained('web', '127.0.0.1:9000', true);
    assert.ok(typeof result === 'object');
    assert.equal(result.connects, 5);
    assert.equal(result.state, 'drained');
    pool.workers.set(5, target(0));
    pool.asked.length = 0;
    view.workerReady(5);
    assert.deepEqual(pool.asked, [
      [5, { kind: 'drain', listener: 'web', address: '127.0.0.1:9000', drained: true }],
    ]);
    // Undrained: nothing to apply to the next newcomer.
    await view.setTargetDrained('web', '127.0.0.1:9000', false);
    pool.asked.length = 0;
    view.workerReady(6);
    assert.deepEqual(pool.asked, []);
  });

  test('a drain of an unknown listener or target answers as a single process would', async () => {
    const pool = new FakePool({ 1: async () => 'no_target', 2: async () => 'no_target' });
    const view = new ClusterView(pool, quiet);
    assert.equal(await view.setTargetDrained('web', 'x:1', true), 'no_target');
  });

  test('reload rejects with the first refusal and says which workers applied it', async () => {
    const lines: string[] = [];
    const log = new Logger({ level: 'error', format: 'json', write: (l) => lines.push(l) });
    const result = { added: [], removed: [], changed: ['web'] };
    const refusal = new ProxyError('PROXY_ERR_INVALID_CONFIG', 'proxy.yaml:1:1: bad');
    const pool = new FakePool({
      1: async () => result,
      2: async () => {
        throw refusal;
      },
    });
    const view = new ClusterView(pool, log);
    await assert.rejects(view.reload(), refusal);
    assert.equal(lines.length, 1);
    assert.deepEqual(JSON.parse(lines[0] ?? '{}').applied, ['1']);
    pool.workers.set(2, async () => result);
    assert.deepEqual(await view.reload(), result);
  });

  test('adds up the workers’ histograms bucket by bucket', async () => {
    const histogram = (count: number) => [
      {
        name: 'h_seconds',
        help: 'h',
        type: 'histogram',
        aggregator: 'sum',
        values: [
          { labels: { le: 1 }, value: count, metricName: 'h_seconds_bucket' },
          { labels: { le: '+Inf' }, value: count, metricName: 'h_seconds_bucket' },
          { labels: {}, value: count * 0.5, metricName: 'h_seconds_sum' },
          { labels: {}, value: count, metricName: 'h_seconds_count' },
        ],
      },
    ];
    const pool = new FakePool({ 1: async () => histogram(2), 2: async () => histogram(3) });
    const view = new ClusterView(pool, quiet);
    const text = await (await view.histograms()).metrics();
    assert.match(text, /^h_seconds_bucket\{le="\+Inf"\} 5$/m);
    assert.match(text, /^h_seconds_count 5$/m);
    assert.match(text, /^h_seconds_sum 2\.5$/m);
  });
});
