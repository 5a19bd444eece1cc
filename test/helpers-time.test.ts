/**
 * The test helpers' own rules for a busy machine (test/helpers/time.ts): one factor
 * for every deadline, and a limiter that bounds how many processes start at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Limiter, timeScale } from './helpers/time.js';

test('the deadline factor is TEST_TIME_SCALE if set, else 5 under CI=true, else 3', () => {
  assert.equal(timeScale({}), 3);
  assert.equal(timeScale({ CI: 'true' }), 5);
  assert.equal(timeScale({ CI: 'false' }), 3);
  assert.equal(timeScale({ TEST_TIME_SCALE: '1.5', CI: 'true' }), 1.5);
  assert.equal(timeScale({ TEST_TIME_SCALE: '' }), 3);
  for (const bad of ['0', '-1', 'fast', 'Infinity']) {
    assert.throws(
      () => timeScale({ TEST_TIME_SCALE: bad }),
      /TEST_TIME_SCALE: expected a positive/,
    );
  }
});

test('a limiter runs every task, never more than its limit at once, a failed one included', async () => {
  const limiter = new Limiter(2);
  let running = 0;
  let most = 0;
  const task = async (i: number): Promise<number> => {
    running += 1;
    most = Math.max(most, running);
    // Settle in a later turn so that tasks overlap if the limiter lets them.
    await new Promise((resolve) => setImmediate(resolve));
    running -= 1;
    if (i === 3) throw new Error('task 3 fails');
    return i;
  };
  const results = await Promise.allSettled(
    Array.from({ length: 9 }, (_, i) => limiter.run(() => task(i))),
  );
  assert.equal(most, 2);
  assert.equal(running, 0);
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : 'failed')),
    [0, 1, 2, 'failed', 4, 5, 6, 7, 8],
  );
  // Every slot is free again: two tasks start at once straight away.
  let started = 0;
  let release = (): void => {};
  const hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const held = async (): Promise<void> => {
    started += 1;
    await hold;
  };
  const both = [limiter.run(held), limiter.run(held)];
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(started, 2);
  release();
  await Promise.all(both);
});
