/**
 * ConnectionQueue: clients that wait for a free slot under `--max-connections`
 * instead of being closed at once (`--queue-timeout`, as haproxy's `maxconn` with
 * `timeout queue`).
 *
 * First in, first out: a Set keeps insertion order, and deleting a client that left
 * is O(1). Every client waits the same `timeoutMs` from when it was accepted, so the
 * deadlines are in queue order and ONE Timer, armed for the head's deadline, serves
 * the whole queue; when it fires, every client whose time is up is handed to
 * `onTimeout` (the listener closes it with `max_connections`), and the timer is armed
 * again for the new head. A client still waiting is paused in the kernel
 * (`pauseOnConnect`): nothing of it is read, and nobody dials for it, until it leaves
 * the queue by `shift`.
 */
import { Timer, type TimerSet } from './timer-set.js';

/** Queued is what the queue needs of a client: when it was accepted (timer-set clock, ms). */
export interface Queued {
  readonly acceptedAtMs: number;
}

function onQueueTimer<C extends Queued>(queue: ConnectionQueue<C>): void {
  queue.expire();
}

/** ConnectionQueue holds waiting clients in arrival order; see the module comment. */
export class ConnectionQueue<C extends Queued> {
  /** timeoutMs is how long a client may wait; 0 (the default) means no queue. */
  timeoutMs = 0;
  readonly #waiting = new Set<C>();
  readonly #timers: TimerSet;
  readonly #timer: Timer<ConnectionQueue<C>>;
  readonly #onTimeout: (client: C) => void;

  constructor(timers: TimerSet, onTimeout: (client: C) => void) {
    this.#timers = timers;
    this.#onTimeout = onTimeout;
    this.#timer = new Timer<ConnectionQueue<C>>(this, onQueueTimer);
  }

  /** size is the number of clients waiting. */
  get size(): number {
    return this.#waiting.size;
  }

  /** add puts `client` at the end of the queue. */
  add(client: C): void {
    this.#waiting.add(client);
    if (!this.#timer.scheduled) this.#armFor(client);
  }

  /** delete takes a client out (it closed otherwise); false if it was not waiting. */
  delete(client: C): boolean {
    // The timer stays armed; when it fires it looks at the new head.
    return this.#waiting.delete(client);
  }

  /** shift takes the client that waited longest out of the queue, or undefined. */
  shift(): C | undefined {
    for (const client of this.#waiting) {
      this.#waiting.delete(client);
      if (this.#waiting.size === 0) this.#timers.cancel(this.#timer);
      return client;
    }
    return undefined;
  }

  /** expire hands every client whose wait is over to `onTimeout`, in order (the timer's callback). */
  expire(): void {
    const now = this.#timers.now();
    for (const client of this.#waiting) {
      if (client.acceptedAtMs + this.timeoutMs > now) {
        this.#armFor(client);
        return;
      }
      this.#waiting.delete(client);
      this.#onTimeout(client);
    }
  }

  /** clear empties the queue and returns the clients that were waiting, in order. */
  clear(): C[] {
    const clients = [...this.#waiting];
    this.#waiting.clear();
    this.#timers.cancel(this.#timer);
    return clients;
  }

  #armFor(head: C): void {
    this.#timers.schedule(this.#timer, head.acceptedAtMs + this.timeoutMs);
  }
}
