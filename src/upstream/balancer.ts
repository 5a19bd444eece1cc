/**
 * Round-robin order with failover, as pure arithmetic (no sockets here).
 *
 * Each new connection starts one target further than the previous one did; if a
 * target fails (refused, unreachable, timed out), that connection moves on to the
 * next target in the list, wrapping around, until every target was tried once.
 * So with targets [A, B, C] the first connection tries A, B, C; the second B, C, A.
 *
 * With weights, where a connection starts follows smooth weighted round-robin (as
 * nginx does): weights 5, 1, 1 give A A B A C A A, spread out rather than A five
 * times in a row. Failover still walks the list in order from the start.
 */

/** Balancer hands out the order in which one connection tries the targets. */
export class Balancer<T> {
  readonly targets: readonly T[];
  #next = 0;
  /** Weights, or null when all are equal (then plain rotation does the same, cheaper). */
  readonly #weights: readonly number[] | null;
  readonly #current: number[];
  readonly #totalWeight: number;

  /** `weightOf` gives each target's weight (a whole number >= 1); by default all weigh 1. */
  constructor(targets: readonly T[], weightOf: (target: T) => number = () => 1) {
    if (targets.length === 0) throw new RangeError('Balancer needs at least one target');
    this.targets = targets;
    const weights = targets.map(weightOf);
    this.#weights = weights.every((w) => w === weights[0]) ? null : weights;
    this.#current = weights.map(() => 0);
    this.#totalWeight = weights.reduce((a, b) => a + b, 0);
  }

  /** start returns where the next connection begins, and advances the round-robin. */
  start(): number {
    if (this.#weights !== null) return this.#startWeighted(this.#weights);
    const start = this.#next;
    this.#next = (start + 1) % this.targets.length;
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

  /**
   * pickUpstream returns the target for `attempt` (0, 1, ...) of a connection that
   * began at `start`, or undefined once every target has been tried.
   */
  pickUpstream(start: number, attempt: number): T | undefined {
    const n = this.targets.length;
    if (attempt >= n) return undefined;
    return this.targets[(start + attempt) % n];
  }
}
