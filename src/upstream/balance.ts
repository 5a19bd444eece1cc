/**
 * The balancing policies of `--balance`, each a Strategy of the target pool
 * (target-pool.ts, where the default, `roundRobin`, lives).
 *
 * Every policy chooses among the pool's `candidates` (the primaries, or the backups
 * once no primary is up), never a drained or down one, and every plan lists each
 * usable candidate once, so failover still reaches every target:
 *
 * - `least-connections`: the target with the fewest open connections relative to its
 *   weight (connections / weight, compared without dividing). Ties go round-robin, so
 *   targets with equal load take turns. Failover walks the list on from the pick.
 * - `random-two`: two different targets drawn at random, each with probability
 *   proportional to its weight; the one with fewer connections relative to weight
 *   wins (the first drawn on a tie). Failover walks the list on from the pick.
 * - `source-hash`: weighted rendezvous hashing of the client's address. Every target
 *   gets a score from hash(client, target): `-weight / ln(u)`, with `u` the hash as a
 *   number in (0, 1); the plan is the targets by score, highest first. A client keeps
 *   its target while that target is usable; adding or removing one of N targets moves
 *   only the clients whose best score changes, about 1/N of them; the clients of a
 *   down target go to their second-best target, which is spread over all the others,
 *   not one neighbour. Without a client address (a Unix socket) it is round-robin.
 *
 * Open connections count once established (TargetPool.connected), so clients that
 * arrive within one connect time of each other see the same counts; the round-robin
 * tie-break of least-connections spreads such a burst.
 *
 * Cost per plan: O(N) for least-connections and random-two, O(N^2) at worst for
 * source-hash (N scores, kept in order by insertion; N is a handful), one array of the plan per connection for all.
 */
import { fmix32, hashString } from './hash.js';
import {
  isUsable,
  type Plan,
  type PoolTarget,
  planFrom,
  roundRobin,
  type Strategy,
  type TargetPool,
} from './target-pool.js';

/** BALANCE_POLICIES are the values of `--balance`, the default first. */
export const BALANCE_POLICIES = [
  'round-robin',
  'least-connections',
  'random-two',
  'source-hash',
] as const;

/** BalancePolicy is one of BALANCE_POLICIES. */
export type BalancePolicy = (typeof BALANCE_POLICIES)[number];

/** RandomSource returns a number in [0, 1), as Math.random does (the default). */
export type RandomSource = () => number;

/** strategyFor gives the Strategy of a policy; `random` is random-two's source (default Math.random). */
export function strategyFor<T>(
  policy: BalancePolicy,
  random: RandomSource = Math.random,
): Strategy<T> {
  switch (policy) {
    case 'round-robin':
      return roundRobin;
    case 'least-connections':
      return leastConnections;
    case 'random-two':
      return randomTwo(random);
    case 'source-hash':
      return sourceHash;
  }
}

/** lighter: `a` has fewer connections relative to its weight than `b` (a.c / a.w < b.c / b.w). */
function lighter(a: PoolTarget<unknown>, b: PoolTarget<unknown>): boolean {
  return a.connections * b.weight < b.connections * a.weight;
}

/** leastConnections is the `least-connections` Strategy (see the module comment). */
export function leastConnections<T>(pool: TargetPool<T>, _client: string | undefined): Plan<T> {
  const entries = pool.candidates;
  const count = entries.length;
  const start = pool.nextStart();
  let best = -1;
  for (let i = 0; i < count; i++) {
    const at = (start + i) % count;
    const entry = entries[at] as PoolTarget<T>;
    if (!isUsable(entry)) continue;
    if (best < 0 || lighter(entry, entries[best] as PoolTarget<T>)) best = at;
  }
  return planFrom(entries, best < 0 ? start : best);
}

/**
 * drawTwo draws two different usable entries, each with probability proportional to
 * its weight (the second among the rest), calling `random` twice; it returns their
 * indices, or one index (twice) when only one is usable, or [-1, -1] when none is.
 */
export function drawTwo(
  entries: readonly PoolTarget<unknown>[],
  random: RandomSource,
): [number, number] {
  let total = 0;
  for (const entry of entries) if (isUsable(entry)) total += entry.weight;
  const first = drawOne(entries, random() * total, -1);
  if (first < 0) return [-1, -1];
  const rest = total - (entries[first] as PoolTarget<unknown>).weight;
  if (rest === 0) return [first, first];
  return [first, drawOne(entries, random() * rest, first)];
}

// The usable entry (other than `except`) in whose share of the weights `point` lies.
function drawOne(entries: readonly PoolTarget<unknown>[], point: number, except: number): number {
  let last = -1;
  let sum = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as PoolTarget<unknown>;
    if (i === except || !isUsable(entry)) continue;
    sum += entry.weight;
    last = i;
    if (point < sum) return i;
  }
  return last; // rounding at the very top of the range
}

/** randomTwo makes the `random-two` Strategy with its random source (see the module comment). */
export function randomTwo<T>(random: RandomSource = Math.random): Strategy<T> {
  return (pool) => {
    const entries = pool.candidates;
    const [a, b] = drawTwo(entries, random);
    if (a < 0) return planFrom(entries, 0);
    const pick = lighter(entries[b] as PoolTarget<T>, entries[a] as PoolTarget<T>) ? b : a;
    return planFrom(entries, pick);
  };
}

/** sourceHash is the `source-hash` Strategy (see the module comment). */
export function sourceHash<T>(pool: TargetPool<T>, client: string | undefined): Plan<T> {
  if (client === undefined) return roundRobin(pool, client);
  const entries = pool.candidates;
  const clientHash = hashString(client);
  const targets: PoolTarget<T>[] = [];
  const skipped: PoolTarget<T>[] = [];
  const scores: number[] = [];
  for (const entry of entries) {
    if (!isUsable(entry)) {
      skipped.push(entry);
      continue;
    }
    // Insertion by score, highest first: targets and scores stay in step. Lists of
    // targets are short; for them this beats a sort with a comparator closure.
    const score = rendezvousScore(clientHash, entry);
    let at = targets.length;
    targets.push(entry);
    scores.push(score);
    while (at > 0 && (scores[at - 1] as number) < score) {
      targets[at] = targets[at - 1] as PoolTarget<T>;
      scores[at] = scores[at - 1] as number;
      at -= 1;
    }
    targets[at] = entry;
    scores[at] = score;
  }
  return { targets, skipped };
}

/** rendezvousScore is a target's weighted score for a client: higher wins. */
export function rendezvousScore(clientHash: number, entry: PoolTarget<unknown>): number {
  // u in (0, 1): never 0 or 1, so the log is finite and negative.
  const u = (fmix32(clientHash ^ entry.addressHash) + 0.5) / 4294967296;
  return -entry.weight / Math.log(u);
}
