/**
 * `--workers N` end to end: the built CLI (dist/cli.js) runs as a primary process
 * that forks N workers with node:cluster. The tests find each worker's PID in the
 * primary's `worker started` record, kill processes by PID, and check what clients,
 * the log and the admin API see: both workers serve, a dead worker is replaced,
 * signals reach every worker, and the admin API sums the workers' counters. Every wait
 * is bounded. Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { type Cluster, killQuietly, startCluster, type WorkerRecord } from '../helpers/cluster.js';
import {
  connectClient,
  echo,
  patternBytes,
  type RecordingClient,
  refusedAddress,
  startUpstream,
  waitFor,
} from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

const LISTEN = '127.0.0.1:0';

/**
 * twoWorkers is the command line of two workers relaying to `target`, plus `more`. They
 * listen on a port just freed, not port 0: where Node.js has reusePort each worker then
 * binds its own socket (src/worker-accept.ts), so these tests run that path there.
 */
async function twoWorkers(target: string, ...more: string[]): Promise<string[]> {
  return ['--workers', '2', '--listen', await refusedAddress(), '--target', target, ...more];
}

function closedRecords(cluster: Cluster): WorkerRecord[] {
  return cluster.wrecords().filter((r) => r.msg === 'connection closed');
}

/** echoOnce connects, sends `payload`, half-closes and waits for the whole echo and the close. */
async function echoOnce(t: TestContext, port: number, payload: Buffer): Promise<RecordingClient> {
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  client.socket.end(payload);
  await withTimeout(client.closed, 5000, 'the echo to finish');
  assert.deepEqual(client.received(), payload);
  return client;
}

/** openEchoed opens a connection and waits until `text` came back through it; it stays open. */
async function openEchoed(t: TestContext, port: number, text: string): Promise<RecordingClient> {
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  client.socket.write(text);
  await waitFor(() => client.received().length === text.length, 5000, `the echo of ${text}`);
  return client;
}

/** closedByPeer waits until the proxy ended the client's connection: a FIN or a close. */
function closedByPeer(client: RecordingClient, what: string, timeoutMs = 2000): Promise<void> {
  let closed = false;
  void client.closed.then(() => {
    closed = true;
  });
  return waitFor(() => client.sawEnd || closed, timeoutMs, what);
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-workers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `GET ${url}`);
  return (await response.json()) as T;
}

// ---------------------------------------------------------------- relaying

test('--workers 2 relays many connections correctly, and both workers serve', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t, await twoWorkers(upstream.address));
  assert.equal(cluster.pids().size, 2);
  const count = 40;
  // Ten at a time, each with its own bytes.
  for (let batch = 0; batch < count / 10; batch++) {
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        echoOnce(t, cluster.port, patternBytes(10_000 + i * 997, batch * 10 + i + 1)),
      ),
    );
  }
  await waitFor(() => closedRecords(cluster).length === count, 5000, `${count} access records`);
  const records = closedRecords(cluster);
  assert.ok(
    records.every((r) => r.cause === 'client_fin'),
    'every connection ended normally',
  );
  const byWorker = new Map<number, number>();
  for (const r of records)
    byWorker.set(r.worker as number, (byWorker.get(r.worker as number) ?? 0) + 1);
  t.diagnostic(`connections per worker: ${JSON.stringify([...byWorker])}`);
  assert.deepEqual([...byWorker.keys()].sort(), [...cluster.pids().keys()].sort(), 'both served');
  // Round-robin gives each worker 20; with reusePort the kernel picks by a hash of the
  // client's port, a coin toss per connection: fewer than 8 of 40 for either is a 1-in-20,000 chance.
  for (const n of byWorker.values()) assert.ok(n >= count / 5, `a fair share: ${n} of ${count}`);
  for (const line of cluster.lines()) {
    assert.doesNotThrow(() => JSON.parse(line), `whole lines, never two mixed: ${line}`);
  }
});

