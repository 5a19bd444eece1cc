/**
 * `--max-connections-per-ip N`: the open connections of each client address. An
 * address has an entry only while it has an open connection, so the table is never
 * larger than the number of open connections, which the listener bounds already.
 */

/** ConnectionCount counts open connections per client address (a key: the canonical address). */
export class ConnectionCount {
  readonly #open = new Map<string, number>();
  /** max is the limit per address (at least 1). */
  max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** tryOpen counts one more connection of `key` and says true, unless it already has `max`: then false, uncounted. */
  tryOpen(key: string): boolean {
    const open = this.#open.get(key) ?? 0;
    if (open >= this.max) return false;
    this.#open.set(key, open + 1);
    return true;
  }

  /** close counts one connection of `key` off (one that tryOpen counted). */
  close(key: string): void {
    const open = this.#open.get(key);
    if (open === undefined) return;
    if (open <= 1) this.#open.delete(key);
    else this.#open.set(key, open - 1);
  }

  /** count is the open connections of `key`. */
  count(key: string): number {
    return this.#open.get(key) ?? 0;
  }

  /** size is the number of addresses with an open connection. */
  get size(): number {
    return this.#open.size;
  }
}
