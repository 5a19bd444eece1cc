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
import {
  type Config,
  type ListenerOptions,
  type ProxyOptions,
  resolveListener,
  resolveOptions,
} from './config/config.js';
import type { ConnectionInfo } from './connection-info.js';
import { ProxyError } from './errors.js';
import type { ConnectionHandle } from './faults/connection-handle.js';
import { ListenerFaults } from './faults/listener-faults.js';
import { ListenerToxics } from './faults/listener-toxics.js';
import type { ToxicRegistry } from './faults/registry.js';
import { type ToxicsHandle, toxicsHandle } from './faults/typed-toxics.js';
import { Listener, type ListenerEvents } from './listener.js';
import type { Logger } from './log.js';
import type { ProxyContext } from './proxy-context.js';
import {
  type CloseOptions,
  describeListener,
  type ListenerChange,
  type ListenerInfo,
  type ListenerState,
  type ListenOptions,
  type ProxyEvents,
  type ProxyStats,
  type ReloadResult,
  type TargetInfo,
} from './proxy-info.js';
import { type Placement, planChange, planReload } from './reload-plan.js';
import { type StatsSnapshot, sumSnapshots } from './stats.js';
import { TimerSet } from './timer-set.js';
import type { HealthFactory } from './upstream/listener-targets.js';

type SupervisorState = 'idle' | 'starting' | 'listening' | 'closing' | 'closed';

/** Supervisor is a running (or runnable) proxy: its listeners and their connections. */
export class Supervisor extends EventEmitter<ProxyEvents> {
  /** config is the configuration in force (the last one a reload applied). */
  config: Config;
  readonly log: Logger;
  readonly timers: TimerSet;
  #listeners: Listener[];
  /** #retiring: listeners a reload removed, draining their open connections. */
  readonly #retiring = new Set<Listener>();
  readonly #events: ListenerEvents;
  #state: SupervisorState = 'idle';
  #closing: Promise<void> | null = null;
  #reloading: Promise<unknown> = Promise.resolve();
  /** #runtime: names of listeners added through createListener; a reload keeps them. */
  readonly #runtime = new Set<string>();
  /** #disabled: listeners switched off by changeListener (kept, not listening). */
  readonly #disabled = new WeakSet<Listener>();
  /** #toxics: each listener's toxics by name (made with the listener, kept across reloads). */
  readonly #toxics: ListenerToxics;
  /** startedAtMs is when the proxy was created, on the timer set's clock. */
  readonly startedAtMs: number;
  /**
   * shareHealth, when set before `listen`, runs the health of every listener's
   * targets in place of the listener's own PoolHealth: a worker of `--workers N`
   * shares it through the primary (cli.ts, upstream/shared-health.ts). Default null.
   */
  shareHealth: HealthFactory | null = null;