test('--workers 1 is the single process: no worker field, no primary', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(t, [
    '--workers',
    '1',
    '-l',
    LISTEN,
    '-t',
    upstream.address,
    '--log-format',
    'json',
  ]);
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 5000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  await echoOnce(t, port, Buffer.from('one process'));
  await cli.waitForRecord((r) => r.msg === 'connection closed', 3000, 'the access record');
  const records = cli.records() as WorkerRecord[];
  assert.ok(
    records.every((r) => r.worker === undefined),
    'no record names a worker',
  );
  assert.ok(!records.some((r) => r.msg === 'workers listening' || r.msg === 'worker started'));
});

// ---------------------------------------------------------------- a worker dies

test('a worker killed by its PID is replaced, and service goes on', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t, await twoWorkers(upstream.address));
  const [[victim, victimPid]] = [...cluster.pids()] as [[number, number]];
  const open = await openEchoed(t, cluster.port, 'before');
  process.kill(victimPid, 'SIGKILL');

  const died = (await cluster.waitForRecord(
    (r) => r.msg === 'worker died',
    5000,
    'the primary to notice',
  )) as WorkerRecord;
  assert.equal(died.worker, victim);
  assert.equal(died.pid, victimPid);
  assert.equal(died.how, 'SIGKILL');
  await waitFor(() => cluster.pids().size === 3, 5000, 'a new worker to start');
  const newcomer = Math.max(...cluster.pids().keys());
  assert.notEqual(cluster.pids().get(newcomer), victimPid);
  assert.equal(cluster.exit, null, 'the primary keeps running');

  // New connections work, and the new worker takes its share of them.
  for (let i = 0; i < 8; i++) await echoOnce(t, cluster.port, Buffer.from(`after ${i}`));
  await waitFor(
    () => closedRecords(cluster).some((r) => r.worker === newcomer),
    3000,
    'the new worker to serve a connection',
  );
  // The connection the victim held died with it, or lives on in the survivor.
  if (!open.socket.destroyed) open.socket.destroy();
});

test('SIGTERM sent to one worker drains it; the primary starts another', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t, await twoWorkers(upstream.address));
  const [[worker, pid]] = [...cluster.pids()] as [[number, number]];
  process.kill(pid, 'SIGTERM');
  const stopped = (await cluster.waitForRecord(
    (r) => r.msg === 'worker stopped; starting another',
    5000,
    'the primary to notice',
  )) as WorkerRecord;
  assert.equal(stopped.worker, worker);
  await waitFor(() => cluster.pids().size === 3, 5000, 'a new worker');
  assert.ok(!cluster.wrecords().some((r) => r.msg === 'worker died'), 'not counted as a crash');
  await echoOnce(t, cluster.port, Buffer.from('still here'));
});

/** childPids lists the PIDs of `pid`'s children now (Linux: /proc/PID/task/PID/children). */
function childPids(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text
      .split(' ')
      .filter((x) => x !== '')
      .map(Number);
  } catch {
    return []; // the process is gone
  }
}

test('workers that keep dying make the primary give up with exit status 1', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t, await twoWorkers(upstream.address));
  const primary = cluster.child.pid as number;
  // Six deaths within 10 s: the first five are replaced, the sixth is one too many.
  // Each replacement is killed as soon as the primary has forked it, not once it has
  // started, so the six deaths fit in the window however slowly a busy machine starts
  // a worker.
  const killed = new Set<number>();
  t.after(() => {
    for (const pid of childPids(primary)) killQuietly(pid);
  });
  for (let death = 1; death <= 6; death++) {
    let victim: number | undefined;
    await waitFor(
      () => {
        victim = childPids(primary).find((pid) => !killed.has(pid));
        return victim !== undefined;
      },
      5000,
      `a worker to kill (death ${death})`,
    );
    killed.add(victim as number);
    killQuietly(victim as number);
  }
  const exit = await cluster.waitForExit(10_000);
  assert.equal(exit.status, 1, cluster.stderr());
  assert.ok(cluster.wrecords().some((r) => r.msg === 'workers keep dying; giving up'));
  const died = cluster.wrecords().filter((r) => r.msg === 'worker died').length;
  assert.equal(died, 6, `six deaths logged: ${cluster.stderr()}`);
});

// ---------------------------------------------------------------- signals

