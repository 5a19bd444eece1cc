/**
 * TargetPool: the plan each connection follows (round-robin start, failover walk,
 * drained and down targets left out), per-target state across reloads, and
 * connection counts. Pure: exact sequences and fast-check properties.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type Plan, stateOf, TargetPool } from '../src/upstream/target-pool.js';

function pool(
  targets: readonly string[],
  weights: Record<string, number> = {},
): TargetPool<string> {
  return new TargetPool(targets, { addressOf: (t) => t, weightOf: (t) => weights[t] ?? 1 });
}

function names(plan: Plan<string>): string[] {
  return plan.targets.map((e) => e.target);
}

/** picks walks one connection through its plan, as the proxy context does, until a target accepts. */
function picks(p: TargetPool<string>, refuses: (target: string) => boolean): string[] {
  const tried: string[] = [];
  for (const entry of p.plan(undefined).targets) {
    tried.push(entry.target);
    if (!refuses(entry.target)) return tried;
  }
  return tried;
}

describe('TargetPool round-robin plans', () => {
  test('starts successive connections at A, B, C, then A again, each walking on with wrap-around', () => {
    const p = pool(['A', 'B', 'C']);
    const plans = Array.from({ length: 4 }, () => names(p.plan(undefined)).join(''));
    assert.deepEqual(plans, ['ABC', 'BCA', 'CAB', 'ABC']);
  });

  test('plans the only target for every connection when there is one', () => {
    const p = pool(['A']);
    for (let i = 0; i < 3; i++) assert.deepEqual(names(p.plan(undefined)), ['A']);
  });

  test('refuses to be built without targets', () => {
    assert.throws(() => pool([]), RangeError);
  });

  test('leaves drained and down targets out of the plan and lists them as skipped, in walk order', () => {
    const p = pool(['A', 'B', 'C', 'D']);
    p.setDrained('B', true);
    p.setDown('D', true);
    const plan = p.plan('192.0.2.1');
    assert.deepEqual(names(plan), ['A', 'C']);
    assert.deepEqual(
      plan.skipped.map((e) => [e.target, stateOf(e)]),
      [
        ['B', 'drained'],
        ['D', 'down'],
      ],
    );
    // The round-robin still moves on past a drained start, as before the pool.
    assert.deepEqual(names(p.plan(undefined)), ['C', 'A']);
  });

  test('an empty plan when every target is drained', () => {
    const p = pool(['A', 'B']);
    p.setDrained('A', true);
    p.setDrained('B', true);
    const plan = p.plan(undefined);
    assert.deepEqual(names(plan), []);
    assert.deepEqual(
      plan.skipped.map((e) => e.target),
      ['A', 'B'],
    );
  });
});

describe('TargetPool failover sequences', () => {
  // Named upstreams refuse on chosen connections; each row is the exact pick
  // sequence of successive connections.
  const table: { name: string; targets: string[]; refusing: string[]; connections: string[][] }[] =
    [
      {
        name: 'every target up: each connection uses the next target once',
        targets: ['A', 'B', 'C'],
        refusing: [],
        connections: [['A'], ['B'], ['C'], ['A']],
      },
      {
        name: 'B refuses: a connection starting at B fails over to C',
        targets: ['A', 'B', 'C'],
        refusing: ['B'],
        connections: [['A'], ['B', 'C'], ['C'], ['A'], ['B', 'C']],
      },
      {
        name: 'A and B refuse: every connection ends at C',
        targets: ['A', 'B', 'C'],
        refusing: ['A', 'B'],
        connections: [['A', 'B', 'C'], ['B', 'C'], ['C'], ['A', 'B', 'C']],
      },
      {
        name: 'C refuses: a connection starting at C wraps around to A',
        targets: ['A', 'B', 'C'],
        refusing: ['C'],
        connections: [['A'], ['B'], ['C', 'A'], ['A']],
      },
      {
        name: 'all refuse: each connection tries every target once, then gives up',
        targets: ['A', 'B', 'C'],
        refusing: ['A', 'B', 'C'],
        connections: [
          ['A', 'B', 'C'],
          ['B', 'C', 'A'],
          ['C', 'A', 'B'],
        ],
      },
    ];
  for (const row of table) {
    test(row.name, () => {
      const p = pool(row.targets);
      const refusing = new Set(row.refusing);
      const got = row.connections.map(() => picks(p, (t) => refusing.has(t)));
      assert.deepEqual(got, row.connections);
    });
  }
});

