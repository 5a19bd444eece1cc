/**
 * ClusterToxiproxy (src/cluster-toxiproxy.ts), the primary's Toxiproxy host of
 * `--workers N`, over "workers" that are real proxies in this process: each one
 * answers the primary's `toxiproxy` requests as a worker does (runToxiproxyAction on
 * its own Supervisor, one at a time). Every change reaches every caught-up worker,
 * and a worker that starts later is given every change so far before the next one.
 * test/e2e/toxiproxy-workers.test.ts does the same through the built CLI.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { WorkerAnswers, WorkerRequest } from '../src/cluster-protocol.js';
import { ClusterToxiproxy } from '../src/cluster-toxiproxy.js';
import type { WorkerPool } from '../src/cluster-view.js';
import { createSupervisor } from '../src/create-proxy.js';
import { parseToxic, updateToxic } from '../src/faults/toxic.js';
import { Logger } from '../src/log.js';
import type { ListenerInfo } from '../src/proxy-info.js';
import type { Supervisor } from '../src/supervisor.js';
import {
  localToxiproxyHost,
  runToxiproxyAction,
  type ToxiproxyAction,
  type ToxiproxyOutcome,
} from '../src/toxiproxy-host.js';
import { echo, startUpstream } from './helpers/net.js';

/** InProcessPool: workers that are Supervisors here, answering as cluster-worker.ts does. */
class InProcessPool implements WorkerPool {
  readonly workers = new Map<number, Supervisor>();
  readonly #queues = new Map<number, Promise<unknown>>();

  uptimeMs(): number {
    return 0;
  }

  readyWorkers(): number[] {
    return [...this.workers.keys()];
  }

  async ask<K extends WorkerRequest['kind']>(
    id: number,
    request: Extract<WorkerRequest, { kind: K }>,
  ): Promise<WorkerAnswers[K]> {
    const proxy = this.workers.get(id);
    if (proxy === undefined) throw new Error(`worker ${id} is not running`);
    if (request.kind === 'listeners') return proxy.listenerInfo() as WorkerAnswers[K];
    assert.equal(request.kind, 'toxiproxy');
    const action = (request as { action: ToxiproxyAction }).action;
    // Through JSON, as over the IPC channel.
    const copy = JSON.parse(JSON.stringify(action)) as ToxiproxyAction;
    const host = localToxiproxyHost(proxy);
    const outcome: Promise<ToxiproxyOutcome> = (this.#queues.get(id) ?? Promise.resolve()).then(
      () => runToxiproxyAction(host, copy),
    );
    this.#queues.set(id, outcome);
    return JSON.parse(JSON.stringify(await outcome)) as WorkerAnswers[K];
  }
}

async function startWorker(t: TestContext, target: string): Promise<Supervisor> {
  const proxy = createSupervisor({
    listeners: [
      { name: 'file', listen: '127.0.0.1:0', targets: [target] },
      { name: 'gone', listen: '127.0.0.1:0', targets: [target] },
    ],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  return proxy;
}

/** view: what a worker has, as the state to compare: names, state, targets, toxics. */
function view(proxy: Supervisor): unknown[] {
  return proxy
    .listenerInfo()
    .map((l: ListenerInfo) => [
      l.name,
      l.state,
      l.targets.map((target) => target.address),
      (l.toxics ?? []).map((toxic) => `${toxic.name}:${JSON.stringify(toxic.attributes)}`),
    ]);
}

test('every change reaches every worker, and a worker started later gets them all before the next', async (t) => {
  const upstream = await startUpstream(t, echo);
  const other = await startUpstream(t, echo);
  const pool = new InProcessPool();
  const host = new ClusterToxiproxy(
    pool,
    async () => pool.workers.get(1)?.listenerInfo() ?? [],
    new Logger({ level: 'silent' }),
  );
  pool.workers.set(1, await startWorker(t, upstream.address));
  pool.workers.set(2, await startWorker(t, upstream.address));
  host.workerReady(1);
  host.workerReady(2);

  const made = await host.createListener({
    name: 'api',
    listen: '127.0.0.1:0',
    targets: [upstream.address],
  });
  assert.ok(made !== 'exists' && made.state === 'serving');
  assert.equal(await host.createListener({ name: 'api', listen: '127.0.0.1:0' }), 'exists');
  await host.createListener(
    { name: 'off', listen: '127.0.0.1:0', targets: [other.address] },
    false,
  );
  assert.equal(await host.deleteListener('gone'), true);
  await host.changeListener('file', { targets: [other.address] });
  const latency = parseToxic({ type: 'latency', attributes: { latency: 5 } });
  await host.changeToxics('api', { op: 'add', toxic: latency });
  await host.changeToxics('file', {
    op: 'add',
    toxic: parseToxic({ name: 'cut', type: 'limit_data', attributes: { bytes: 9 } }),
  });
  await host.changeToxics('api', {
    op: 'update',
    toxic: updateToxic(latency, { attributes: { latency: 7 } }),
  });
  // A refusal keeps Toxiproxy's status and text.
  await assert.rejects(host.changeToxics('api', { op: 'add', toxic: latency }), {
    status: 409,
    message: 'toxic already exists',
  });
  const expected = [
    ['file', 'serving', [other.address], ['cut:{"bytes":9}']],
    ['api', 'serving', [upstream.address], ['latency_downstream:{"latency":7,"jitter":0}']],
    ['off', 'disabled', [other.address], []],
  ];
  assert.deepEqual(view(pool.workers.get(1) as Supervisor), expected);
  assert.deepEqual(view(pool.workers.get(2) as Supervisor), expected);

  // Worker 2 dies; worker 3 starts from the config alone and is caught up first.
  await pool.workers.get(2)?.close({ graceful: false });
  pool.workers.delete(2);
  pool.workers.set(3, await startWorker(t, upstream.address));
  host.workerReady(3);
  const noop = parseToxic({ type: 'noop', stream: 'upstream' });
  await host.changeToxics('api', { op: 'add', toxic: noop });
  const after = expected.map((l) =>
    l[0] === 'api' ? [...l.slice(0, 3), ['noop_upstream:{}', ...(l[3] as string[])]] : l,
  );
  assert.deepEqual(view(pool.workers.get(3) as Supervisor), after);
  assert.deepEqual(view(pool.workers.get(1) as Supervisor), after);
});
