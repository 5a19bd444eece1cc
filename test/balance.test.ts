/**
 * The balancing policies (upstream/balance.ts) and what every policy shares in the
 * pool: backups only while no primary is up, failover over each usable target once,
 * the passive retry of a down target. Pure: exact sequences and fast-check properties.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  BALANCE_POLICIES,
  type BalancePolicy,
  drawTwo,
  type RandomSource,
  strategyFor,
} from '../src/upstream/balance.js';
import { type Plan, type PoolTarget, TargetPool } from '../src/upstream/target-pool.js';

interface Spec {
  name: string;
  weight?: number;
  backup?: boolean;
}

function pool(
  targets: readonly (string | Spec)[],
  policy: BalancePolicy,
  options: { random?: RandomSource; now?: () => number } = {},
): TargetPool<Spec> {
  const specs = targets.map((t) => (typeof t === 'string' ? { name: t } : t));
  return new TargetPool<Spec>(specs, {
    addressOf: (t) => t.name,
    weightOf: (t) => t.weight ?? 1,
    backupOf: (t) => t.backup === true,
    strategy: strategyFor(policy, options.random),
    now: options.now,
  });
}

function names(plan: Plan<Spec>): string[] {
  return plan.targets.map((e) => e.address);
}

function entry(p: TargetPool<Spec>, name: string): PoolTarget<Spec> {
  const found = p.get(name);
  assert.ok(found, `no target ${name}`);
  return found;
}

function hold(p: TargetPool<Spec>, name: string, connections: number): void {
  for (let i = 0; i < connections; i++) p.connected(entry(p, name));
}

/** seeded is a small deterministic random source (mulberry32). */
function seeded(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ipv4 = fc
  .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
  .map((parts) => parts.join('.'));

/** A pool's targets: weights, states and open connections. */
const targetSets = fc.array(
  fc.record({
    weight: fc.integer({ min: 1, max: 5 }),
    state: fc.constantFrom('up', 'up', 'down', 'drained'),
    connections: fc.integer({ min: 0, max: 20 }),
    backup: fc.boolean(),
  }),
  { minLength: 1, maxLength: 10 },
);

type TargetSet = {
  weight: number;
  state: string;
  connections: number;
  backup: boolean;
}[];

function poolOf(set: TargetSet, policy: BalancePolicy, random?: RandomSource): TargetPool<Spec> {
  const p = pool(
    set.map((t, i) => ({ name: `t${i}`, weight: t.weight, backup: t.backup })),
    policy,
    { random },
  );
  set.forEach((t, i) => {
    p.setDown(`t${i}`, t.state === 'down');
    p.setDrained(`t${i}`, t.state === 'drained');
    hold(p, `t${i}`, t.connections);
  });
  return p;
}

describe('least-connections', () => {
  test('picks the target with the fewest open connections', () => {
    const p = pool(['A', 'B', 'C'], 'least-connections');
    hold(p, 'A', 3);
    hold(p, 'B', 1);
    hold(p, 'C', 2);
    assert.deepEqual(names(p.plan(undefined)), ['B', 'C', 'A']);
  });

  test('counts connections relative to weight: 4 on weight 4 is lighter than 2 on weight 1', () => {
    const p = pool([{ name: 'A', weight: 4 }, { name: 'B' }], 'least-connections');
    hold(p, 'A', 4);
    hold(p, 'B', 2);
    assert.equal(names(p.plan(undefined))[0], 'A');
  });

  test('takes turns among targets with equal load', () => {
    const p = pool(['A', 'B', 'C'], 'least-connections');
    const firsts = Array.from({ length: 6 }, () => names(p.plan(undefined))[0]).join('');
    assert.equal(firsts, 'ABCABC');
  });

  test('always picks a minimum of connections / weight among usable candidates', () => {
    fc.assert(
      fc.property(targetSets, (set) => {
        const p = poolOf(set, 'least-connections');
        const plan = p.plan(undefined);
        const pick = plan.targets[0];
        if (pick === undefined) return;
        for (const other of plan.targets) {
          assert.ok(
            pick.connections / pick.weight <= other.connections / other.weight,
            `${pick.address} (${pick.connections}/${pick.weight}) over ${other.address} (${other.connections}/${other.weight})`,
          );
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('random-two', () => {
  test('of two targets it always picks the one with fewer connections', () => {
    const p = pool(['A', 'B'], 'random-two', { random: seeded(1) });
    hold(p, 'A', 5);
    hold(p, 'B', 2);
    for (let i = 0; i < 20; i++) assert.equal(names(p.plan(undefined))[0], 'B');
  });

  test('never picks the worse of the two targets it drew', () => {
    fc.assert(
      fc.property(targetSets, fc.integer(), (set, seed) => {
        // The strategy and drawTwo read the same sequence of random numbers.
        const p = poolOf(set, 'random-two', seeded(seed));
        const plan = p.plan(undefined);
        const [a, b] = drawTwo(p.candidates, seeded(seed));
        const pick = plan.targets[0];
        if (a < 0) {
          assert.equal(pick, undefined);
          return;
        }
        const drawn = [p.candidates[a], p.candidates[b]];
        assert.ok(pick !== undefined && drawn.includes(pick), 'the pick is one of the two');
        for (const other of drawn) {
          assert.ok(other !== undefined);
          assert.ok(pick.connections / pick.weight <= other.connections / other.weight);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('spreads idle targets by weight: 3, 1 gives about 3 to 1', () => {
    const p = pool([{ name: 'A', weight: 3 }, { name: 'B' }], 'random-two', {
      random: seeded(7),
    });
    // Both idle: the first drawn wins, and it is drawn by weight.
    const count = { A: 0, B: 0 };
    for (let i = 0; i < 4000; i++) count[names(p.plan(undefined))[0] as 'A' | 'B'] += 1;
    const share = count.A / 4000;
    assert.ok(share > 0.7 && share < 0.8, `A got ${share}`);
  });
});

describe('source-hash', () => {
  function owners(p: TargetPool<Spec>, clients: readonly string[]): string[] {
    return clients.map((c) => names(p.plan(c))[0] ?? '-');
  }

  function randomClients(count: number, seed: number): string[] {
    const random = seeded(seed);
    return Array.from({ length: count }, () =>
      Array.from({ length: 4 }, () => Math.floor(random() * 256)).join('.'),
    );
  }

  test('sends the same address to the same target, whatever came before', () => {
    fc.assert(
      fc.property(fc.array(ipv4, { minLength: 1, maxLength: 20 }), ipv4, (before, client) => {
        const p = pool(['A', 'B', 'C', 'D', 'E'], 'source-hash');
        const first = names(p.plan(client));
        for (const other of before) p.plan(other);
        assert.deepEqual(names(p.plan(client)), first);
        assert.deepEqual(names(pool(['A', 'B', 'C', 'D', 'E'], 'source-hash').plan(client)), first);
      }),
      { numRuns: 200 },
    );
  });

  // 5000 addresses: the share that moves is binomial, its standard deviation at most
  // 0.7 %; the tolerance, 3 percentage points, is over four of them.
  const TOLERANCE = 0.03;
  const clients = randomClients(5000, 42);

  for (let n = 2; n <= 8; n++) {
    test(`adding a target to ${n} moves about 1/${n + 1} of 5000 clients, all to the new target`, () => {
      const targets = Array.from({ length: n }, (_, i) => `10.0.0.${i}:80`);
      const p = pool(targets, 'source-hash');
      const before = owners(p, clients);
      p.update([...targets, `10.0.0.${n}:80`].map((name) => ({ name })));
      const after = owners(p, clients);
      const moved = after.filter((owner, i) => owner !== before[i]);
      assert.ok(moved.every((owner) => owner === `10.0.0.${n}:80`));
      const share = moved.length / clients.length;
      assert.ok(
        Math.abs(share - 1 / (n + 1)) <= TOLERANCE,
        `moved ${share}, expected ${1 / (n + 1)}`,
      );
    });

    test(`removing one of ${n + 1} targets moves only its clients, about 1/${n + 1}`, () => {
      const targets = Array.from({ length: n + 1 }, (_, i) => `10.0.0.${i}:80`);
      const p = pool(targets, 'source-hash');
      const before = owners(p, clients);
      const gone = targets[1] as string;
      p.update(targets.filter((t) => t !== gone).map((name) => ({ name })));
      const after = owners(p, clients);
      const moved = after.filter((owner, i) => owner !== before[i]);
      assert.equal(moved.length, before.filter((owner) => owner === gone).length);
      const share = moved.length / clients.length;
      assert.ok(
        Math.abs(share - 1 / (n + 1)) <= TOLERANCE,
        `moved ${share}, expected ${1 / (n + 1)}`,
      );
    });
  }

  test("a down target's clients spread over all the others, not onto one neighbour", () => {
    const p = pool(['A', 'B', 'C', 'D', 'E'], 'source-hash');
    const before = owners(p, clients);
    p.setDown('B', true);
    const after = owners(p, clients);
    const landed = new Map<string, number>();
    before.forEach((owner, i) => {
      if (owner !== 'B') {
        assert.equal(after[i], owner, 'clients of other targets stay');
        return;
      }
      const to = after[i] ?? '-';
      landed.set(to, (landed.get(to) ?? 0) + 1);
    });
    const total = [...landed.values()].reduce((a, b) => a + b, 0);
    assert.deepEqual([...landed.keys()].sort(), ['A', 'C', 'D', 'E']);
    for (const [to, count] of landed) {
      assert.ok(Math.abs(count / total - 0.25) <= 0.06, `${to} got ${count} of ${total}`);
    }
  });

  test('weights: a target of weight 3 among three of weight 1 gets about half the clients', () => {
    const p = pool([{ name: 'A', weight: 3 }, 'B', 'C', 'D'], 'source-hash');
    const share = owners(p, clients).filter((o) => o === 'A').length / clients.length;
    assert.ok(Math.abs(share - 0.5) <= TOLERANCE, `A got ${share}`);
  });

  test('is round-robin for a client without an address (a Unix socket)', () => {
    const p = pool(['A', 'B', 'C'], 'source-hash');
    const firsts = Array.from({ length: 3 }, () => names(p.plan(undefined))[0]).join('');
    assert.equal(firsts, 'ABC');
  });
});

describe('every policy', () => {
  for (const policy of BALANCE_POLICIES) {
    test(`${policy}: a plan lists each usable candidate once and skips the rest`, () => {
      fc.assert(
        fc.property(targetSets, fc.integer(), ipv4, (set, seed, client) => {
          const p = poolOf(set, policy, seeded(seed));
          const plan = p.plan(client);
          const tried = names(plan);
          assert.equal(new Set(tried).size, tried.length, 'no target twice');
          const usable = p.candidates.filter((e) => !e.down && !e.drained).map((e) => e.address);
          assert.deepEqual([...tried].sort(), [...usable].sort());
          for (const skipped of plan.skipped) assert.ok(skipped.down || skipped.drained);
        }),
        { numRuns: 200 },
      );
    });

    test(`${policy}: backups get connections only while no primary is up`, () => {
      fc.assert(
        fc.property(targetSets, fc.integer(), ipv4, (set, seed, client) => {
          const p = poolOf(set, policy, seeded(seed));
          const primaryUp = set.some((t) => !t.backup && t.state === 'up');
          for (const target of p.plan(client).targets) {
            assert.equal(target.backup, !primaryUp && set.some((t) => t.backup), target.address);
          }
        }),
        { numRuns: 200 },
      );
    });
  }

  test('primaries down: the backups take the connections, and the primaries are listed as skipped', () => {
    const p = pool(
      ['A', 'B', { name: 'X', backup: true }, { name: 'Y', backup: true }],
      'round-robin',
    );
    assert.deepEqual(names(p.plan(undefined)), ['A', 'B']);
    p.setDown('A', true);
    assert.deepEqual(names(p.plan(undefined)), ['B']);
    p.setDrained('B', true);
    const plan = p.plan(undefined);
    assert.deepEqual(names(plan), ['X', 'Y']);
    assert.deepEqual(
      plan.skipped.map((e) => e.address),
      ['A', 'B'],
    );
    assert.deepEqual(names(p.plan(undefined)), ['Y', 'X'], 'backups take turns');
    p.setDown('A', false);
    assert.deepEqual(names(p.plan(undefined)), ['A']);
  });

  test('a reload can change the policy; the targets keep their state', () => {
    const p = pool(['A', 'B'], 'round-robin');
    hold(p, 'A', 2);
    p.strategy = strategyFor('least-connections');
    assert.deepEqual(names(p.plan(undefined)), ['B', 'A']);
  });
});

describe('passive retry of a down target', () => {
  test('after retryAfterMs one connection tries it first, then the next one waits again', () => {
    let now = 1000;
    const p = pool(['A', 'B'], 'round-robin', { now: () => now });
    p.retryAfterMs = 10_000;
    p.setDown('A', true);
    assert.deepEqual(names(p.plan(undefined)), ['B']);
    now += 9_999;
    assert.deepEqual(names(p.plan(undefined)), ['B']);
    now += 1;
    const trial = p.plan(undefined);
    assert.deepEqual(names(trial), ['A', 'B'], 'the down target first, then the usual plan');
    assert.deepEqual(trial.skipped, []);
    assert.deepEqual(names(p.plan(undefined)), ['B'], 'one connection at a time');
    now += 10_000;
    assert.deepEqual(names(p.plan(undefined)), ['A', 'B']);
  });

  test('a down backup is not tried while a primary serves; a down primary is, while backups serve', () => {
    let now = 0;
    const p = pool(['A', 'B', { name: 'X', backup: true }], 'round-robin', { now: () => now });
    p.retryAfterMs = 10_000;
    p.setDown('X', true);
    now += 10_000;
    assert.deepEqual(names(p.plan(undefined)), ['A', 'B']);
    p.setDown('X', false);
    p.setDown('A', true);
    p.setDown('B', true);
    now += 10_000;
    assert.deepEqual(names(p.plan(undefined)), ['A', 'X'], 'the primary A tried first');
  });

  test('with retryAfterMs 0 (health checks on) a down target gets no connection', () => {
    let now = 0;
    const p = pool(['A', 'B'], 'round-robin', { now: () => now });
    p.setDown('A', true);
    now += 3_600_000;
    assert.deepEqual(names(p.plan(undefined)), ['B']);
  });
});
