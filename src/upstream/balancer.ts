/**
 * Round-robin order with failover, as pure arithmetic (no sockets here).
 *
 * Each new connection starts one target further than the previous one did; if a
 * target fails (refused, unreachable, timed out), that connection moves on to the
 * next target in the list, wrapping around, until every target was tried once.
 * So with targets [A, B, C] the first connection tries A, B, C; the second B, C, A.
 */

/** Balancer hands out the order in which one connection tries the targets. */
export class Balancer<T> {
  readonly targets: readonly T[];
  #next = 0;

  constructor(targets: readonly T[]) {
    if (targets.length === 0) throw new RangeError('Balancer needs at least one target');
    this.targets = targets;
  }

  /** start returns where the next connection begins, and advances the round-robin. */
  start(): number {
    const start = this.#next;
    this.#next = (start + 1) % this.targets.length;
    return start;
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
