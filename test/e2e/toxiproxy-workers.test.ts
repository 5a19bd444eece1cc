/**
 * The Toxiproxy API with `--workers 2` (issue #12: "with --workers N every worker
 * applies the same toxics"): the npm `toxiproxy-node-client` drives the primary's
 * admin server; a proxy it creates listens in both workers, a toxic it adds
 * (limit_data, then latency) acts on connections in both (the access record's `worker`
 * field tells them apart), removing it takes effect in both, and a worker started in place of a dead one gets the same
 * proxies and toxics. Every wait is bounded. Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type Proxy as ApiProxy, Toxiproxy } from 'toxiproxy-node-client';
import { type CliChild, withTimeout } from '../helpers/cli.js';
import { killQuietly, spawnCluster, type WorkerRecord } from '../helpers/cluster.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';

interface Cluster {
  cli: CliChild;
  base: string;
  toxiproxy: Toxiproxy;
  records(): WorkerRecord[];
  /** pids maps worker id to PID, from the `worker started` records so far. */
  pids(): Map<number, number>;
}

/** startCluster runs `--workers 2 --admin 127.0.0.1:0` with no listener, and waits for both workers. */
async function startCluster(t: TestContext): Promise<Cluster> {
  const cli = spawnCluster(t, ['--workers', '2', '--admin', '127.0.0.1:0']);
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 10_000, 'admin');
  const base = `http://${admin.address}`;
  return { cli, base, toxiproxy: new Toxiproxy(base), records: cli.wrecords, pids: cli.pids };
}

function portOf(proxy: ApiProxy): number {
  return Number(/:(\d+)$/.exec(proxy.listen)?.[1]);
}

/** listeningIn: the workers that logged `listening` for listener `name`. */
function listeningIn(cluster: Cluster, name: string): number[] {
  return cluster
    .records()
    .filter((r) => r.msg === 'listening' && r['listener'] === name)
    .map((r) => r.worker as number);
}

/**
 * exchange sends `payload` on a new connection and half-closes; resolves, once it
 * closed, with what came back and how long after sending the first byte came back.
 */
async function exchange(t: TestContext, port: number, payload: string): Promise<[string, number]> {
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  const sentAt = performance.now();
  let firstMs = Number.NaN;
  client.socket.once('data', () => {
    firstMs = performance.now() - sentAt;
  });
  client.socket.end(payload);
  await withTimeout(client.closed, 5000, 'the connection to close');
  return [client.received().toString(), firstMs];
}

/**
 * connectionsUntilBothWorkers opens connections one after another until the access
 * records show both `workers` served some (at most 20), each checked by `check`.
 * Resolves with the records of those connections.
 */
async function connectionsUntilBothWorkers(
  t: TestContext,
  cluster: Cluster,
  port: number,
  workers: readonly number[],
  check: (received: string, firstMs: number) => void,
): Promise<WorkerRecord[]> {
  const before = closed(cluster).length;
  for (let i = 1; i <= 20; i++) {
    check(...(await exchange(t, port, `connection ${i} says hello`)));
    await waitFor(() => closed(cluster).length === before + i, 5000, `access record ${i}`);
    const mine = closed(cluster).slice(before);
    if (workers.every((w) => mine.some((r) => r.worker === w))) return mine;
  }
  assert.fail(`20 connections did not reach both workers ${workers.join(', ')}`);
}

function closed(cluster: Cluster): WorkerRecord[] {
  return cluster.records().filter((r) => r.msg === 'connection closed');
}

test('--workers 2: a proxy and a toxic made over the Toxiproxy API act in both workers; removing it too', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t);
  const workers = [...cluster.pids().keys()];
  assert.equal(workers.length, 2);

  const proxy = await cluster.toxiproxy.createProxy({
    name: 'echo',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  assert.match(proxy.listen, /^127\.0\.0\.1:[1-9]\d*$/);
  // Each worker logs its own `listening` (lines may reach stderr up to 25 ms late).
  await waitFor(
    () => listeningIn(cluster, 'echo').length === 2,
    5000,
    'both workers to listen on the proxy',
  );
  assert.deepEqual(listeningIn(cluster, 'echo').sort(), [...workers].sort());
  const port = portOf(proxy);

  await proxy.addToxic({
    name: 'cut',
    type: 'limit_data',
    stream: 'downstream',
    toxicity: 1,
    attributes: { bytes: 5 },
  } as never);
  const cut = await connectionsUntilBothWorkers(t, cluster, port, workers, (received) =>
    assert.equal(received, 'conne', 'limit_data lets 5 bytes through'),
  );
  for (const r of cut) assert.deepEqual([r.cause, r.toxic], ['toxic', 'cut'], `worker ${r.worker}`);
  const listed = (await (await fetch(`${cluster.base}/proxies/echo/toxics`)).json()) as {
    name: string;
  }[];
  assert.deepEqual(
    listed.map((toxic) => toxic.name),
    ['cut'],
  );

  await (await proxy.getToxic('cut')).remove();
  await proxy.addToxic({
    name: 'slow',
    type: 'latency',
    stream: 'downstream',
    attributes: { latency: 1000, jitter: 0 },
  } as never);
  await connectionsUntilBothWorkers(t, cluster, port, workers, (received, firstMs) => {
    assert.match(received, /^connection \d+ says hello$/, 'the whole echo');
    assert.ok(firstMs >= 1000, `the latency held the echo back: ${firstMs} ms`);
  });
  await (await proxy.getToxic('slow')).remove();
  const clean = await connectionsUntilBothWorkers(
    t,
    cluster,
    port,
    workers,
    (received, firstMs) => {
      assert.match(received, /^connection \d+ says hello$/, 'the whole echo');
      // Well under the removed latency of 1 s, even on a loaded machine.
      assert.ok(firstMs < 1000, `no latency any more: ${firstMs} ms`);
    },
  );
  for (const r of clean) assert.equal(r.cause, 'client_fin', `worker ${r.worker}`);
});

test('--workers 2: a worker started in place of a dead one gets the proxies and toxics', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t);
  const proxy = await cluster.toxiproxy.createProxy({
    name: 'echo',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  await proxy.addToxic({
    name: 'cut',
    type: 'limit_data',
    stream: 'downstream',
    attributes: { bytes: 3 },
  } as never);
  const [first, second] = [...cluster.pids().entries()];
  assert.ok(first !== undefined && second !== undefined);
  killQuietly(first[1]);
  await waitFor(() => cluster.pids().size === 3, 10_000, 'a worker in place of the dead one');
  const replacement = Math.max(...cluster.pids().keys());
  await waitFor(
    () => listeningIn(cluster, 'echo').includes(replacement),
    10_000,
    'the new worker to listen on the proxy',
  );
  const records = await connectionsUntilBothWorkers(
    t,
    cluster,
    portOf(proxy),
    [second[0], replacement],
    (received) => assert.equal(received, 'con', 'limit_data lets 3 bytes through'),
  );
  for (const r of records)
    assert.deepEqual([r.cause, r.toxic], ['toxic', 'cut'], `worker ${r.worker}`);
});
