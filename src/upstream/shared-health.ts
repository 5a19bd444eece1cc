/**
 * SharedHealth: a listener's target health in a worker of `--workers N`, where the
 * primary decides every target's state (ClusterHealth, src/cluster-health.ts) and
 * the workers follow it, so that they agree.
 *
 * A worker runs no checks and keeps no rise/fall counts. It tells the primary what
 * its clients saw (HealthToPrimary): each failed connect attempt to a target, and
 * the first connect that worked after one failed (or one to a target it has down:
 * the passive retry), so a connection that works costs nothing more than one
 * property test. It applies the states the primary sends (HealthToWorker) to its
 * pool with `setDown`: every target of the listener when it starts watching (a worker
 * started later learns the states at once), then each change.
 *
 * `HealthShare` is the worker's end: one per process; `start` is the listeners'
 * health factory, `receive` takes the primary's messages. Pools are told apart by a
 * number kept per pool, so a listener whose health is replaced (a reload changed its
 * options) keeps its place at the primary, and its targets their states. Pure: the
 * messages go through `send` (cluster-worker.ts puts them on the IPC channel).
 */
import type { Target } from '../config/config.js';
import type { ListenerHealth, PoolHealthOptions } from './pool-health.js';
import { PASSIVE_RETRY_MS } from './target-health.js';
import type { PoolObserver, PoolTarget, TargetPool } from './target-pool.js';

/**
 * HealthToPrimary is what a worker tells the primary about one pool (`pool`, a
 * number the worker gives each pool): `watch` (its listener, targets and health
 * options; again after a reload), `unwatch` (the listener stopped), and `report` (a
 * client's connect attempt to `address` failed with errno `code`, or connected: null).
 */
export type HealthToPrimary =
  | {
      readonly op: 'watch';
      readonly pool: number;
      readonly listener: string;
      readonly targets: readonly Target[];
      readonly options: PoolHealthOptions;
    }
  | { readonly op: 'unwatch'; readonly pool: number }
  | {
      readonly op: 'report';
      readonly pool: number;
      readonly address: string;
      readonly code: string | null;
    };

/** HealthToWorker: the states the primary decided for `listener`'s targets (all, or the one that changed). */
export interface HealthToWorker {
  readonly listener: string;
  readonly states: readonly { readonly address: string; readonly down: boolean }[];
}

/** HealthShare is a worker's end of the shared health: see the module comment. */
export class HealthShare {
  readonly #send: (message: HealthToPrimary) => void;
  readonly #ids = new WeakMap<TargetPool<Target>, number>();
  /** #running: the health of each pool, by its number. */
  readonly #running = new Map<number, SharedHealth>();
  #nextId = 1;

  /** `send` takes a message to the primary; it must not throw. */
  constructor(send: (message: HealthToPrimary) => void) {
    this.#send = send;
  }

  /** start runs the health of `pool` (listener `listener`) through the primary: the listeners' health factory. */
  start(pool: TargetPool<Target>, listener: string, options: PoolHealthOptions): ListenerHealth {
    let id = this.#ids.get(pool);
    if (id === undefined) {
      id = this.#nextId++;
      this.#ids.set(pool, id);
    }
    const health = new SharedHealth(this, id, pool, listener, options);
    this.#running.set(id, health);
    health.sync();
    return health;
  }

  /** receive applies the primary's states to every running pool of that listener. */
  receive(message: HealthToWorker): void {
    for (const health of this.#running.values()) {
      if (health.listener === message.listener) health.apply(message.states);
    }
  }

  /** send passes a message on to the primary (SharedHealth's). */
  send(message: HealthToPrimary): void {
    this.#send(message);
  }

  /** stopped forgets `health`, unless another has taken its pool's place already. */
  stopped(health: SharedHealth): void {
    if (this.#running.get(health.id) === health) this.#running.delete(health.id);
  }
}

/**
 * SharedHealth is one pool's health in a worker: it reports its clients' connects
 * (PoolObserver) and applies the primary's states. `entry.fails` is used as a flag
 * here: 1 once a failure was reported and no success since.
 */
export class SharedHealth implements ListenerHealth, PoolObserver<Target> {
  readonly options: PoolHealthOptions;
  readonly listener: string;
  readonly id: number;
  readonly #share: HealthShare;
  readonly #pool: TargetPool<Target>;

  constructor(
    share: HealthShare,
    id: number,
    pool: TargetPool<Target>,
    listener: string,
    options: PoolHealthOptions,
  ) {
    this.#share = share;
    this.id = id;
    this.#pool = pool;
    this.listener = listener;
    this.options = options;
    pool.observer = this;
    // With checks off, each worker lets one client try a down target now and then.
    pool.retryAfterMs = options.intervalMs > 0 ? 0 : PASSIVE_RETRY_MS;
  }

  /** sync tells the primary this pool's targets and options (at start, and after pool.update). */
  sync(): void {
    this.#share.send({
      op: 'watch',
      pool: this.id,
      listener: this.listener,
      targets: this.#pool.entries.map((e) => e.target),
      options: this.options,
    });
  }

  /**
   * stop stops reporting. With `keepStates` another SharedHealth takes this pool's
   * place at the primary; without, the primary is told to forget it, and targets
   * that are down are put back up, since nothing would bring them back.
   */
  stop(keepStates = false): void {
    if (this.#pool.observer === this) this.#pool.observer = null;
    this.#share.stopped(this);
    this.#pool.retryAfterMs = 0;
    for (const entry of this.#pool.entries) {
      entry.fails = 0;
      if (entry.down && !keepStates) this.#pool.setDown(entry.address, false);
    }
    if (!keepStates) this.#share.send({ op: 'unwatch', pool: this.id });
  }

  /** apply sets the states the primary decided; targets this pool does not have are ignored. */
  apply(states: HealthToWorker['states']): void {
    for (const { address, down } of states) {
      const entry = this.#pool.get(address);
      if (entry !== undefined && entry.down !== down) this.#pool.setDown(address, down);
    }
  }

  /** connected: a client connected to `entry` (PoolObserver); told only after a failure, or if it was down. */
  connected(entry: PoolTarget<Target>): void {
    if (entry.fails === 0 && !entry.down) return;
    entry.fails = 0;
    this.#share.send({ op: 'report', pool: this.id, address: entry.address, code: null });
  }

  /** failed: a client's connect attempt to `entry` failed with `code` (PoolObserver). */
  failed(entry: PoolTarget<Target>, code: string): void {
    if (code === 'EMFILE' || code === 'ENFILE') return; // our descriptors, not the target
    entry.fails = 1;
    this.#share.send({ op: 'report', pool: this.id, address: entry.address, code });
  }
}
