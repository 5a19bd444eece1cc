/**
 * Plans per second of each balancing policy (`balance`), in this process: what a
 * new connection pays to choose its targets (TargetPool.plan, upstream/balance.ts).
 * In the table the "direct" column is plain round-robin with the same targets and
 * the "proxy" column the policy, so the ratio is the policy's cost against the
 * default. Every target is up; each plan gets a client address from a set of 1024
 * (source-hash hashes it; the others ignore it); least-connections and random-two
 * see open connections spread unevenly over the targets.
 */
import { type BalancePolicy, strategyFor } from '../src/upstream/balance.js';
import { TargetPool } from '../src/upstream/target-pool.js';
import type { Row, Scenario, Settings } from './lib.js';

const TARGET_COUNTS = [2, 8, 32] as const;
const POLICIES: readonly BalancePolicy[] = ['least-connections', 'random-two', 'source-hash'];
const BATCH = 1024;
const MAX_OPS = 1e9;
const CLIENTS = Array.from({ length: 1024 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.7`);

function poolOf(count: number, policy: BalancePolicy): TargetPool<string> {
  const targets = Array.from({ length: count }, (_, i) => `10.0.0.${i}:8080`);
  const pool = new TargetPool(targets, {
    addressOf: (t) => t,
    strategy: strategyFor(policy),
  });
  pool.entries.forEach((entry, i) => {
    entry.connections = (i * 7) % 13;
  });
  return pool;
}

// Plans per second: batches until `ms` have passed (after a warm-up for the JIT).
function plansPerSecond(pool: TargetPool<string>, ms: number): number {
  let sink = 0;
  const run = (limitMs: number): number => {
    const start = performance.now();
    let ops = 0;
    while (ops < MAX_OPS) {
      for (let j = 0; j < BATCH; j++) {
        sink += pool.plan(CLIENTS[(ops + j) & 1023]).targets.length;
      }
      ops += BATCH;
      if (performance.now() - start >= limitMs) break;
    }
    return ops / ((performance.now() - start) / 1000);
  };
  run(Math.max(20, ms / 5));
  const rate = run(ms);
  if (sink < 0) throw new Error('unreachable'); // keeps the plans from being optimised away
  return rate;
}

function rows(settings: Settings): Row[] {
  const result: Row[] = [];
  for (const count of TARGET_COUNTS) {
    const baseline = plansPerSecond(poolOf(count, 'round-robin'), settings.timerSetMs);
    for (const policy of POLICIES) {
      result.push({
        id: `balance.${policy.replace('-', '_')}_${count}`,
        scenario: `${policy} vs round-robin, ${count} targets`,
        metric: 'plans/s',
        direct: baseline,
        proxy: plansPerSecond(poolOf(count, policy), settings.timerSetMs),
        digits: 0,
      });
    }
  }
  return result;
}

/** balance is the micro-benchmark of the balancing policies. */
export const balance: Scenario = {
  ids: ['balance'],
  async run(settings, only) {
    return only('balance') ? rows(settings) : [];
  },
};