test('SIGTERM drains transfers in flight in every worker, then the primary exits 0', async (t) => {
  const chunks = 25; // one every 20 ms: about 500 ms per transfer
  // The last chunk and the FIN wait until the test has seen both workers draining: the
  // transfers are still in flight then, however slowly a busy machine passes the signal on.
  let lastChunkHeld = true;
  const upstream = await startUpstream(t, (socket) => {
    socket.resume();
    let sent = 0;
    const timer = setInterval(() => {
      if (sent === chunks - 1 && lastChunkHeld) return;
      sent += 1;
      socket.write(patternBytes(1024, sent));
      if (sent === chunks) {
        clearInterval(timer);
        socket.end();
      }
    }, 20);
    socket.on('close', () => clearInterval(timer));
  });
  const expected = Buffer.concat(
    Array.from({ length: chunks }, (_, i) => patternBytes(1024, i + 1)),
  );
  const cluster = await startCluster(
    t,
    await twoWorkers(upstream.address, '--shutdown-timeout', '10s', '--admin', '127.0.0.1:0'),
  );
  const admin = `http://${(await cluster.waitForRecord((r) => r.msg === 'admin listening')).address}`;
  const open = (): RecordingClient => {
    const client = connectClient(cluster.port);
    t.after(() => client.socket.destroy());
    void client.ended.then(() => client.socket.end());
    return client;
  };
  // Four transfers at least. Handed over, they go to the workers in turn; with reusePort
  // the kernel picks a worker by a hash of the client's address and port, so more are
  // opened (16 at most) until each worker holds one (the admin API says which holds which).
  const clients = Array.from({ length: 4 }, open);
  const workerOf = (c: { id: string }): string => c.id.split(':')[0] ?? '';
  for (;;) {
    await waitFor(() => clients.every((c) => c.received().length >= 1024), 3000, 'first chunks');
    const held = await getJson<{ id: string }[]>(`${admin}/api/connections`);
    if (new Set(held.map(workerOf)).size === 2 || clients.length >= 16) break;
    clients.push(open());
  }

  const signalAtMs = Date.now();
  process.kill(cluster.child.pid as number, 'SIGTERM');
  await waitFor(
    () => cluster.wrecords().filter((r) => r.msg === 'shutting down' && r.worker).length === 2,
    2000,
    'both workers to start draining',
  );
  const draining = cluster
    .wrecords()
    .filter((r) => r.msg === 'shutting down' && r.worker !== undefined);
  assert.ok(
    draining.every((r) => (r['connections' as keyof WorkerRecord] as number) >= 1),
    `each worker had a transfer in flight: ${JSON.stringify(draining)}`,
  );
  assert.equal(cluster.exit, null, 'still running while transfers are in flight');
  lastChunkHeld = false;

  for (const client of clients) await withTimeout(client.ended, 5000, 'a transfer to finish');
  for (const client of clients) assert.deepEqual(client.received(), expected, 'every byte');
  const exit = await cluster.waitForExit(5000);
  assert.equal(exit.status, 0, cluster.stderr());
  assert.ok(
    exit.atMs - signalAtMs < deadline(4000),
    `exited ${exit.atMs - signalAtMs}ms after SIGTERM`,
  );
  const records = closedRecords(cluster);
  assert.equal(records.length, clients.length);
  assert.ok(
    records.every((r) => r.cause === 'upstream_fin'),
    'each finished on its own',
  );
  assert.equal(
    cluster.wrecords().filter((r) => r.msg === 'stopped').length,
    3,
    'two workers and the primary',
  );
});

