/**
 * TargetPool: a listener's targets, their state, and the plan each connection follows.
 *
 * Every target has a state (`up`, `down`, `drained`) and a count of the connections
 * open to it. A new connection asks the pool for a *plan*: the targets to try, in
 * order, until one accepts (failover). Which plan is a `Strategy`, one function:
 * `roundRobin` here (the default), the others in balance.ts. Round-robin:
 *
 * Each new connection starts one target further than the previous one did; if a
 * target fails (refused, unreachable, timed out), that connection moves on to the
 * next target in the list, wrapping around, until every target was tried once.
 * So with targets [A, B, C] the first connection tries A, B, C; the second B, C, A.
 * With weights, where a connection starts follows smooth weighted round-robin (as
 * nginx does): weights 5, 1, 1 give A A B A C A A, spread out rather than A five
 * times in a row. Failover still walks the list in order from the start. A target
 * that is drained (or down) is left out of the plan, and listed as skipped.
 *
 * Backup targets (`backup: true`) form a second group with its own rotation. A
 * strategy sees one group, `candidates`: the primaries while any of them is up, the
 * backups once none is. Counts of up targets are kept on every change of state, so
 * choosing the group costs one comparison per plan.
 *
 * Passive retry: a target that went down while `retryAfterMs` > 0 (health checks
 * off) is put first in one connection's plan once `retryAfterMs` has passed, so that
 * one real connection tries it (target-health.ts brings it back when it connects).
 * The check costs one comparison per plan while no target is down.
 *
 * Pure bookkeeping: no sockets here. The listener owns the pool and keeps it across
 * reloads: a target that stays keeps its state and connection count.
 */

import { hashString } from './hash.js';

/** TargetState: `up` takes new connections; `down` failed its health check; `drained` was taken out by an operator. */
export type TargetState = 'up' | 'down' | 'drained';

/** PoolTarget is one target in a pool with its state; the pool owns and updates it. */
export interface PoolTarget<T> {
  /** target is the configured target; a reload that keeps the address may replace it. */
  target: T;
  readonly address: string;
  /** addressHash: a 32-bit hash of `address`, for source hashing (balance.ts). */
  readonly addressHash: number;
  /** weight: the target's relative share (a whole number >= 1); a reload may change it. */
  weight: number;
  /** backup: used only while no primary (non-backup) target is up. */
  backup: boolean;
  /** drained: an operator took it out of rotation (admin drain). */
  drained: boolean;
  /** down: health checks (or failed connects) found it unreachable (target-health.ts). */
  down: boolean;
  /** connections counts the connections established to it and not yet closed. */
  connections: number;
  /** retryAtMs: while down, when one connection may try it (see the module comment); Infinity: never. */
  retryAtMs: number;
  /** fails and passes: consecutive failed and passed checks or connects. Owned by TargetHealth. */
  fails: number;
  passes: number;
}

/** Plan is what one connection tries: `targets` in order, and the ones left out. */
export interface Plan<T> {
  readonly targets: readonly PoolTarget<T>[];
  /**
   * skipped lists the targets left out because they are drained or down: those of
   * the candidates in the order they were passed, after every primary when the
   * backups are in use. Backups not in use are not listed.
   */
  readonly skipped: readonly PoolTarget<T>[];
}

/**
 * Strategy makes one connection's plan from `pool.candidates`. `client` is the
 * client's IP address (for source hashing), undefined when unknown (a Unix socket
 * client). Each way to balance is one Strategy (balance.ts).
 */
export type Strategy<T> = (pool: TargetPool<T>, client: string | undefined) => Plan<T>;

/** PoolOptions: how to read a target's address, weight (a whole number >= 1) and backup flag. */
export interface PoolOptions<T> {
  addressOf: (target: T) => string;
  weightOf?: (target: T) => number;
  /** backupOf: whether a target is a backup; default none is. */
  backupOf?: (target: T) => boolean;
  /** strategy makes each plan; default roundRobin. */
  strategy?: Strategy<T>;
  /** now: the clock for passive retries, in ms; default `performance.now`. */
  now?: () => number;
}

/** stateOf gives a pool target's state: drained wins over down (an operator's word is final). */
export function stateOf(entry: PoolTarget<unknown>): TargetState {
  if (entry.drained) return 'drained';
  return entry.down ? 'down' : 'up';
}

/** isUsable: the target may get new connections (neither drained nor down). */
export function isUsable(entry: PoolTarget<unknown>): boolean {
  return !entry.drained && !entry.down;
}

/**
 * Rotation is one group's round-robin position: plain rotation when every weight is
 * equal, smooth weighted round-robin otherwise (every target gains its weight, the
 * richest is picked and pays the total back; over sum(weights) picks each is chosen
 * weight times).
 */
