/**
 * The shared target health of `--workers N` in one process: a ClusterHealth (the
 * primary's side, src/cluster-health.ts) and two HealthShares (each a worker's side,
 * src/upstream/shared-health.ts) joined by plain function calls in place of the IPC
 * channel, with checks off so that only the workers' reports count. The pools are
 * the workers' own TargetPools; the log is the primary's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterHealth } from '../src/cluster-health.js';
import type { Target } from '../src/config/config.js';
import { Logger } from '../src/log.js';
import type { PoolHealthOptions } from '../src/upstream/pool-health.js';
import {
  HealthShare,
  type HealthToPrimary,
  type HealthToWorker,
} from '../src/upstream/shared-health.js';
import { type PoolTarget, TargetPool } from '../src/upstream/target-pool.js';

const PASSIVE: PoolHealthOptions = { intervalMs: 0, timeoutMs: 2000, rise: 2, fall: 2 };

function target(port: number): Target {
  return { address: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1 };
}

const A = target(7001);
const B = target(7002);
const C = target(7003);

/** Cluster joins a primary and workers by calls; `sent` records what the primary sent to whom. */
function cluster(workers: number) {
  const logs: Record<string, unknown>[] = [];
  const log = new Logger({
    level: 'info',
    format: 'json',
    write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
  });
  const shares = new Map<number, HealthShare>();
  const sent: [number | null, HealthToWorker][] = [];
  const primary = new ClusterHealth(log, (id, message) => {
    sent.push([id, message]);
    for (const [worker, share] of shares) if (id === null || id === worker) share.receive(message);
  });
  const reports: HealthToPrimary[] = [];
  for (let id = 1; id <= workers; id++)
    shares.set(
      id,
      new HealthShare((message) => {
        if (message.op === 'report') reports.push(message);
        primary.receive(id, message);
      }),
    );
  const share = (id: number): HealthShare => shares.get(id) as HealthShare;
  const lines = (msg: string) => logs.filter((l) => l['msg'] === msg);
  return { primary, shares, share, sent, reports, logs, lines };
}

function pool(targets: readonly Target[]): TargetPool<Target> {
  return new TargetPool(targets, { addressOf: (t) => t.address });
}

function entry(p: TargetPool<Target>, t: Target): PoolTarget<Target> {
  const found = p.get(t.address);
  assert.ok(found !== undefined, t.address);
  return found;
}

function downOf(p: TargetPool<Target>): string[] {
  return p.entries.filter((e) => e.down).map((e) => e.address);
}

test('failed connects of two workers count together: one target down, logged once, applied by both', () => {
  const c = cluster(2);
  const p1 = pool([A, B]);
  const p2 = pool([A, B]);
  c.share(1).start(p1, 'web', PASSIVE);
  c.share(2).start(p2, 'web', PASSIVE);
  p1.failed(entry(p1, A), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [], 'one failure is not fall 2');
  p2.failed(entry(p2, A), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [A.address]);
  assert.deepEqual(downOf(p2), [A.address]);
  const down = c.lines('target down');
  assert.equal(down.length, 1);
  assert.equal(down[0]?.['target'], A.address);
  assert.equal(down[0]?.['reason'], '2 failures in a row, last: connect: ECONNREFUSED');
});

test('a worker whose connect works after its failure resets the count; connects without a failure are not sent', () => {
  const c = cluster(2);
  const p1 = pool([A, B]);
  const p2 = pool([A, B]);
  c.share(1).start(p1, 'web', PASSIVE);
  c.share(2).start(p2, 'web', PASSIVE);
  const sentBefore = c.sent.length;
  p1.connected(entry(p1, A)); // nothing failed: nothing to tell
  assert.equal(c.reports.length, 0);
  p1.failed(entry(p1, A), 'ECONNREFUSED');
  p1.connected(entry(p1, A)); // works again: the count starts over
  p2.failed(entry(p2, A), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), []);
  assert.equal(c.lines('target down').length, 0);
  assert.equal(c.sent.length, sentBefore, 'no state changed');
  p1.failed(entry(p1, A), 'ETIMEDOUT');
  assert.deepEqual(downOf(p2), [A.address]);
});