test('a second SIGTERM closes every worker’s connections and exits at once', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(
    t,
    await twoWorkers(upstream.address, '--shutdown-timeout', '30s'),
  );
  const clients = [
    await openEchoed(t, cluster.port, 'one'),
    await openEchoed(t, cluster.port, 'two'),
  ];
  const firstAtMs = Date.now();
  process.kill(cluster.child.pid as number, 'SIGTERM');
  await waitFor(
    () => cluster.wrecords().filter((r) => r.msg === 'shutting down' && r.worker).length === 2,
    2000,
    'both workers to start draining',
  );
  // Both connections are still relayed after the first signal (round trips show it, where
  // a sleep would only guess how long the workers need to act on the signal).
  for (const [i, c] of clients.entries()) {
    const before = c.received().length;
    c.socket.write(`still ${i}`);
    await waitFor(() => c.received().length === before + `still ${i}`.length, 3000, 'the echo');
  }
  assert.equal(cluster.exit, null, 'the first signal waits for the open connections');
  process.kill(cluster.child.pid as number, 'SIGTERM');
  const exit = await cluster.waitForExit(3000);
  assert.equal(exit.status, 0, cluster.stderr());
  assert.ok(exit.atMs - firstAtMs < deadline(3000));
  for (const c of clients) await closedByPeer(c, 'the client to see the close');
});

test('SIGHUP reloads the config file in every worker; a bad file is refused by each', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const a = await startUpstream(t, (s) => s.end('A'));
  const b = await startUpstream(t, (s) => s.end('B'));
  const text = (target: string): string =>
    `workers: 2\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    targets: [${target}]\n`;
  writeFileSync(file, text(a.address));
  const cluster = await startCluster(t, ['--config', file]);
  assert.equal(cluster.pids().size, 2, 'workers: 2 from the file');

  writeFileSync(file, text(b.address));
  process.kill(cluster.child.pid as number, 'SIGHUP');
  const reloaded = (): WorkerRecord[] =>
    cluster.wrecords().filter((r) => r.msg === 'config reloaded');
  await waitFor(() => reloaded().length === 2, 5000, 'a config reloaded record per worker');
  assert.deepEqual(
    reloaded()
      .map((r) => r.worker)
      .sort(),
    [...cluster.pids().keys()].sort(),
  );
  assert.ok(reloaded().every((r) => r.changed?.[0] === 'web'));
  // Whichever worker takes them, new connections go to the new target.
  for (let i = 0; i < 4; i++) {
    const client = connectClient(cluster.port);
    t.after(() => client.socket.destroy());
    await closedByPeer(client, 'the reply', 3000);
    assert.equal(client.received().toString(), 'B');
  }

  writeFileSync(file, 'listeners: [');
  process.kill(cluster.child.pid as number, 'SIGHUP');
  const refused = (): WorkerRecord[] =>
    cluster.wrecords().filter((r) => r.msg === 'config reload refused');
  await waitFor(() => refused().length === 2, 5000, 'a refusal per worker');
  assert.match(refused()[0]?.reason ?? '', /proxy\.yaml:\d+:\d+: /);
  assert.equal(cluster.exit, null, 'a refused reload stops nothing');
});

test('SIGUSR1 makes every worker log its snapshot', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cluster = await startCluster(t, await twoWorkers(upstream.address));
  process.kill(cluster.child.pid as number, 'SIGUSR1');
  await waitFor(
    () => cluster.wrecords().filter((r) => r.msg === 'snapshot').length === 2,
    3000,
    'two snapshots',
  );
  const workers = cluster
    .wrecords()
    .filter((r) => r.msg === 'snapshot')
    .map((r) => r.worker)
    .sort();
  assert.deepEqual(workers, [...cluster.pids().keys()].sort());
});

// ---------------------------------------------------------------- the admin API

/** clusterWithAdmin starts two workers in front of `target` with the admin server in the primary. */
async function clusterWithAdmin(t: TestContext, target: string) {
  const cluster = await startCluster(t, await twoWorkers(target, '--admin', '127.0.0.1:0'));
  const record = await cluster.waitForRecord((r) => r.msg === 'admin listening');
  return { cluster, admin: `http://${record.address}` };
}