describe('TargetPool state and connections', () => {
  test('a target is up, then drained, down, and drained wins over down', () => {
    const p = pool(['A']);
    const a = p.get('A');
    assert.ok(a);
    assert.equal(stateOf(a), 'up');
    assert.equal(p.setDown('A', true), true);
    assert.equal(stateOf(a), 'down');
    assert.equal(p.setDrained('A', true), true);
    assert.equal(stateOf(a), 'drained');
    p.setDown('A', false);
    p.setDrained('A', false);
    assert.equal(stateOf(a), 'up');
    assert.equal(p.setDrained('Z', true), false);
    assert.equal(p.setDown('Z', true), false);
  });

  test('a reload keeps the state and connections of targets that stay, and starts new ones up', () => {
    const p = pool(['A', 'B', 'C']);
    p.setDrained('B', true);
    p.setDown('C', true);
    const b = p.get('B');
    assert.ok(b);
    p.connected(b);
    p.update(['B', 'C', 'D']);
    assert.equal(p.get('B'), b, 'the entry itself stays, so open connections count down on it');
    assert.deepEqual(
      p.entries.map((e) => [e.address, stateOf(e), e.connections]),
      [
        ['B', 'drained', 1],
        ['C', 'down', 0],
        ['D', 'up', 0],
      ],
    );
    assert.equal(p.get('A'), undefined);
    p.closed(b);
    assert.equal(b.connections, 0);
  });

  test('connected and closed count a target up and down', () => {
    const p = pool(['A', 'B']);
    const a = p.get('A');
    assert.ok(a);
    p.connected(a);
    p.connected(a);
    p.closed(a);
    assert.equal(a.connections, 1);
    assert.equal(p.get('B')?.connections, 0);
  });
});

describe('TargetPool plan properties', () => {
  const targetSets = fc
    .integer({ min: 1, max: 16 })
    .chain((n) =>
      fc.tuple(
        fc.constant(n),
        fc.array(fc.constantFrom('up', 'down', 'drained'), { minLength: n, maxLength: n }),
        fc.integer({ min: 0, max: 40 }),
      ),
    );

  test('every plan tries each target that is up exactly once, never a drained or down one', () => {
    fc.assert(
      fc.property(targetSets, ([n, states, before]) => {
        const targets = Array.from({ length: n }, (_, i) => `t${i}`);
        const p = pool(targets);
        targets.forEach((t, i) => {
          p.setDrained(t, states[i] === 'drained');
          p.setDown(t, states[i] === 'down');
        });
        for (let k = 0; k < before; k++) p.plan(undefined);
        const plan = p.plan(undefined);
        const tried = names(plan);
        assert.equal(new Set(tried).size, tried.length, 'no target twice');
        const up = targets.filter((_, i) => states[i] === 'up');
        assert.deepEqual([...tried].sort(), [...up].sort());
        assert.deepEqual(
          plan.skipped.map((e) => e.target).sort(),
          targets.filter((_, i) => states[i] !== 'up').sort(),
        );
        // In list order from where it starts, wrapping around.
        const positions = tried.map((t) => targets.indexOf(t));
        const rotations = positions.filter((pos, i) => i > 0 && pos < (positions[i - 1] ?? 0));
        assert.ok(rotations.length <= 1);
      }),
      { numRuns: 300 },
    );
  });

  test('successive plans start at 0..n-1 in turn and spread connections evenly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 32 }), fc.integer({ min: 0, max: 200 }), (n, count) => {
        const targets = Array.from({ length: n }, (_, i) => `t${i}`);
        const p = pool(targets);
        const perTarget = new Array<number>(n).fill(0);
        for (let i = 0; i < count; i++) {
          const first = p.plan(undefined).targets[0]?.target;
          assert.equal(first, targets[i % n]);
          const at = targets.indexOf(first ?? '');
          perTarget[at] = (perTarget[at] ?? 0) + 1;
        }
        assert.ok(Math.max(...perTarget) - Math.min(...perTarget) <= 1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('weighted targets', () => {
  test('spreads starts by weight, smoothly: 5, 1, 1 gives A A B A C A A', () => {
    const p = pool(['A', 'B', 'C'], { A: 5, B: 1, C: 1 });
    const starts = Array.from({ length: 14 }, () => names(p.plan(undefined))[0]).join('');
    assert.equal(starts, 'AABACAAAABACAA');
  });

  test('failover from a weighted start walks the list in order', () => {
    const p = pool(['A', 'B', 'C'], { A: 1, B: 5, C: 1 });
    assert.deepEqual(names(p.plan(undefined)), ['B', 'C', 'A']);
  });

  test('over any whole number of rounds each target starts exactly weight times per round', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        (weights, rounds) => {
          const targets = weights.map((_, i) => `t${i}`);
          const p = pool(targets, Object.fromEntries(targets.map((t, i) => [t, weights[i] ?? 1])));
          const total = weights.reduce((a, b) => a + b, 0);
          const counts = weights.map(() => 0);
          for (let k = 0; k < total * rounds; k++) {
            const i = targets.indexOf(names(p.plan(undefined))[0] ?? '');
            counts[i] = (counts[i] ?? 0) + 1;
          }
          assert.deepEqual(
            counts,
            weights.map((w) => w * rounds),
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  test('equal weights behave exactly like plain round-robin', () => {
    const p = pool(['A', 'B', 'C'], { A: 4, B: 4, C: 4 });
    assert.deepEqual(
      Array.from({ length: 6 }, () => names(p.plan(undefined))[0]),
      ['A', 'B', 'C', 'A', 'B', 'C'],
    );
  });
});
