/**
 * Round-robin order with failover, as pure arithmetic: the order in which each
 * connection tries the targets, checked against exact pick sequences.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Balancer } from '../src/upstream/balancer.js';

/** picks walks one connection through the balancer, as dial.ts does, until a target accepts. */
function picks<T>(balancer: Balancer<T>, refuses: (target: T) => boolean): T[] {
  const start = balancer.start();
  const tried: T[] = [];
  for (let attempt = 0; ; attempt++) {
    const target = balancer.pickUpstream(start, attempt);
    if (target === undefined) return tried;
    tried.push(target);
    if (!refuses(target)) return tried;
  }
}

describe('Balancer round-robin', () => {
  test('starts successive connections at A, B, C, then A again', () => {
    const balancer = new Balancer(['A', 'B', 'C']);
    const starts = Array.from({ length: 7 }, () => balancer.start());
    assert.deepEqual(starts, [0, 1, 2, 0, 1, 2, 0]);
    assert.deepEqual(
      starts.map((start) => balancer.pickUpstream(start, 0)),
      ['A', 'B', 'C', 'A', 'B', 'C', 'A'],
    );
  });

  test('starts every connection at the only target when there is one', () => {
    const balancer = new Balancer(['A']);
    for (let i = 0; i < 3; i++) assert.equal(balancer.start(), 0);
    assert.equal(balancer.pickUpstream(0, 0), 'A');
    assert.equal(balancer.pickUpstream(0, 1), undefined);
  });

  test('refuses to be built without targets', () => {
    assert.throws(() => new Balancer([]), RangeError);
  });

  test('keeps the targets it was given, in order', () => {
    const targets = ['A', 'B', 'C'];
    assert.deepEqual(new Balancer(targets).targets, ['A', 'B', 'C']);
  });
});

describe('Balancer pickUpstream', () => {
  const balancer = new Balancer(['A', 'B', 'C']);
  const table: { start: number; order: (string | undefined)[] }[] = [
    { start: 0, order: ['A', 'B', 'C', undefined, undefined] },
    { start: 1, order: ['B', 'C', 'A', undefined, undefined] },
    { start: 2, order: ['C', 'A', 'B', undefined, undefined] },
  ];
  for (const { start, order } of table) {
    const tries = order.filter((t) => t !== undefined).join(', ');
    test(`from start ${start} tries ${tries} with wrap-around, then returns undefined`, () => {
      assert.deepEqual(
        order.map((_, attempt) => balancer.pickUpstream(start, attempt)),
        order,
      );
    });
  }

  test('returns undefined for any attempt past the last target', () => {
    assert.equal(balancer.pickUpstream(0, 3), undefined);
    assert.equal(balancer.pickUpstream(2, 100), undefined);
    assert.equal(balancer.pickUpstream(1, Number.MAX_SAFE_INTEGER), undefined);
  });
});

describe('Balancer failover sequences', () => {
  // Named upstreams refuse on chosen connections; each row is the exact pick
  // sequence of successive connections.
  const table: {
    name: string;
    targets: string[];
    down: string[];
    connections: string[][];
  }[] = [
    {
      name: 'every target up: each connection uses the next target once',
      targets: ['A', 'B', 'C'],
      down: [],
      connections: [['A'], ['B'], ['C'], ['A']],
    },
    {
      name: 'B down: a connection starting at B fails over to C',
      targets: ['A', 'B', 'C'],
      down: ['B'],
      connections: [['A'], ['B', 'C'], ['C'], ['A'], ['B', 'C']],
    },
    {
      name: 'A and B down: every connection ends at C',
      targets: ['A', 'B', 'C'],
      down: ['A', 'B'],
      connections: [['A', 'B', 'C'], ['B', 'C'], ['C'], ['A', 'B', 'C']],
    },
    {
      name: 'C down: a connection starting at C wraps around to A',
      targets: ['A', 'B', 'C'],
      down: ['C'],
      connections: [['A'], ['B'], ['C', 'A'], ['A']],
    },
    {
      name: 'all down: each connection tries every target once, then gives up',
      targets: ['A', 'B', 'C'],
      down: ['A', 'B', 'C'],
      connections: [
        ['A', 'B', 'C'],
        ['B', 'C', 'A'],
        ['C', 'A', 'B'],
      ],
    },
    {
      name: 'a single target that is down is tried once',
      targets: ['A'],
      down: ['A'],
      connections: [['A'], ['A']],
    },
  ];

  for (const row of table) {
    test(row.name, () => {
      const balancer = new Balancer(row.targets);
      const down = new Set(row.down);
      const got = row.connections.map(() => picks(balancer, (t) => down.has(t)));
      assert.deepEqual(got, row.connections);
    });
  }

  test('a failover inside one connection does not move the next connection start', () => {
    const balancer = new Balancer(['A', 'B', 'C']);
    assert.deepEqual(
      picks(balancer, () => true),
      ['A', 'B', 'C'],
    );
    assert.equal(balancer.start(), 1);
  });
});