test('the admin API in the primary sums the workers’ counters', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { cluster, admin } = await clusterWithAdmin(t, upstream.address);
  const done = 10;
  for (let i = 0; i < done; i++) await echoOnce(t, cluster.port, Buffer.from(`closed ${i}`));
  const open = [];
  for (let i = 0; i < 4; i++) open.push(await openEchoed(t, cluster.port, `open ${i}`));
  const total = done + open.length;
  await waitFor(() => closedRecords(cluster).length === done, 3000, 'the access records');
  const workersServing = new Set(closedRecords(cluster).map((r) => r.worker));
  assert.equal(workersServing.size, 2, 'both workers served, so the sums add two workers');

  const status = await getJson<{ connections_active: number }>(`${admin}/api/status`);
  assert.equal(status.connections_active, open.length);
  const listeners = await getJson<
    { connections_accepted: number; connections_active: number; bytes_to_client: number }[]
  >(`${admin}/api/listeners`);
  assert.equal(listeners.length, 1);
  assert.equal(listeners[0]?.connections_accepted, total);
  assert.equal(listeners[0]?.connections_active, open.length);

  const metrics = await (await fetch(`${admin}/metrics`)).text();
  const sample = (name: string): number => {
    const line = metrics
      .split('\n')
      .find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    assert.ok(line !== undefined, `${name} is exported`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  assert.equal(sample('proxy_connections_accepted_total'), total);
  assert.equal(sample('proxy_connections_active'), open.length);
  assert.equal(
    sample('proxy_connection_duration_seconds_count'),
    done,
    'histograms are summed too',
  );
  assert.equal(sample('proxy_connect_duration_seconds_count'), total);
});

test('DELETE /api/connections/{worker}:{id} closes that connection in its worker', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { cluster, admin } = await clusterWithAdmin(t, upstream.address);
  // With reusePort the kernel picks the worker by a hash of the client's address and
  // port, not in turn: open connections (at most 40) until both workers have one.
  const worker = (c: { id: string }): string => c.id.split(':')[0] ?? '';
  const clients: RecordingClient[] = [];
  let connections: { id: string; client: string }[] = [];
  for (let i = 0; i < 40 && new Set(connections.map(worker)).size < 2; i++) {
    clients.push(await openEchoed(t, cluster.port, `client ${i}`));
    connections = await getJson<{ id: string; client: string }[]>(`${admin}/api/connections`);
    assert.equal(connections.length, clients.length);
  }
  for (const c of connections) assert.match(c.id, /^\d+:\d+$/);
  const prefixes = new Set(connections.map(worker));
  assert.equal(prefixes.size, 2, `connections in both workers: ${JSON.stringify(connections)}`);

  const first = connections[0] as { id: string; client: string };
  const victim = connections.find((c) => worker(c) !== worker(first)) ?? first;
  const reply = await fetch(`${admin}/api/connections/${victim.id}`, { method: 'DELETE' });
  assert.equal(reply.status, 204);
  const closedClient = clients.find((c) => `127.0.0.1:${c.socket.localPort}` === victim.client);
  assert.ok(closedClient !== undefined);
  await closedByPeer(closedClient, 'the connection to close');
  const record = await cluster.waitForRecord(
    (r) => r.msg === 'connection closed' && r.client === victim.client,
    2000,
    'its access record',
  );
  assert.equal(record.cause, 'admin_kill');
  assert.equal(String((record as WorkerRecord).worker), victim.id.split(':')[0]);
  const others = clients.filter((c) => c !== closedClient);
  assert.ok(
    others.every((c) => !c.socket.destroyed),
    'the other connections are untouched',
  );

  for (const id of ['99:1', '1', 'x:y']) {
    const missing = await fetch(`${admin}/api/connections/${id}`, { method: 'DELETE' });
    assert.equal(missing.status, 404, id);
  }
});