test('a worker that starts watching later gets the states at once; a client that connects to a down target brings it up for all', () => {
  const c = cluster(2);
  const p1 = pool([A, B]);
  c.share(1).start(p1, 'web', { ...PASSIVE, fall: 1 });
  p1.failed(entry(p1, B), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [B.address]);
  const p2 = pool([A, B]);
  c.share(2).start(p2, 'web', { ...PASSIVE, fall: 1 });
  assert.deepEqual(downOf(p2), [B.address], 'told when it started');
  // Worker 2's passive retry: one client tried B and connected.
  p2.connected(entry(p2, B));
  assert.deepEqual(downOf(p1), []);
  assert.deepEqual(downOf(p2), []);
  assert.equal(c.lines('target up').length, 1);
  assert.equal(c.lines('target up')[0]?.['reason'], 'a client connected');
});

test('new health options for the same pool keep its place and its states; stopping every pool forgets the listener', () => {
  const c = cluster(1);
  const p1 = pool([A, B]);
  const first = c.share(1).start(p1, 'web', { ...PASSIVE, fall: 1 });
  p1.failed(entry(p1, A), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [A.address]);
  // What Listener.useHealth does on a reload with other options.
  first.stop(true);
  const second = c.share(1).start(p1, 'web', { ...PASSIVE, fall: 3 });
  assert.deepEqual(downOf(p1), [A.address], 'still down');
  assert.deepEqual(c.primary.listeners, ['web']);
  assert.equal(c.lines('target up').length, 0);
  // The new options count: three failures of B before it is down.
  for (let i = 0; i < 2; i++) p1.failed(entry(p1, B), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [A.address]);
  p1.failed(entry(p1, B), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [A.address, B.address]);
  second.stop();
  assert.deepEqual(downOf(p1), [], 'put back up: nothing would bring them back');
  assert.deepEqual(c.primary.listeners, []);
});

test('the primary follows every target some worker has, and forgets a worker that exits', () => {
  const c = cluster(2);
  const p1 = pool([A, B]);
  const p2 = pool([A, C]); // read an edited file
  c.share(1).start(p1, 'web', { ...PASSIVE, fall: 1 });
  c.share(2).start(p2, 'web', { ...PASSIVE, fall: 1 });
  p2.failed(entry(p2, C), 'ECONNREFUSED');
  assert.deepEqual(downOf(p2), [C.address]);
  assert.deepEqual(downOf(p1), [], 'not its target');
  c.primary.workerGone(2);
  assert.deepEqual(c.primary.listeners, ['web']);
  p1.failed(entry(p1, A), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [A.address]);
  c.primary.workerGone(1);
  assert.deepEqual(c.primary.listeners, []);
});

test('a target the operator drained does not count as up: with the others down, no healthy target is said once', () => {
  const c = cluster(1);
  // Drained before any worker watched: kept, and applied when one does.
  c.primary.setDrained('web', B.address, true);
  const p1 = pool([A, B]);
  p1.setDrained(B.address, true); // what the worker itself did on the drain
  c.share(1).start(p1, 'web', { ...PASSIVE, fall: 1 });
  p1.failed(entry(p1, A), 'ECONNREFUSED');
  assert.deepEqual(downOf(p1), [A.address]);
  assert.equal(c.lines('no healthy target: every target is down').length, 1);
  c.primary.setDrained('web', B.address, false);
  p1.setDrained(B.address, false);
  p1.connected(entry(p1, A));
  p1.failed(entry(p1, A), 'ECONNREFUSED');
  assert.equal(c.lines('no healthy target: every target is down').length, 1, 'B is up now');
});
