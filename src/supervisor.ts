/**
 * Supervisor: owns the listeners of one proxy and the timer set they share. It
 * starts them (all or nothing), stops them gracefully (stop accepting at once, let
 * open connections finish within each listener's shutdown timeout, then close the
 * rest), and answers questions about all of them (connections, stats).
 *
 * It is the object `createProxy()` returns. Signals are not handled here: the CLI
 * (or the embedding program) decides what a signal means and calls `close()`.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Config } from './config/config.js';
import { ProxyError } from './errors.js';
import { Listener } from './listener.js';
import type { Logger } from './log.js';
import type { ConnectionInfo } from './proxy-context.js';
import { type StatsSnapshot, sumSnapshots } from './stats.js';
import { TimerSet } from './timer-set.js';

/** ProxyEvents are the events a proxy emits, with their arguments. */
export interface ProxyEvents {
  /** connectionOpen: a client was accepted (its upstream is not connected yet). */
  connectionOpen: [connection: ConnectionInfo];
  /** connectionClose: a connection closed; `cause` says why. Emitted once per connection. */
  connectionClose: [connection: ConnectionInfo];
}

/** ProxyStats are the summed counters plus each listener's own, by name. */
export interface ProxyStats extends StatsSnapshot {
  listeners: Record<string, StatsSnapshot>;
}

/** CloseOptions: `graceful` (default true) lets open connections finish within the shutdown timeout. */
export interface CloseOptions {
  graceful?: boolean;
}

type SupervisorState = 'idle' | 'starting' | 'listening' | 'closing' | 'closed';

/** Supervisor is a running (or runnable) proxy: its listeners and their connections. */
export class Supervisor extends EventEmitter<ProxyEvents> {
  readonly config: Config;
  readonly log: Logger;
  readonly timers: TimerSet;
  readonly #listeners: Listener[];
  #state: SupervisorState = 'idle';
  #closing: Promise<void> | null = null;

  constructor(config: Config, log: Logger, timers: TimerSet = new TimerSet()) {
    super();
    this.config = config;
    this.log = log;
    this.timers = timers;
    const events = {
      connectionOpen: (info: ConnectionInfo) => this.emit('connectionOpen', info),
      connectionClose: (info: ConnectionInfo) => this.emit('connectionClose', info),
    };
    this.#listeners = config.listeners.map((l) => new Listener(l, timers, log, events));
  }

  /**
   * listen binds every listener. If one cannot bind, the ones already bound are
   * closed again and the promise rejects with that listener's PROXY_ERR_LISTEN error.
   */
  async listen(): Promise<this> {
    if (this.#state !== 'idle')
      throw new ProxyError('PROXY_ERR_CLOSED', `listen: proxy is ${this.#state}`);
    this.#state = 'starting';
    const results = await Promise.allSettled(this.#listeners.map((l) => l.listen()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      for (const listener of this.#listeners) listener.stopAccepting();
      this.#state = 'closed';
      throw failed.reason;
    }
    this.#state = 'listening';
    return this;
  }

  /** address is the first listener's bound address (handy with port 0), or null before listen(). */
  address(): AddressInfo | null {
    return this.#listeners[0]?.address() ?? null;
  }

  /** addresses maps each listener's name to its bound address. */
  addresses(): Record<string, AddressInfo | null> {
    return Object.fromEntries(this.#listeners.map((l) => [l.config.name, l.address()]));
  }

  /**
   * close stops accepting on every listener at once. With `graceful` (the default)
   * open connections may finish for up to their listener's shutdown timeout and are
   * then closed with cause `shutdown`; without it they are closed at once. A second,
   * non-graceful call during a graceful close closes the rest at once. Resolves when
   * every connection is closed.
   */
  close({ graceful = true }: CloseOptions = {}): Promise<void> {
    if (!graceful || this.#closing === null) {
      this.#state = 'closing';
      for (const listener of this.#listeners) {
        if (graceful) continue;
        listener.stopAccepting();
        listener.closeAll('shutdown');
      }
    }
    if (this.#closing === null) {
      const drains = this.#listeners.map((l) => l.drain(l.config.shutdownTimeoutMs));
      this.#closing = Promise.all(drains).then(() => {
        this.#state = 'closed';
        this.timers.clear();
      });
    }
    return this.#closing;
  }

  /** connections describes every open connection of every listener. */
  connections(): ConnectionInfo[] {
    return this.#listeners.flatMap((l) => l.connections());
  }

  /** stats sums the counters of all listeners and lists each listener's own. */
  stats(): ProxyStats {
    const each = this.#listeners.map((l) => [l.config.name, l.snapshot()] as const);
    return { ...sumSnapshots(each.map(([, s]) => s)), listeners: Object.fromEntries(each) };
  }
}
