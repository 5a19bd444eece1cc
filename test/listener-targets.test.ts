/**
 * ListenerTargets (upstream/listener-targets.ts), a listener's upstream side, on its
 * own: draining a target in every pool that lists it (routes included), a reload
 * that keeps the targets' entries and a route's pool, and the `--target-insecure`
 * warning a reload turns on. The pools are pure and health stays off: no socket.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ListenerOptions, resolveListener } from '../src/config/config.js';
import { Logger } from '../src/log.js';
import { TimerSet } from '../src/timer-set.js';
import { ListenerTargets } from '../src/upstream/listener-targets.js';
import { stateOf } from '../src/upstream/target-pool.js';

const A = '127.0.0.1:9';
const B = '127.0.0.1:10';
const C = '127.0.0.1:11';

function setup(options: Partial<ListenerOptions>) {
  const logs: Record<string, unknown>[] = [];
  const log = new Logger({
    level: 'info',
    format: 'json',
    write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
  });
  const resolve = (more: Partial<ListenerOptions>) =>
    resolveListener({ name: 'web', listen: '127.0.0.1:0', ...options, ...more }, '');
  const targets = new ListenerTargets(resolve({}), new TimerSet(), log, {});
  const logged = (msg: string) => logs.filter((line) => line['msg'] === msg);
  return { targets, resolve, logged };
}

test('drains a target in every route that lists it, logs it once, and says false for an unknown one', () => {
  const { targets, resolve, logged } = setup({
    routes: [{ sni: 'a.example.com', targets: [A, B] }, { targets: [B] }],
  });
  targets.withRoutes(resolve({}));
  assert.equal(targets.entries(B).length, 2, 'B is in the route and in the default pool');
  assert.equal(targets.setDrained(B, true), true);
  assert.deepEqual(
    targets.entries(B).map((entry) => stateOf(entry)),
    ['drained', 'drained'],
  );
  assert.deepEqual(
    logged('target drained').map((line) => [line['listener'], line['upstream']]),
    [['web', B]],
  );
  assert.equal(targets.setDrained(C, true), false);
  assert.equal(targets.setDrained(B, false), true);
  assert.deepEqual(
    targets.entries(B).map((entry) => stateOf(entry)),
    ['up', 'up'],
  );
  assert.equal(logged('target undrained').length, 1);
});

test('a reload keeps the entries of targets that stay, and a route pool where its sni stays', () => {
  const { targets, resolve } = setup({
    routes: [{ sni: 'a.example.com', targets: [A] }, { targets: [B] }],
  });
  targets.withRoutes(resolve({}));
  const routePool = targets.routes?.[0]?.pool;
  const entryB = targets.pool.get(B);
  assert.ok(routePool !== undefined && entryB !== undefined);
  targets.setDrained(B, true);
  targets.update(
    resolve({ routes: [{ sni: 'a.example.com', targets: [A] }, { targets: [B, C] }] }),
  );
  assert.equal(targets.routes?.[0]?.pool, routePool);
  assert.equal(targets.pool.get(B), entryB);
  assert.equal(stateOf(entryB), 'drained');
  assert.ok(targets.pool.get(C) !== undefined, 'the new target is in the pool');
});

test('a reload that turns --target-insecure on warns once; one that keeps it on does not', () => {
  const { targets, resolve, logged } = setup({ targets: [A], targetTls: true });
  const warning = 'TLS to targets is not verified (--target-insecure)';
  const warned = () => logged(`${warning}: anyone on the path can read and change the traffic`);
  targets.warnInsecure();
  assert.equal(warned().length, 0, 'verified TLS: no warning');
  targets.update(resolve({ targetInsecure: true }));
  assert.deepEqual(
    warned().map((line) => line['listener']),
    ['web'],
  );
  targets.update(resolve({ targetInsecure: true, balance: 'least-connections' }));
  assert.equal(warned().length, 1);
});
