/**
 * Target health shared by `--workers N`, end to end: the built CLI (dist/cli.js) as a
 * primary with two workers, in front of real target servers on 127.0.0.1 that are
 * stopped and started again (test/helpers/targets.ts). The primary decides each
 * target's state (src/cluster-health.ts) and the workers follow it: `target down` and
 * `target up` are logged once, by the primary; afterwards no client of any worker is
 * tried on a down target (the access records' `upstream` and `connect_failures`);
 * a worker started later, and a reload that changes the health settings, keep the
 * states. Build first (`npm run build`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { adminUrl } from '../helpers/cli.js';
import {
  killQuietly,
  startCluster as startWorkers,
  type WorkerRecord,
  type Cluster as WorkersCluster,
} from '../helpers/cluster.js';
import { isHealth, startTagTarget, type TagTarget, tagOf } from '../helpers/targets.js';

/** Cluster is a running `--workers 2` with an admin server. */
interface Cluster extends WorkersCluster {
  adminUrl: string;
}

/** startCluster runs the CLI with `args`, two workers, JSON logs and an admin server, until every worker listens. */
async function startCluster(t: TestContext, args: readonly string[]): Promise<Cluster> {
  const cluster = await startWorkers(t, ['--workers', '2', '--admin', '127.0.0.1:0', ...args]);
  return Object.assign(cluster, { adminUrl: await adminUrl(cluster) });
}

function tempFile(t: TestContext, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-workers-health-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, text);
  return file;
}

function closedRecords(cluster: Cluster): WorkerRecord[] {
  return cluster.wrecords().filter((r) => r.msg === 'connection closed');
}

function healthRecords(cluster: Cluster, msg: 'target down' | 'target up', target: TagTarget) {
  return cluster.wrecords().filter(isHealth(msg, target.address));
}

/**
 * clientsAfter sends `count` clients one after the other and returns their access
 * records (every one written by then), each client's answer checked against `tags`.
 */
async function clientsAfter(
  t: TestContext,
  cluster: Cluster,
  count: number,
  tags: readonly string[],
): Promise<WorkerRecord[]> {
  const before = closedRecords(cluster).length;
  for (let i = 0; i < count; i++) {
    const tag = await tagOf(t, cluster.port);
    assert.ok(tags.includes(tag), `client ${i} got ${tag}, expected one of ${tags.join(',')}`);
  }
  await cluster.waitForRecord(
    () => closedRecords(cluster).length >= before + count,
    5000,
    `${count} access records`,
  );
  return closedRecords(cluster).slice(before);
}

/** untried asserts that no record tried `target`: not connected to it, and no failed attempt on it. */
function assertUntried(records: readonly WorkerRecord[], target: TagTarget): void {
  for (const r of records) {
    assert.notEqual(r.upstream, target.address, `worker ${r.worker} sent a client to it`);
    const failures = (r as { connect_failures?: string }).connect_failures;
    assert.ok(!failures?.includes(target.address), `worker ${r.worker} tried it: ${failures}`);
  }
}

/** workersOf is the set of worker ids that wrote `records`. */
function workersOf(records: readonly WorkerRecord[]): Set<number | undefined> {
  return new Set(records.map((r) => r.worker));
}

interface ApiTarget {
  address: string;
  state: string;
}

async function targetStates(cluster: Cluster): Promise<string[][]> {
  const response = await fetch(`${cluster.adminUrl}/api/listeners`);
  assert.equal(response.status, 200);
  const [listener] = (await response.json()) as { targets: ApiTarget[] }[];
  return (listener?.targets ?? []).map((x) => [x.address, x.state]);
}

