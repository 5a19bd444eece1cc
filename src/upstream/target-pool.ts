/**
 * TargetPool: a listener's targets, their state, and the plan each connection follows.
 *
 * Every target has a state (`up`, `down`, `drained`) and a count of the connections
 * open to it. A new connection asks the pool for a *plan*: the targets to try, in
 * order, until one accepts (failover). Which plan is a `Strategy`, one function; the
 * only one today is round-robin:
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
 * Pure bookkeeping: no sockets here. The listener owns the pool and keeps it across
 * reloads: a target that stays keeps its state and connection count.
 */

/** TargetState: `up` takes new connections; `down` failed its health check; `drained` was taken out by an operator. */
export type TargetState = 'up' | 'down' | 'drained';

/** PoolTarget is one target in a pool with its state; the pool owns and updates it. */
export interface PoolTarget<T> {
  /** target is the configured target; a reload that keeps the address may replace it. */
  target: T;
  readonly address: string;
  /** drained: an operator took it out of rotation (admin drain). */
  drained: boolean;
  /** down: a health check found it unreachable (set by nothing but tests yet). */
  down: boolean;
  /** connections counts the connections established to it and not yet closed. */
  connections: number;
}

/** Plan is what one connection tries: `targets` in order, and the ones left out. */
export interface Plan<T> {
  readonly targets: readonly PoolTarget<T>[];
  /** skipped lists the targets left out (drained or down), in the order they were passed. */
  readonly skipped: readonly PoolTarget<T>[];
}

/**
 * Strategy makes one connection's plan. `client` is the client's IP address (for
 * source hashing), undefined when unknown (a Unix socket client). A new way to
 * balance (least connections, random two, source hash, backups) is one Strategy.
 */
export type Strategy<T> = (pool: TargetPool<T>, client: string | undefined) => Plan<T>;

/** PoolOptions: how to read a target's address and weight (a whole number >= 1). */
export interface PoolOptions<T> {
  addressOf: (target: T) => string;
  weightOf?: (target: T) => number;
  /** strategy makes each plan; default roundRobin. */
  strategy?: Strategy<T>;
}

/** stateOf gives a pool target's state: drained wins over down (an operator's word is final). */
export function stateOf(entry: PoolTarget<unknown>): TargetState {
  if (entry.drained) return 'drained';
  return entry.down ? 'down' : 'up';
}

/** TargetPool holds a listener's targets in configured order; see the module comment. */
export class TargetPool<T> {
  #entries: PoolTarget<T>[] = [];
  readonly #byAddress = new Map<string, PoolTarget<T>>();
  readonly #addressOf: (target: T) => string;
  readonly #weightOf: (target: T) => number;
  readonly #strategy: Strategy<T>;
  /** Round-robin state, reset when the target list changes. */
  #next = 0;
  /** Weights, or null when all are equal (then plain rotation does the same, cheaper). */
  #weights: readonly number[] | null = null;
  #current: number[] = [];
  #totalWeight = 0;

  constructor(targets: readonly T[], options: PoolOptions<T>) {
    this.#addressOf = options.addressOf;
    this.#weightOf = options.weightOf ?? (() => 1);
    this.#strategy = options.strategy ?? roundRobin;
    this.update(targets);
  }

  /** entries are the pool's targets in configured order. */
  get entries(): readonly PoolTarget<T>[] {
    return this.#entries;
  }

  /** get returns the pool target with this address, if any. */
  get(address: string): PoolTarget<T> | undefined {
    return this.#byAddress.get(address);
  }

  /**
   * update replaces the target list (a reload). A target whose address stays keeps
   * its entry: state and open connections carry over. Round-robin starts afresh.
   */
  update(targets: readonly T[]): void {
    if (targets.length === 0) throw new RangeError('TargetPool needs at least one target');
    const old = new Map(this.#byAddress);
    this.#byAddress.clear();
    this.#entries = targets.map((target) => {
      const address = this.#addressOf(target);
      const kept = old.get(address);
      const entry = kept ?? { target, address, drained: false, down: false, connections: 0 };
      entry.target = target;
      this.#byAddress.set(address, entry);
      return entry;
    });
    const weights = targets.map(this.#weightOf);
    this.#weights = weights.every((w) => w === weights[0]) ? null : weights;
    this.#current = weights.map(() => 0);
    this.#totalWeight = weights.reduce((a, b) => a + b, 0);
    this.#next = 0;
  }

  /** plan returns the targets one new connection tries, in order (see Strategy). */
  plan(client: string | undefined): Plan<T> {
    return this.#strategy(this, client);
  }

  /** setDrained takes a target out of rotation or puts it back; false if there is none. */
  setDrained(address: string, drained: boolean): boolean {
    const entry = this.#byAddress.get(address);
    if (entry === undefined) return false;
    entry.drained = drained;
    return true;
  }

  /** setDown marks a target down (a failed health check) or up again; false if there is none. */
  setDown(address: string, down: boolean): boolean {
    const entry = this.#byAddress.get(address);
    if (entry === undefined) return false;
    entry.down = down;
    return true;
  }

  /** connected counts a connection established to `entry`; closed must follow once. */
  connected(entry: PoolTarget<T>): void {
    entry.connections += 1;
  }

  /** closed counts down a connection that `connected` counted. */
  closed(entry: PoolTarget<T>): void {
    entry.connections -= 1;
  }

  /** nextStart returns where the next round-robin connection begins, and advances. */
  nextStart(): number {
    if (this.#weights !== null) return this.#startWeighted(this.#weights);
    const start = this.#next;
    this.#next = (start + 1) % this.#entries.length;
    return start;
  }

  // Smooth weighted round-robin: every target gains its weight, the richest is picked
  // and pays the total back. Over sum(weights) picks each is chosen weight times.
  #startWeighted(weights: readonly number[]): number {
    const current = this.#current;
    let best = 0;
    for (let i = 0; i < weights.length; i++) {
      current[i] = (current[i] ?? 0) + (weights[i] ?? 1);
      if ((current[i] ?? 0) > (current[best] ?? 0)) best = i;
    }
    current[best] = (current[best] ?? 0) - this.#totalWeight;
    return best;
  }
}

/**
 * roundRobin is the default Strategy: start at the next round-robin position, then
 * walk the list in order with wrap-around, leaving out drained and down targets.
 */
export function roundRobin<T>(pool: TargetPool<T>, _client: string | undefined): Plan<T> {
  const entries = pool.entries;
  const start = pool.nextStart();
  const targets: PoolTarget<T>[] = [];
  const skipped: PoolTarget<T>[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[(start + i) % entries.length] as PoolTarget<T>;
    if (entry.drained || entry.down) skipped.push(entry);
    else targets.push(entry);
  }
  return { targets, skipped };
}
