/**
 * ClusterHealth: the target health of `--workers N`, decided once, in the primary.
 *
 * Each worker's listeners watch their targets through the primary (SharedHealth,
 * src/upstream/shared-health.ts). For each listener name the primary keeps one
 * TargetPool and one PoolHealth, the same code a process on its own runs: the active
 * checks (one prober for the whole cluster, not one per worker), the rise/fall
 * counts, fed by the workers' reports of their clients' failed connects as well as by
 * the checks, and the `target down` / `target up` / `no healthy target` log lines,
 * written once, by the primary. Each change is sent to every worker, which applies it
 * (HealthToWorker); a worker that starts watching gets every state of that listener.
 *
 * The targets probed are every target some worker has (workers that read an edited
 * file at different times may differ); the options are the ones announced last. When
 * no worker watches a listener any more (it was removed, or every worker stopped),
 * its checks stop and its states are forgotten.
 */
import type { Target } from './config/config.js';
import type { Logger } from './log.js';
import { TimerSet } from './timer-set.js';
import { PoolHealth, type PoolHealthOptions, sameHealthOptions } from './upstream/pool-health.js';
import type { HealthToPrimary, HealthToWorker } from './upstream/shared-health.js';
import { TargetPool } from './upstream/target-pool.js';

/** HealthSend sends `message` to worker `worker`, or to every worker (null). */
export type HealthSend = (worker: number | null, message: HealthToWorker) => void;

/** Watcher: one pool of one worker that watches a listener, with what it announced. */
interface Watcher {
  readonly targets: readonly Target[];
  readonly options: PoolHealthOptions;
}

/** Shared is one listener's health in the primary. */
interface Shared {
  readonly name: string;
  readonly pool: TargetPool<Target>;
  health: PoolHealth<Target>;
  /** watchers by `WORKER:POOL`, the one that announced last at the end. */
  readonly watchers: Map<string, Watcher>;
}

/** ClusterHealth runs the shared health in the primary; see the module comment. */
export class ClusterHealth {
  readonly #timers: TimerSet;
  readonly #log: Logger;
  readonly #send: HealthSend;
  readonly #listeners = new Map<string, Shared>();
  /** #watching maps `WORKER:POOL` to the listener it watches. */
  readonly #watching = new Map<string, Shared>();
  /** #drains: targets an operator drained, by `LISTENER\nADDRESS` (they do not count as up). */
  readonly #drains = new Set<string>();

  constructor(log: Logger, send: HealthSend, timers: TimerSet = new TimerSet()) {
    this.#log = log;
    this.#send = send;
    this.#timers = timers;
  }

  /** receive handles one message of worker `worker`. */
  receive(worker: number, message: HealthToPrimary): void {
    const key = `${worker}:${message.pool}`;
    switch (message.op) {
      case 'watch':
        this.#watch(worker, key, message.listener, {
          targets: message.targets,
          options: message.options,
        });
        return;
      case 'unwatch':
        this.#unwatch(key);
        return;
      case 'report':
        this.#watching.get(key)?.health.report(message.address, message.code);
        return;
    }
  }

  /** workerGone forgets every pool of a worker that exited. */
  workerGone(worker: number): void {
    for (const key of [...this.#watching.keys()]) {
      if (key.startsWith(`${worker}:`)) this.#unwatch(key);
    }
  }

  /**
   * setDrained follows an operator's drain or undrain (the workers apply it
   * themselves), so that a drained target does not count as up: with every other
   * target down, `no healthy target` is said, as by a process on its own.
   */
  setDrained(listener: string, address: string, drained: boolean): void {
    const key = `${listener}\n${address}`;
    if (drained) this.#drains.add(key);
    else this.#drains.delete(key);
    this.#listeners.get(listener)?.pool.setDrained(address, drained);
  }

  /** listeners names the listeners whose health is shared now (tests, debugging). */
  get listeners(): string[] {
    return [...this.#listeners.keys()];
  }

  #watch(worker: number, key: string, name: string, watcher: Watcher): void {
    const before = this.#watching.get(key);
    if (before !== undefined && before.name !== name) this.#unwatch(key);
    let shared = this.#listeners.get(name);
    if (shared === undefined) {
      const pool = new TargetPool<Target>(watcher.targets, { addressOf: (t) => t.address });
      shared = {
        name,
        pool,
        health: this.#start(name, pool, watcher.options),
        watchers: new Map(),
      };
      this.#listeners.set(name, shared);
      this.#applyDrains(shared);
    }
    shared.watchers.delete(key); // set again below: the last announced is last
    shared.watchers.set(key, watcher);
    this.#watching.set(key, shared);
    this.#follow(shared);
    this.#send(worker, {
      listener: name,
      states: shared.pool.entries.map((e) => ({ address: e.address, down: e.down })),
    });
  }

  #unwatch(key: string): void {
    const shared = this.#watching.get(key);
    if (shared === undefined) return;
    this.#watching.delete(key);
    shared.watchers.delete(key);
    if (shared.watchers.size > 0) {
      this.#follow(shared);
      return;
    }
    shared.health.stop();
    this.#listeners.delete(shared.name);
  }

  /** #follow makes a listener's pool and checks match what its watchers announced. */
  #follow(shared: Shared): void {
    const byAddress = new Map<string, Target>();
    let options: PoolHealthOptions | undefined;
    for (const watcher of shared.watchers.values()) {
      for (const t of watcher.targets) if (!byAddress.has(t.address)) byAddress.set(t.address, t);
      options = watcher.options;
    }
    const targets = [...byAddress.values()];
    const current = shared.pool.entries;
    const same =
      targets.length === current.length &&
      targets.every((t, i) => t.address === current[i]?.address);
    if (!same) {
      shared.pool.update(targets);
      this.#applyDrains(shared);
      shared.health.sync();
    }
    if (options !== undefined && !sameHealthOptions(shared.health.options, options)) {
      shared.health.stop(true); // the targets keep their states
      shared.health = this.#start(shared.name, shared.pool, options);
    }
  }

  #applyDrains(shared: Shared): void {
    for (const entry of shared.pool.entries) {
      if (this.#drains.has(`${shared.name}\n${entry.address}`))
        shared.pool.setDrained(entry.address, true);
    }
  }

  #start(name: string, pool: TargetPool<Target>, options: PoolHealthOptions): PoolHealth<Target> {
    return new PoolHealth(pool, this.#timers, this.#log, name, options, {
      changed: (change) =>
        this.#send(null, {
          listener: name,
          states: [{ address: change.address, down: change.state === 'down' }],
        }),
    });
  }
}