describe('Balancer properties', () => {
  const targetCount = fc.integer({ min: 1, max: 32 });

  test('each connection tries every target exactly once, in order from its start', () => {
    fc.assert(
      fc.property(
        targetCount.chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        ([n, start]) => {
          const targets = Array.from({ length: n }, (_, i) => i);
          const balancer = new Balancer(targets);
          const tried: number[] = [];
          for (let attempt = 0; attempt < n; attempt++) {
            const target = balancer.pickUpstream(start, attempt);
            assert.equal(target, (start + attempt) % n);
            if (target !== undefined) tried.push(target);
          }
          assert.deepEqual(
            [...tried].sort((a, b) => a - b),
            targets,
          );
          assert.equal(tried[0], start);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('returns undefined for every attempt number at or past the target count', () => {
    fc.assert(
      fc.property(targetCount, fc.nat(), fc.nat({ max: 1_000_000 }), (n, startSeed, extra) => {
        const balancer = new Balancer(Array.from({ length: n }, (_, i) => i));
        assert.equal(balancer.pickUpstream(startSeed % n, n + extra), undefined);
      }),
      { numRuns: 200 },
    );
  });

  test('successive starts cycle through 0..n-1 and spread connections evenly', () => {
    fc.assert(
      fc.property(targetCount, fc.integer({ min: 0, max: 200 }), (n, connections) => {
        const balancer = new Balancer(Array.from({ length: n }, (_, i) => i));
        const perTarget = new Array<number>(n).fill(0);
        for (let i = 0; i < connections; i++) {
          const start = balancer.start();
          assert.equal(start, i % n);
          perTarget[start] = (perTarget[start] ?? 0) + 1;
        }
        assert.ok(Math.max(...perTarget) - Math.min(...perTarget) <= 1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('weighted targets', () => {
  test('spreads starts by weight, smoothly: 5, 1, 1 gives A A B A C A A', () => {
    const weights: Record<string, number> = { A: 5, B: 1, C: 1 };
    const balancer = new Balancer(['A', 'B', 'C'], (t) => weights[t] ?? 1);
    const picks = Array.from({ length: 14 }, () => balancer.targets[balancer.start()]).join('');
    assert.equal(picks, 'AABACAAAABACAA');
  });

  test('over any whole number of rounds each target starts exactly weight times per round', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        (weights, rounds) => {
          const balancer = new Balancer(
            weights.map((_, i) => i),
            (i) => weights[i] ?? 1,
          );
          const total = weights.reduce((a, b) => a + b, 0);
          const counts = weights.map(() => 0);
          for (let k = 0; k < total * rounds; k++) {
            const i = balancer.start();
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
    const balancer = new Balancer(['A', 'B', 'C'], () => 4);
    assert.deepEqual(
      Array.from({ length: 6 }, () => balancer.start()),
      [0, 1, 2, 0, 1, 2],
    );
  });
});