  constructor(config: Config, log: Logger, timers: TimerSet = new TimerSet()) {
    super();
    this.config = config;
    this.log = log;
    this.timers = timers;
    this.startedAtMs = timers.now();
    this.#toxics = new ListenerToxics(timers, () => [...this.#listeners, ...this.#retiring]);
    this.#events = {
      // Describing a connection allocates; per accept and connect, do it only for a listener.
      connectionOpen: (context: ProxyContext) => {
        if (this.listenerCount('connectionOpen') > 0) this.emit('connectionOpen', context.info());
      },
      connectionConnect: (context: ProxyContext) => {
        if (this.listenerCount('connectionConnect') > 0)
          this.emit('connectionConnect', context.info());
      },
      connectionClose: (info: ConnectionInfo) => this.emit('connectionClose', info),
      startHealth: (pool, listener, options) => this.shareHealth?.(pool, listener, options),
    };
    this.#listeners = config.listeners.map((l) =>
      this.#toxics.attach(new Listener(l, timers, log, this.#events)),
    );
    for (const l of config.listeners) this.#toxics.applyConfig(l);
  }

  /**
   * listen binds every listener. If one cannot bind, the ones already bound are
   * closed again and the promise rejects with that listener's PROXY_ERR_LISTEN error
   * (PROXY_ERR_INVALID_CONFIG for an inherited socket it cannot listen on).
   */
  async listen({ fds }: ListenOptions = {}): Promise<this> {
    if (this.#state !== 'idle')
      throw new ProxyError('PROXY_ERR_CLOSED', `listen: proxy is ${this.#state}`);
    for (const [name, fd] of fds ?? []) {
      const listener = this.#listeners.find((l) => l.config.name === name);
      if (listener === undefined)
        throw new ProxyError('PROXY_ERR_INVALID_CONFIG', `listen: fds: no listener named ${name}`);
      listener.inheritedFd = fd;
    }
    this.#state = 'starting';
    const results = await Promise.allSettled(this.#listeners.map((l) => l.listen()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      for (const listener of this.#listeners) listener.stopAccepting();
      this.#state = 'closed';
      throw failed.reason;
    }
    this.#state = 'listening';
    for (const listener of this.#listeners) listener.logListening();
    return this;
  }

  /**
   * address is the first listener's bound TCP address (the real port when 0 was asked).
   * Once `listen()` has resolved it is always there, until close(); it throws a
   * ProxyError with code `PROXY_ERR_NOT_LISTENING` before listen(), after close(), or
   * when the first listener is a Unix domain socket (see `addresses()`).
   */
  address(): AddressInfo {
    const listener = this.#listeners[0];
    const address = listener?.address() ?? null;
    if (address === null) {
      const why =
        listener?.config.listen.path !== undefined
          ? `listener ${listener?.config.name} is a Unix domain socket`
          : `proxy is ${this.#state}`;
      throw new ProxyError('PROXY_ERR_NOT_LISTENING', `address: ${why}, not listening on TCP`);
    }
    return address;
  }

  /** addresses maps each listener's name to its bound TCP address: null for a Unix domain socket, or when not listening. */
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
      for (const listener of this.#all()) {
        if (graceful) continue;
        listener.stopAccepting();
        listener.closeAll('shutdown');
      }
    }
    if (this.#closing === null) {
      const drains = this.#all().map((l) => l.drain(l.config.shutdownTimeoutMs));
      this.#closing = Promise.all(drains).then(() => {
        this.#state = 'closed';
        this.timers.clear();
      });
    }
    return this.#closing;
  }

  /** connections describes every open connection of every listener (removed ones still draining too). */
  /** Symbol.asyncDispose closes at once (not gracefully): `await using` in a test. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close({ graceful: false });
  }

  connections(): ConnectionInfo[] {
    return this.#all().flatMap((l) => l.connections());
  }

  /** uptimeMs is the time since the proxy was created. */
  uptimeMs(): number {
    return this.timers.now() - this.startedAtMs;
  }

  /**
   * listenerInfo describes every listener in the configuration in force, then every
   * listener a reload removed that still has open connections (`removing`).
   */
  listenerInfo(): ListenerInfo[] {
    return this.#views().map(([listener, state, stats]) =>
      describeListener(listener, state, stats, this.#toxics.listOf(listener.config.name)),
    );
  }

  /**
   * closeConnection closes one open connection (cause `admin_kill`), with a reset when
   * `reset` is true. Returns false if no open connection has that id.
   */
  closeConnection(id: string, { reset = false }: { reset?: boolean } = {}): boolean {
    for (const listener of this.#all()) {
      const context = listener.findContext(id);
      if (context !== undefined) {
        context.kill(reset);
        return true;
      }
    }
    return false;
  }

  /**
   * setTargetDrained takes a listener's target out of rotation (`drained` true) or
   * puts it back; open connections are not touched. Returns the target's new
   * description, or why it could not: `no_listener` or `no_target`.
   */
  setTargetDrained(
    listenerName: string,
    address: string,
    drained: boolean,
  ): TargetInfo | 'no_listener' | 'no_target' {
    const listener = this.#listeners.find((l) => l.config.name === listenerName);
    if (listener === undefined) return 'no_listener';
    if (!listener.targets.setDrained(address, drained)) return 'no_target';
    const target = describeListener(listener, 'serving', listener.snapshot()).targets.find(
      (t) => t.address === address,
    );
    return target ?? 'no_target';
  }

  #all(): Listener[] {
    return [...this.#listeners, ...this.#retiring];
  }

  /**
   * #views gives one entry per listener name, with the counters of every listener of
   * that name: a listener in force, or else a removed one still draining. A removed
   * listener's counters join those of the one now serving under its name (a listener
   * whose address changed already shares its `Stats` with its successor, so it adds
   * only once).
   */
  #views(): [Listener, ListenerState, StatsSnapshot][] {
    const byName = new Map<string, [Listener, ListenerState, Listener[]]>();
    for (const listener of this.#listeners) {
      const state = this.#disabled.has(listener) ? 'disabled' : 'serving';
      byName.set(listener.config.name, [listener, state, [listener]]);
    }
    for (const listener of this.#retiring) {
      const entry = byName.get(listener.config.name);
      if (entry === undefined) byName.set(listener.config.name, [listener, 'removing', [listener]]);
      else if (!entry[2].some((l) => l.stats === listener.stats)) entry[2].push(listener);
    }
    return Array.from(byName.values(), ([listener, state, same]) => [
      listener,
      state,
      same.length === 1 ? listener.snapshot() : sumSnapshots(same.map((l) => l.snapshot())),
    ]);
  }

  /**
   * reload applies a new configuration without dropping open connections, all or
   * nothing. Listeners are matched by name: new ones start; removed ones stop
   * accepting and their connections drain under their shutdown timeout; changed ones
   * apply the new targets and options to new connections only; one whose listen
   * address changed is started anew at the new address and the old one drains.
   * If the options are invalid or a new address cannot be bound, it rejects and
   * nothing changes. Reloads run one at a time.
   */
  reload(options: ProxyOptions): Promise<ReloadResult> {
    return this.#oneAtATime(() => this.#reload(options));
  }

  /** #oneAtATime runs `change` after every reload, listener creation or change before it. */
  #oneAtATime<T>(change: () => Promise<T>): Promise<T> {
    const run = this.#reloading.then(change);
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(options: ProxyOptions): Promise<ReloadResult> {
    if (this.#state !== 'listening')
      throw new ProxyError('PROXY_ERR_CLOSED', `reload: proxy is ${this.#state}`);
    let config: Config;
    try {
      config = resolveOptions(options);
    } catch (err) {
      this.log.error('config reload refused', {
        reason: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
    const plan = planReload(this.#listeners, this.#runtime, config.listeners);
    const { result } = plan;
    // A moved listener keeps its counters; the moved ones are made (and bound) first.
    const made = new Map<Placement<Listener>, Listener>();
    for (const p of plan.placements) {
      if (p.kind !== 'moved') continue;
      const stats = p.from.stats;
      made.set(
        p,
        this.#toxics.attach(new Listener(p.config, this.timers, this.log, this.#events, stats)),
      );
    }
    for (const p of plan.placements) {
      if (p.kind !== 'new') continue;
      made.set(p, this.#toxics.attach(new Listener(p.config, this.timers, this.log, this.#events)));
    }
    const toStart = [...made.values()];
    const next = plan.placements.map((p) =>
      p.kind === 'same' ? p.listener : (made.get(p) as Listener),
    );
    // Bind every new address before touching anything: a reload is all or nothing.
    const bound = await Promise.allSettled(toStart.map((l) => l.listen()));
    // close() may have run while binding: it drains only the listeners it knew of, so
    // the new ones must not start serving behind its back.
    if (this.#state !== 'listening') {
      for (const listener of toStart) listener.stopAccepting();
      throw new ProxyError('PROXY_ERR_CLOSED', `reload: proxy is ${this.#state}`);
    }
    const failed = bound.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      for (const listener of toStart) listener.stopAccepting();
      const reason = failed.reason instanceof Error ? failed.reason.message : String(failed.reason);
      this.log.error('config reload refused', { reason });
      throw failed.reason;
    }
    // (A renamed listener takes the toxics of its new name.)
    for (const [listener, listenerConfig] of plan.update) {
      listener.update(listenerConfig);
      this.#toxics.attach(listener);
    }
    // What a test asked of a moved listener's next connections goes with its name.
    for (const [p, moved] of made)
      if (p.kind === 'moved') moved.faults = p.from.faults?.takePending() ?? null;
    for (const listener of plan.retire) this.#retire(listener);
    for (const listener of toStart) listener.logListening();
    for (const name of result.removed) {
      this.#toxics.forget(name);
    }
    for (const l of config.listeners) this.#toxics.applyConfig(l);
    for (const l of config.listeners) this.#runtime.delete(l.name);
    this.#listeners = [...next, ...plan.kept];
    this.config = config;
    this.log.info('config reloaded', { ...result });
    return result;
  }

  #retire(listener: Listener): void {
    this.#retiring.add(listener);
    void listener
      .drain(listener.config.shutdownTimeoutMs)
      .then(() => this.#retiring.delete(listener));
  }

  /**
   * createListener starts one more listener while the proxy runs (a Toxiproxy proxy
   * created through the admin API); `enabled: false` adds it without listening. The
   * name must be free (else `exists`, checked before the options). A listen port 0
   * becomes the port it got, so that disabling and enabling it keeps its address.
   * A reload keeps such a listener unless the file names it. Runs after any reload,
   * creation or change under way (one at a time). Rejects with
   * PROXY_ERR_INVALID_CONFIG (bad options), PROXY_ERR_LISTEN (cannot bind: nothing
   * is added) or PROXY_ERR_CLOSED.
   */
  createListener(options: ListenerOptions, enabled = true): Promise<ListenerInfo | 'exists'> {
    return this.#oneAtATime(() => this.#createListener(options, enabled));
  }

  async #createListener(
    options: ListenerOptions,
    enabled: boolean,
  ): Promise<ListenerInfo | 'exists'> {
    this.#checkRunning('create listener');
    const name = options.name ?? String(options.listen);
    if (this.#find(name) !== undefined) return 'exists';
    const listener = this.#toxics.attach(
      new Listener(resolveListener(options, ''), this.timers, this.log, this.#events),
    );
    if (enabled) await listener.listen();
    if (this.#state !== 'listening') {
      listener.stopAccepting();
      this.#checkRunning('create listener');
    }
    if (enabled) {
      pinPort(listener);
      listener.logListening();
    } else this.#disabled.add(listener);
    this.#listeners.push(listener);
    this.#runtime.add(name);
    this.#toxics.applyConfig(listener.config);
    return this.#describe(listener);
  }

  /**
   * changeListener changes a listener's listen address, targets or whether it
   * listens, as Toxiproxy's `PATCH /proxies/{name}` does. Disabling stops accepting
   * (clients are refused) and closes its open connections at once (cause
   * `admin_kill`), as Toxiproxy does; a new listen address does the same, then binds
   * there. New targets apply to new connections only; open ones keep flowing.
   * Rejects with PROXY_ERR_INVALID_CONFIG or, when it cannot bind, PROXY_ERR_LISTEN
   * (the listener then stays, disabled, with its new address, as in Toxiproxy).
   */
  changeListener(name: string, change: ListenerChange): Promise<ListenerInfo | 'no_listener'> {
    return this.#oneAtATime(() => this.#changeListener(name, change));
  }

  async #changeListener(
    name: string,
    change: ListenerChange,
  ): Promise<ListenerInfo | 'no_listener'> {
    const listener = this.#find(name);
    if (listener === undefined) return 'no_listener';
    this.#checkRunning('change listener');
    const config = listener.config;
    const { fresh, moved, retarget } = planChange(listener, change);
    const enabled = change.enabled ?? !this.#disabled.has(listener);
    if (moved) this.#disable(listener);
    if (moved || retarget) {
      listener.update(
        Object.freeze({
          ...config,
          listen: moved ? fresh.listen : config.listen,
          targets: retarget ? fresh.targets : config.targets,
        }),
      );
    }
    if (!enabled) this.#disable(listener);
    else if (this.#disabled.has(listener)) {
      await listener.listen();
      // Deleted while binding (deleteListener does not wait): it must not listen on.
      if (!this.#listeners.includes(listener)) {
        listener.stopAccepting();
        return 'no_listener';
      }
      this.#disabled.delete(listener);
      pinPort(listener);
      listener.logListening();
    }
    return this.#describe(listener);
  }

  /**
   * deleteListener stops a listener for good and closes its open connections at once
   * (cause `admin_kill`), as Toxiproxy's `DELETE /proxies/{name}`. Its counters and
   * toxics go with it. Returns false if no listener has that name.
   */
  deleteListener(name: string): boolean {
    const listener = this.#find(name);
    if (listener === undefined) return false;
    listener.stopAccepting();
    listener.closeAll('admin_kill');
    this.log.info('listener deleted', { listener: name });
    this.#listeners = this.#listeners.filter((l) => l !== listener);
    this.#runtime.delete(name);
    this.#toxics.forget(name);
    return true;
  }

  /**
   * toxicRegistry is the toxics of the listener of that name (what the Toxiproxy API
   * changes: a change acts on its open connections at once), or undefined when there
   * is no such listener. Kept by name, so a listener that a reload moved to a new
   * address keeps its toxics; dropped with the listener.
   */
  toxicRegistry(name: string): ToxicRegistry | undefined {
    return this.#find(name) === undefined ? undefined : this.#toxics.of(name);
  }

  /**
   * toxics is the typed handle on the toxics of the listener `name` (default: the
   * first), the same ones the Toxiproxy HTTP API changes. Throws PROXY_ERR_INVALID_CONFIG for an unknown name.
   */
  toxics(name?: string): ToxicsHandle {
    return toxicsHandle(this.#toxics.of(this.#named(name, 'toxics').config.name));
  }

  /** nextConnection resolves with a handle on the next connection of `name` that relays. */
  nextConnection(name?: string): Promise<ConnectionHandle> {
    return this.#faultsOf(this.#named(name, 'nextConnection')).nextConnection();
  }

  /** refuseNext: the next `n` clients accepted by `name` are reset at once (cause `toxic`). */
  refuseNext(n: number, name?: string): void {
    this.#faultsOf(this.#named(name, 'refuseNext')).refuseNext(checkCount(n, 'refuseNext'));
  }

  /** hangNext: the next `n` clients accepted by `name` are never dialled until they leave. */
  hangNext(n: number, name?: string): void {
    this.#faultsOf(this.#named(name, 'hangNext')).hangNext(checkCount(n, 'hangNext'));
  }

  /** #named: the listener called `name`, or the first; throws PROXY_ERR_INVALID_CONFIG. */
  #named(name: string | undefined, what: string): Listener {
    const listener = name === undefined ? this.#listeners[0] : this.#find(name);
    if (listener === undefined)
      throw new ProxyError(
        'PROXY_ERR_INVALID_CONFIG',
        `${what}: no listener named ${String(name)}`,
      );
    return listener;
  }

  #faultsOf(listener: Listener): ListenerFaults {
    listener.faults ??= new ListenerFaults();
    return listener.faults;
  }

  #find(name: string): Listener | undefined {
    return this.#listeners.find((l) => l.config.name === name);
  }

  #disable(listener: Listener): void {
    if (this.#disabled.has(listener)) return;
    pinPort(listener);
    listener.stopAccepting();
    listener.closeAll('admin_kill');
    this.#disabled.add(listener);
    this.log.info('listener disabled', { listener: listener.config.name });
  }

  #describe(listener: Listener): ListenerInfo {
    const state = this.#disabled.has(listener) ? 'disabled' : 'serving';
    const toxics = this.#toxics.listOf(listener.config.name);
    return describeListener(listener, state, listener.snapshot(), toxics);
  }

  #checkRunning(what: string): void {
    if (this.#state !== 'listening')
      throw new ProxyError('PROXY_ERR_CLOSED', `${what}: proxy is ${this.#state}`);
  }

  /**
   * stats sums the counters of all listeners and lists each listener's own, by name;
   * a listener a reload removed counts until its last open connection ends.
   */
  stats(): ProxyStats {
    const each = this.#views().map(([l, , stats]) => [l.config.name, stats] as const);
    return { ...sumSnapshots(each.map(([, s]) => s)), listeners: Object.fromEntries(each) };
  }
}

/** pinPort: a listener bound on port 0 keeps the port it got (Toxiproxy's `listen` becomes the real address). */
function pinPort(listener: Listener): void {
  const listen = listener.config.listen;
  const port = listener.address()?.port;
  if (listen.path !== undefined || listen.port !== 0 || port === undefined) return;
  listener.config = Object.freeze({
    ...listener.config,
    listen: Object.freeze({ ...listen, port }),
  });
}

/** checkCount: a count of connections a test asked for (a whole number >= 0). */
function checkCount(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new ProxyError(
      'PROXY_ERR_INVALID_CONFIG',
      `${what}: n must be a whole number >= 0, got ${n}`,
    );
  return n;
}