class Rotation<T> {
  readonly entries: readonly PoolTarget<T>[];
  readonly #weighted: boolean;
  readonly #current: number[];
  readonly #totalWeight: number;
  #next = 0;

  constructor(entries: readonly PoolTarget<T>[]) {
    this.entries = entries;
    const first = entries[0]?.weight;
    this.#weighted = entries.some((e) => e.weight !== first);
    this.#current = entries.map(() => 0);
    this.#totalWeight = entries.reduce((sum, e) => sum + e.weight, 0);
  }

  nextStart(): number {
    const count = this.entries.length;
    if (count === 0) return 0;
    if (!this.#weighted) {
      const start = this.#next;
      this.#next = (start + 1) % count;
      return start;
    }
    const current = this.#current;
    let best = 0;
    for (let i = 0; i < count; i++) {
      current[i] = (current[i] ?? 0) + (this.entries[i]?.weight ?? 1);
      if ((current[i] ?? 0) > (current[best] ?? 0)) best = i;
    }
    current[best] = (current[best] ?? 0) - this.#totalWeight;
    return best;
  }
}

/** TargetPool holds a listener's targets in configured order; see the module comment. */
export class TargetPool<T> {
  #entries: PoolTarget<T>[] = [];
  readonly #byAddress = new Map<string, PoolTarget<T>>();
  readonly #addressOf: (target: T) => string;
  readonly #weightOf: (target: T) => number;
  readonly #backupOf: (target: T) => boolean;
  readonly #now: () => number;
  #strategy: Strategy<T>;
  #primaries: Rotation<T> = new Rotation<T>([]);
  #backups: Rotation<T> = new Rotation<T>([]);
  /** #active is the rotation strategies choose from: #primaries, or #backups while no primary is up. */
  #active: Rotation<T> = this.#primaries;
  /** #plain: nothing is down and the primaries serve, so a plan needs no adjusting. */
  #plain = true;
  #primariesUp = 0;
  #backupsUp = 0;
  #downCount = 0;
  /**
   * retryAfterMs: how long a down target waits before one connection may try it
   * (passive health with checks off); 0, the default, means never: only health
   * checks bring it back. Set by whoever runs the target health (target-health.ts).
   */
  retryAfterMs = 0;

  constructor(targets: readonly T[], options: PoolOptions<T>) {
    this.#addressOf = options.addressOf;
    this.#weightOf = options.weightOf ?? (() => 1);
    this.#backupOf = options.backupOf ?? (() => false);
    this.#strategy = options.strategy ?? roundRobin;
    this.#now = options.now ?? (() => performance.now());
    this.update(targets);
  }

  /** entries are the pool's targets in configured order, backups included. */
  get entries(): readonly PoolTarget<T>[] {
    return this.#entries;
  }

  /**
   * candidates are the targets a strategy chooses from, in configured order: the
   * primaries while one of them is up (or there are no backups), else the backups.
   */
  get candidates(): readonly PoolTarget<T>[] {
    return this.#active.entries;
  }

  /** usingBackups: no primary target is up and there are backups, so they take the connections. */
  get usingBackups(): boolean {
    return this.#active === this.#backups;
  }

  /** upCount is the number of targets that are up (primaries and backups). */
  get upCount(): number {
    return this.#primariesUp + this.#backupsUp;
  }

  /** strategy makes each plan; a reload may replace it (`--balance`). */
  get strategy(): Strategy<T> {
    return this.#strategy;
  }

  set strategy(strategy: Strategy<T>) {
    this.#strategy = strategy;
  }

  /** now reads the pool's clock (ms). */
  now(): number {
    return this.#now();
  }

  /** get returns the pool target with this address, if any. */
  get(address: string): PoolTarget<T> | undefined {
    return this.#byAddress.get(address);
  }