async function targetUpMetric(cluster: Cluster, target: TagTarget): Promise<string | undefined> {
  const text = await (await fetch(`${cluster.adminUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('proxy_target_up{') && l.includes(`target="${target.address}"`));
  return line?.split(' ').at(-1);
}

const CHECKS = ['--health-interval', '50ms', '--health-fall', '2', '--health-rise', '2'];

test('--workers 2 with checks: the primary probes and says target down once, no worker tries the target, and target up once brings it back on both', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const cluster = await startCluster(t, [
    ...['-l', '127.0.0.1:0', '-t', a.address, '-t', b.address, '--log-level', 'debug'],
    ...CHECKS,
  ]);
  // Both workers serve both targets while they are up.
  const warm = await clientsAfter(t, cluster, 8, ['A', 'B']);
  assert.equal(workersOf(warm).size, 2, 'both workers served');

  await a.stop();
  const down = await cluster.waitForRecord(isHealth('target down', a.address), 5000, 'A down');
  assert.equal((down as WorkerRecord).worker, undefined, 'logged by the primary');
  // The checks are the primary's: a failed one is never a worker's.
  await cluster.waitForRecord(
    () => cluster.wrecords().filter((r) => r.msg === 'health check failed').length >= 4,
    5000,
    'more failed checks',
  );
  for (const r of cluster.wrecords().filter((r) => r.msg === 'health check failed'))
    assert.equal(r.worker, undefined, 'a check by a worker');

  const whileDown = await clientsAfter(t, cluster, 10, ['B']);
  assert.equal(workersOf(whileDown).size, 2, 'both workers served');
  assertUntried(whileDown, a);
  assert.deepEqual(await targetStates(cluster), [
    [a.address, 'down'],
    [b.address, 'up'],
  ]);
  assert.equal(await targetUpMetric(cluster, a), '0');
  assert.equal(await targetUpMetric(cluster, b), '1');
  assert.equal(healthRecords(cluster, 'target down', a).length, 1, 'said once');

  await a.start();
  const up = await cluster.waitForRecord(isHealth('target up', a.address), 5000, 'A up');
  assert.equal((up as WorkerRecord).worker, undefined, 'logged by the primary');
  // Each worker takes A in its turn again: both send clients to it.
  const again: WorkerRecord[] = [];
  for (let round = 0; round < 10; round++) {
    again.push(...(await clientsAfter(t, cluster, 4, ['A', 'B'])));
    const onA = again.filter((r) => r.upstream === a.address);
    if (workersOf(onA).size === 2) break;
  }
  assert.equal(workersOf(again.filter((r) => r.upstream === a.address)).size, 2, 'both use A');
  assert.deepEqual(await targetStates(cluster), [
    [a.address, 'up'],
    [b.address, 'up'],
  ]);
  assert.equal(await targetUpMetric(cluster, a), '1');
  assert.equal(healthRecords(cluster, 'target down', a).length, 1);
  assert.equal(healthRecords(cluster, 'target up', a).length, 1);
});

test('--workers 2, checks off: the failed connects of both workers count together, target down once, then no worker tries it', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const cluster = await startCluster(t, [
    ...['-l', '127.0.0.1:0', '-t', a.address, '-t', b.address, '--health-fall', '2'],
  ]);
  await a.stop();
  // Clients fail over to B; their failed attempts on A reach the primary.
  let sent = 0;
  for (; sent < 20 && healthRecords(cluster, 'target down', a).length === 0; sent++)
    assert.equal(await tagOf(t, cluster.port), 'B');
  const down = await cluster.waitForRecord(isHealth('target down', a.address), 5000, 'A down');
  // Every record of those clients first, so that the next ones are told apart.
  await cluster.waitForRecord(() => closedRecords(cluster).length === sent, 5000, 'the records');
  assert.equal((down as WorkerRecord).worker, undefined, 'logged by the primary');
  assert.match(String((down as { reason?: unknown }).reason), /2 failures in a row, last: connect/);
  const whileDown = await clientsAfter(t, cluster, 10, ['B']);
  assert.equal(workersOf(whileDown).size, 2, 'both workers served');
  assertUntried(whileDown, a);
  assert.equal(healthRecords(cluster, 'target down', a).length, 1, 'said once');
});

test('--workers 2: a worker started after a target went down knows it is down', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const cluster = await startCluster(t, [
    ...['-l', '127.0.0.1:0', '-t', a.address, '-t', b.address],
    ...CHECKS,
  ]);
  await a.stop();
  await cluster.waitForRecord(isHealth('target down', a.address), 5000, 'A down');
  const [first] = [...cluster.pids().keys()];
  killQuietly(cluster.pids().get(first as number) as number);
  await cluster.waitForRecord(
    () => cluster.pids().size === 3 && cluster.wrecords().some((r) => r.msg === 'worker died'),
    10_000,
    'a replacement worker',
  );
  const newest = Math.max(...cluster.pids().keys());
  const records: WorkerRecord[] = [];
  for (let round = 0; round < 10 && !workersOf(records).has(newest); round++)
    records.push(...(await clientsAfter(t, cluster, 4, ['B'])));
  assert.ok(workersOf(records).has(newest), 'the new worker served');
  assertUntried(records, a);
  assert.equal(healthRecords(cluster, 'target down', a).length, 1, 'said once');
});

test('--workers 2: a reload that changes the health settings keeps a down target down', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const yaml = (fall: number): string =>
    [
      `defaults: { health_interval: 50ms, health_fall: ${fall}, health_rise: 2 }`,
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:0',
      `    targets: ['${a.address}', '${b.address}']`,
    ].join('\n');
  const file = tempFile(t, yaml(2));
  const cluster = await startCluster(t, ['--config', file]);
  await a.stop();
  await cluster.waitForRecord(isHealth('target down', a.address), 5000, 'A down');
  writeFileSync(file, yaml(3));
  cluster.child.kill('SIGHUP');
  await cluster.waitForRecord(
    () => cluster.wrecords().filter((r) => r.msg === 'config reloaded').length === 2,
    10_000,
    'both workers reloaded',
  );
  const records = await clientsAfter(t, cluster, 10, ['B']);
  assert.equal(workersOf(records).size, 2, 'both workers served');
  assertUntried(records, a);
  assert.deepEqual(await targetStates(cluster), [
    [a.address, 'down'],
    [b.address, 'up'],
  ]);
  assert.equal(healthRecords(cluster, 'target up', a).length, 0, 'not put back up');
  assert.equal(healthRecords(cluster, 'target down', a).length, 1, 'said once');
  await a.start();
  await cluster.waitForRecord(isHealth('target up', a.address), 5000, 'A up');
  assert.equal(healthRecords(cluster, 'target up', a).length, 1);
});