test('drain, undrain and reload through the admin API reach every worker', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const a = await startUpstream(t, (s) => s.end('A'));
  const b = await startUpstream(t, (s) => s.end('B'));
  const text = (targets: string[]): string =>
    `admin:\n  listen: 127.0.0.1:0\nworkers: 2\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    targets: [${targets.join(', ')}]\n`;
  writeFileSync(file, text([a.address, b.address]));
  const cluster = await startCluster(t, ['--config', file]);
  const admin = `http://${(await cluster.waitForRecord((r) => r.msg === 'admin listening')).address}`;
  const replies = async (n: number): Promise<string[]> => {
    const got: string[] = [];
    for (let i = 0; i < n; i++) {
      const client = connectClient(cluster.port);
      t.after(() => client.socket.destroy());
      await closedByPeer(client, 'the reply', 3000);
      got.push(client.received().toString());
    }
    return got;
  };

  const drainUrl = `${admin}/api/listeners/web/targets/${encodeURIComponent(a.address)}`;
  const drained = await fetch(`${drainUrl}/drain`, { method: 'POST' });
  assert.equal(drained.status, 200);
  assert.equal(((await drained.json()) as { state: string }).state, 'drained');
  await waitFor(
    () => cluster.wrecords().filter((r) => r.msg === 'target drained').length === 2,
    3000,
    'both workers to drain the target',
  );
  assert.deepEqual(await replies(6), Array(6).fill('B'), 'no worker sends to the drained target');
  const listeners = await getJson<
    { targets: { address: string; state: string; connects: number }[] }[]
  >(`${admin}/api/listeners`);
  const targetB = listeners[0]?.targets.find((x) => x.address === b.address);
  assert.equal(targetB?.connects, 6, 'connects summed over the workers');
  assert.equal(listeners[0]?.targets.find((x) => x.address === a.address)?.state, 'drained');
  assert.equal((await fetch(`${drainUrl}/undrain`, { method: 'POST' })).status, 200);
  assert.ok((await replies(6)).includes('A'), 'back in rotation');
  const unknown = await fetch(`${admin}/api/listeners/nope/targets/x:1/drain`, { method: 'POST' });
  assert.equal(unknown.status, 404);

  writeFileSync(file, text([b.address]));
  const reload = await fetch(`${admin}/api/reload`, { method: 'POST' });
  assert.equal(reload.status, 200);
  assert.deepEqual(await reload.json(), { added: [], removed: [], changed: ['web'] });
  await waitFor(
    () => cluster.wrecords().filter((r) => r.msg === 'config reloaded').length === 2,
    2000,
    'a config reloaded record from each worker',
  );
  writeFileSync(file, 'listeners: [');
  const refused = await fetch(`${admin}/api/reload`, { method: 'POST' });
  assert.equal(refused.status, 422);
  assert.match(((await refused.json()) as { error: string }).error, /proxy\.yaml:\d+:\d+: /);
});

// ---------------------------------------------------------------- usage errors

test('a bad --workers value exits 2 with one line naming the flag', async (t) => {
  for (const value of ['0', '65', 'many', '1.5', '-1', '', ' 2']) {
    const result = await runCli(t, ['--workers', value, '-l', LISTEN, '-t', '127.0.0.1:9']);
    assert.equal(result.status, 2, `${JSON.stringify(value)}: ${result.stderr}`);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? '', /^l4proxy: --workers/);
  }
});

test('an address in use exits 1 with one line, however many workers fail', async (t) => {
  const blocker = await startUpstream(t);
  const result = await runCli(t, ['--workers', '3', '-l', blocker.address, '-t', '127.0.0.1:9']);
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stderr, `l4proxy: listen ${blocker.address}: address in use\n`);
});

test('a bad workers value in the config file exits 2 naming the file, line and field', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  for (const [value, message] of [
    ['0', /proxy\.yaml:1:10 workers: expected a whole number >= 1, got 0/],
    ['many', /proxy\.yaml:1:10 workers: expected a whole number 1 to 64 or auto, got "many"/],
  ] as const) {
    writeFileSync(
      file,
      `workers: ${value}\nlisteners:\n  - listen: 127.0.0.1:0\n    targets: [127.0.0.1:9]\n`,
    );
    const result = await runCli(t, ['--config', file]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, message);
  }
});

test('--workers auto starts one worker per core (or one process on one core)', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { availableParallelism } = await import('node:os');
  const cores = availableParallelism();
  const cli = spawnCli(t, [
    '--workers',
    'auto',
    '-l',
    LISTEN,
    '-t',
    upstream.address,
    '--log-format',
    'json',
  ]);
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 10_000, 'listening');
  if (cores > 1) {
    const ready = (await cli.waitForRecord(
      (r) => r.msg === 'workers listening',
      10_000,
      'workers listening',
    )) as WorkerRecord;
    assert.equal(ready.workers, Math.min(cores, 64));
  }
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  await echoOnce(t, port, Buffer.from('auto'));
});