  /**
   * update replaces the target list (a reload). A target whose address stays keeps
   * its entry: state, health counters and open connections carry over; its weight
   * and backup flag follow the new list. Round-robin starts afresh.
   */
  update(targets: readonly T[]): void {
    if (targets.length === 0) throw new RangeError('TargetPool needs at least one target');
    const old = new Map(this.#byAddress);
    this.#byAddress.clear();
    this.#entries = targets.map((target) => {
      const address = this.#addressOf(target);
      const entry = old.get(address) ?? newEntry(target, address);
      entry.target = target;
      entry.weight = this.#weightOf(target);
      entry.backup = this.#backupOf(target);
      this.#byAddress.set(address, entry);
      return entry;
    });
    this.#primaries = new Rotation(this.#entries.filter((e) => !e.backup));
    this.#backups = new Rotation(this.#entries.filter((e) => e.backup));
    this.#countStates();
  }

  /** plan returns the targets one new connection tries, in order (see Strategy). */
  plan(client: string | undefined): Plan<T> {
    const plan = this.#strategy(this, client);
    if (this.#plain) return plan;
    return this.#adjust(plan);
  }

  /** nextStart returns where the next round-robin connection begins in `candidates`, and advances. */
  nextStart(): number {
    return this.#active.nextStart();
  }

  /** setDrained takes a target out of rotation or puts it back; false if there is none. */
  setDrained(address: string, drained: boolean): boolean {
    const entry = this.#byAddress.get(address);
    if (entry === undefined) return false;
    entry.drained = drained;
    this.#countStates();
    return true;
  }

  /**
   * setDown marks a target down (a failed health check) or up again; false if there
   * is none. Going down arms the passive retry when `retryAfterMs` > 0.
   */
  setDown(address: string, down: boolean): boolean {
    const entry = this.#byAddress.get(address);
    if (entry === undefined) return false;
    if (down && !entry.down)
      entry.retryAtMs =
        this.retryAfterMs > 0 ? this.#now() + this.retryAfterMs : Number.POSITIVE_INFINITY;
    if (!down) entry.retryAtMs = Number.POSITIVE_INFINITY;
    entry.down = down;
    this.#countStates();
    return true;
  }

  /** connected counts a connection established to `entry`; closed must follow once. */
  connected(entry: PoolTarget<T>): void {
    entry.connections += 1;
    this.observer?.connected(entry);
  }

  /** closed counts down a connection that `connected` counted. */
  closed(entry: PoolTarget<T>): void {
    entry.connections -= 1;
  }

  /**
   * failed reports a connect attempt to `entry` that failed with errno `code`
   * (passive health). It changes nothing in the pool itself.
   */
  failed(entry: PoolTarget<T>, code: string): void {
    this.observer?.failed(entry, code);
  }

  /** observer hears of connects and failed attempts (TargetHealth); null: nobody listens. */
  observer: PoolObserver<T> | null = null;

  #countStates(): void {
    let primariesUp = 0;
    let backupsUp = 0;
    let down = 0;
    for (const entry of this.#entries) {
      if (entry.down) down += 1;
      if (!isUsable(entry)) continue;
      if (entry.backup) backupsUp += 1;
      else primariesUp += 1;
    }
    this.#primariesUp = primariesUp;
    this.#backupsUp = backupsUp;
    this.#downCount = down;
    const backups = primariesUp === 0 && this.#backups.entries.length > 0;
    this.#active = backups ? this.#backups : this.#primaries;
    this.#plain = down === 0 && !backups;
  }

  // The rare paths: primaries listed as skipped while backups serve, and a down
  // target due for its passive retry put first (moving its retry on, so that only
  // one connection at a time tries it).
  #adjust(plan: Plan<T>): Plan<T> {
    let targets = plan.targets;
    let skipped = this.usingBackups ? [...this.#primaries.entries, ...plan.skipped] : plan.skipped;
    if (this.#downCount > 0 && this.retryAfterMs > 0) {
      const now = this.#now();
      // A backup is tried only while backups serve; a primary always (to bring it back).
      const backups = this.usingBackups;
      const trial = this.#entries.find(
        (e) => e.down && !e.drained && e.retryAtMs <= now && (!e.backup || backups),
      );
      if (trial !== undefined) {
        trial.retryAtMs = now + this.retryAfterMs;
        targets = [trial, ...targets];
        skipped = skipped.filter((e) => e !== trial);
      }
    }
    return { targets, skipped };
  }
}

/** PoolObserver hears of every connect (`connected`) and failed connect attempt (`failed`). */
export interface PoolObserver<T> {
  connected(entry: PoolTarget<T>): void;
  failed(entry: PoolTarget<T>, code: string): void;
}

function newEntry<T>(target: T, address: string): PoolTarget<T> {
  return {
    target,
    address,
    addressHash: hashString(address),
    weight: 1,
    backup: false,
    drained: false,
    down: false,
    connections: 0,
    retryAtMs: Number.POSITIVE_INFINITY,
    fails: 0,
    passes: 0,
  };
}

/**
 * planFrom walks `entries` from `start` in order with wrap-around: the usable ones
 * are the plan's targets, the rest its skipped. The failover order of every
 * strategy but source-hash.
 */
export function planFrom<T>(entries: readonly PoolTarget<T>[], start: number): Plan<T> {
  const targets: PoolTarget<T>[] = [];
  const skipped: PoolTarget<T>[] = [];
  const count = entries.length;
  for (let i = 0; i < count; i++) {
    const entry = entries[(start + i) % count] as PoolTarget<T>;
    if (isUsable(entry)) targets.push(entry);
    else skipped.push(entry);
  }
  return { targets, skipped };
}

/**
 * roundRobin is the default Strategy: start at the next round-robin position, then
 * walk the candidates in order with wrap-around, leaving out drained and down targets.
 */
export function roundRobin<T>(pool: TargetPool<T>, _client: string | undefined): Plan<T> {
  return planFrom(pool.candidates, pool.nextStart());
}
