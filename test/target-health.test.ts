/**
 * TargetHealth (upstream/target-health.ts): the fall/rise counters, passive marking
 * from clients' connect attempts, and each change reported once. Pure: no sockets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type HealthChange, TargetHealth } from '../src/upstream/target-health.js';
import { type PoolTarget, stateOf, TargetPool } from '../src/upstream/target-pool.js';

function setup(
  targets: readonly string[],
  options = { rise: 2, fall: 3 },
): {
  pool: TargetPool<string>;
  health: TargetHealth<string>;
  changes: HealthChange[];
  noneUp: number[];
  at: (name: string) => PoolTarget<string>;
} {
  const pool = new TargetPool(targets, { addressOf: (t) => t });
  const changes: HealthChange[] = [];
  const noneUp: number[] = [];
  const health = new TargetHealth(pool, options, {
    stateChanged: (change) => changes.push(change),
    noHealthyTarget: () => noneUp.push(changes.length),
  });
  const at = (name: string): PoolTarget<string> => {
    const entry = pool.get(name);
    assert.ok(entry);
    return entry;
  };
  return { pool, health, changes, noneUp, at };
}

describe('TargetHealth', () => {
  test('fall failed checks in a row mark a target down, rise passed ones mark it up', () => {
    const { health, changes, at } = setup(['A', 'B']);
    const a = at('A');
    health.checkFailed(a, 'connect: ECONNREFUSED');
    health.checkFailed(a, 'connect: ECONNREFUSED');
    assert.equal(stateOf(a), 'up');
    health.checkFailed(a, 'connect: ECONNREFUSED');
    assert.equal(stateOf(a), 'down');
    health.checkFailed(a, 'connect: ECONNREFUSED');
    health.checkPassed(a);
    assert.equal(stateOf(a), 'down');
    health.checkPassed(a);
    assert.equal(stateOf(a), 'up');
    assert.deepEqual(changes, [
      {
        address: 'A',
        state: 'down',
        reason: '3 failures in a row, last: check: connect: ECONNREFUSED',
        source: 'check',
      },
      { address: 'A', state: 'up', reason: '2 checks passed', source: 'check' },
    ]);
  });

  test('a pass in between starts the count of failures again, and a failure the count of passes', () => {
    const { health, changes, at } = setup(['A']);
    const a = at('A');
    for (const ok of [false, false, true, false, false]) {
      if (ok) health.checkPassed(a);
      else health.checkFailed(a, 'x');
    }
    assert.equal(stateOf(a), 'up');
    health.checkFailed(a, 'x');
    assert.equal(stateOf(a), 'down');
    health.checkPassed(a);
    health.checkFailed(a, 'x');
    health.checkPassed(a);
    assert.equal(stateOf(a), 'down');
    health.checkPassed(a);
    assert.equal(stateOf(a), 'up');
    assert.equal(changes.length, 2);
  });

  test("clients' failed connect attempts count as failures (passive), a connect brings it back", () => {
    const { pool, health, changes, at } = setup(['A', 'B']);
    const a = at('A');
    pool.failed(a, 'ECONNREFUSED');
    health.checkFailed(a, 'connect: ETIMEDOUT');
    pool.failed(a, 'ETIMEDOUT');
    assert.equal(stateOf(a), 'down');
    assert.equal(changes[0]?.source, 'connect');
    assert.equal(changes[0]?.reason, '3 failures in a row, last: connect: ETIMEDOUT');
    pool.connected(a);
    assert.equal(stateOf(a), 'up');
    assert.deepEqual(changes[1], {
      address: 'A',
      state: 'up',
      reason: 'a client connected',
      source: 'connect',
    });
  });

  test('out of file descriptors is not held against the target', () => {
    const { pool, at } = setup(['A'], { rise: 1, fall: 1 });
    pool.failed(at('A'), 'EMFILE');
    pool.failed(at('A'), 'ENFILE');
    assert.equal(stateOf(at('A')), 'up');
  });

  test('says once that no target is up, and again only after one came back', () => {
    const { health, noneUp, at } = setup(['A', 'B'], { rise: 1, fall: 1 });
    health.checkFailed(at('A'), 'x');
    assert.deepEqual(noneUp, []);
    health.checkFailed(at('B'), 'x');
    health.checkFailed(at('B'), 'x');
    health.checkFailed(at('A'), 'x');
    assert.deepEqual(noneUp, [2], 'once, after the second change');
    health.checkPassed(at('A'));
    health.checkFailed(at('A'), 'x');
    assert.deepEqual(noneUp, [2, 4]);
  });

  test('close stops hearing the pool', () => {
    const { pool, health, at } = setup(['A'], { rise: 1, fall: 1 });
    health.close();
    pool.failed(at('A'), 'ECONNREFUSED');
    assert.equal(stateOf(at('A')), 'up');
  });

  test('every change is reported once, and the reports alternate down, up, down', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.constantFrom('pass', 'fail', 'connect', 'refused'), { maxLength: 60 }),
        (rise, fall, results) => {
          const { pool, health, changes, at } = setup(['A'], { rise, fall });
          const a = at('A');
          let state = 'up';
          let seen = 0;
          for (const result of results) {
            if (result === 'pass') health.checkPassed(a);
            else if (result === 'fail') health.checkFailed(a, 'x');
            else if (result === 'connect') pool.connected(a);
            else pool.failed(a, 'ECONNREFUSED');
            const now = stateOf(a);
            if (now !== state) {
              assert.equal(changes.length, seen + 1, 'one report per change');
              assert.equal(changes[seen]?.state, now);
              seen += 1;
              state = now;
            } else {
              assert.equal(changes.length, seen, 'no report without a change');
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
