/**
 * Listener: one `net.Server` accepting clients for one ListenerConfig. For each
 * accepted client it creates a ProxyContext and keeps it in a set until it closes;
 * it applies --max-connections, survives accept errors, writes the access record
 * of every closed connection, and drains its connections on shutdown. The upstream
 * side, its targets' pools, routes, drain and health, is its ListenerTargets.
 *
 * Accepted sockets arrive paused (`pauseOnConnect`): the client's bytes wait in the
 * kernel until the upstream is connected, so nothing is lost or buffered meanwhile.
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { ListenerAdmission } from './admission.js';
import { formatAddress, formatParsed } from './config/address.js';
import type { ListenerConfig, Target } from './config/config.js';
import { type ConnectionInfo, formatConnectFailures } from './connection-info.js';
import { ConnectionQueue } from './connection-queue.js';
import { descriptorsExhausted, holdDescriptors } from './descriptors.js';
import { errorCode, listenErrorText, ProxyError } from './errors.js';
import type { ListenerFaults } from './faults/listener-faults.js';
import type { ToxicRegistry } from './faults/registry.js';
import type { Logger } from './log.js';
import { type ContextHost, ProxyContext } from './proxy-context.js';
import { requireOnread } from './read-buffer.js';
import type { StageControl } from './stage.js';
import { Stats, type StatsSnapshot } from './stats.js';
import { Timer, type TimerSet } from './timer-set.js';
import { removeStaleSocket } from './unix-socket.js';
import { ListenerTargets, type TargetsEvents } from './upstream/listener-targets.js';
import type { PoolHealthOptions } from './upstream/pool-health.js';
import type { TargetPool } from './upstream/target-pool.js';
import { tcpListenOptions } from './worker-accept.js';

/**
 * ListenerEvents are how a listener reports connections to whoever owns it, and
 * (TargetsEvents: `startHealth`) how the owner runs the health of its targets.
 */
export interface ListenerEvents extends TargetsEvents {
  /** connectionOpen and connectionConnect get the context: describing it costs, so only if wanted. */
  connectionOpen(context: ProxyContext): void;
  connectionConnect(context: ProxyContext): void;
  connectionClose(info: ConnectionInfo): void;
}

function onQueueTimeout(context: ProxyContext): void {
  context.close('max_connections');
}

function onDrainTimer(listener: Listener): void {
  listener.closeAll('shutdown');
}

/** Listener owns one server socket and the proxy contexts it accepted. */
export class Listener implements ContextHost {
  /**
   * config applies to new connections; a reload may replace it (see update()). For a
   * listener with `routes`, its hooks hold the SNI handshake over the route pools.
   */
  config: ListenerConfig;
  /** #given is the config as the owner gave it (without the SNI handshake), for sameConfig(). */
  #given: ListenerConfig;
  readonly timers: TimerSet;
  readonly log: Logger;
  readonly stats: Stats;
  /**
   * targets: the upstream side (upstream/listener-targets.ts): the pools of the
   * targets and routes, their drain and health; kept across reloads.
   */
  readonly targets: ListenerTargets;
  /** pool is `targets.pool`: the targets, their state and open connections (OpeningHost). */
  readonly pool: TargetPool<Target>;
  /** contexts holds every open connection of this listener; a context leaves it when it closes. */
  readonly contexts = new Set<ProxyContext>();
  /**
   * toxics: the listener's toxics (fault injection), set by the owner (Supervisor,
   * kept by name across reloads); null: none. A connection is attached to it when it
   * starts relaying only while it has toxics, and detached when it closes.
   */
  toxics: ToxicRegistry | null = null;
  /**
   * faults: what a JavaScript test asked of the next connections (nextConnection,
   * refuseNext, hangNext; faults/listener-faults.ts), set by the Supervisor; null: none.
   */
  faults: ListenerFaults | null = null;
  readonly #events: ListenerEvents;
  readonly #server: Server;
  readonly #drainTimer: Timer<Listener>;
  #drainWaiters: (() => void)[] = [];
  #lastShortageMs = Number.NEGATIVE_INFINITY;
  #shortagesInBurst = 0;
  /** #admission: the hooks of the PROXY protocol and access settings, and the listener's AccessControl. */
  readonly #admission = new ListenerAdmission();
  /**
   * queue holds clients waiting for a slot under maxConnections; its `timeoutMs`
   * (`--queue-timeout`, 0 by default: no queue) is set by the owner. Waiting clients
   * are in `contexts` too, and count in `stats.active`.
   */
  readonly queue: ConnectionQueue<ProxyContext>;

  /** A listener that replaces another (its address changed) may carry on the other's `stats`. */
  constructor(
    config: ListenerConfig,
    timers: TimerSet,
    log: Logger,
    events: ListenerEvents,
    stats: Stats = new Stats(),
  ) {
    this.#given = config;
    this.timers = timers;
    this.log = log;
    this.stats = stats;
    this.#events = events;
    this.targets = new ListenerTargets(config, timers, log, events);
    this.pool = this.targets.pool;
    this.config = this.targets.withRoutes(config);
    this.#drainTimer = new Timer<Listener>(this, onDrainTimer);
    this.queue = new ConnectionQueue(timers, onQueueTimeout);
    this.queue.timeoutMs = config.queueTimeoutMs;
    // The relay reads through Node's onread internals: a Node without them stops here.
    requireOnread();
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    this.#server.on('connection', (socket: Socket) => this.#onConnection(socket));
    // Always listen for 'error': an accept error must never crash the process.
    this.#server.on('error', (err: Error) => this.#onAcceptError(err));
  }

  /**
   * contextConfig is `config` as a new connection gets it: with the handshake and
   * preface of `--accept-proxy`, the access rules and `--send-proxy` (admission.ts),
   * when any is set. Worked out again only when `config` was replaced (a reload).
   */
  get contextConfig(): ListenerConfig {
    return this.#admission.configFor(this.config);
  }

  /** listenAddress is the configured address as logs print it. */
  get listenAddress(): string {
    const listen = this.config.listen;
    if (listen.path !== undefined) return formatParsed(listen);
    return formatAddress(listen.host ?? '0.0.0.0', listen.port);
  }

  /**
   * listen binds the address; it rejects with PROXY_ERR_LISTEN naming the address.
   * A Unix socket file left behind by a process that died is removed first: if it is
   * a socket and nothing accepts on it, it is stale (removeStaleSocket). Anything
   * else at the path (a regular file, a directory) is left alone and is an error.
   */
  async listen(): Promise<void> {
    // Passive health is always on, active checks when --health-interval is set; from
    // listen on, so a listener that never listens probes nothing. stopAccepting stops
    // it; a listener that listens again (enabled through the admin API) gets it back.
    this.targets.startHealth();
    if (this.inheritedFd !== undefined) {
      await this.#bind().catch((err: unknown) => {
        throw this.#listenError(err);
      });
      return;
    }
    try {
      await this.#bind();
    } catch (err) {
      const path = this.config.listen.path;
      if (path === undefined || errorCode(err) !== 'EADDRINUSE') throw this.#listenError(err);
      const removed = await removeStaleSocket(path).catch((why: unknown) => {
        throw this.#listenError(why);
      });
      if (!removed) throw this.#listenError(err);
      this.log.warn('removing stale unix socket', { listener: this.config.name, path });
      await this.#bind().catch((again: unknown) => {
        throw this.#listenError(again);
      });
    }
  }

  /**
   * inheritedFd is a listening socket this listener takes instead of binding its
   * address (socket activation, src/socket-activation.ts); set it before listen().
   * It is not closed by a reload that keeps this listener, whatever its `listen`.
   */
  inheritedFd: number | undefined;

  /** logListening writes the "listening" record, once the owner has kept this listener. */
  logListening(): void {
    this.log.info('listening', {
      listener: this.config.name,
      address: this.boundAddress(),
      fd: this.inheritedFd,
    });
    this.targets.warnInsecure();
  }

  #bind(): Promise<void> {
    const listen = this.config.listen;
    const server = this.#server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        server.removeListener('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        server.removeListener('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      // Node's default backlog is 511; the kernel caps it at net.core.somaxconn. Node
      // calls listen() again on an inherited socket too, so this backlog replaces its own.
      if (this.inheritedFd !== undefined) server.listen({ fd: this.inheritedFd });
      else if (listen.path !== undefined) server.listen({ path: listen.path });
      // A worker of `--workers N` may bind its own socket (src/worker-accept.ts).
      else server.listen(tcpListenOptions(listen.host, listen.port));
    });
  }

  #listenError(err: unknown): ProxyError {
    const what = listenErrorText(err);
    // An inherited socket that cannot listen is a mistake in the .socket unit: a usage error.
    if (this.inheritedFd !== undefined)
      return new ProxyError(
        'PROXY_ERR_INVALID_CONFIG',
        `socket activation: listener ${this.config.name} cannot listen on fd ${this.inheritedFd}: ${what} (expected a listening stream socket, ListenStream=)`,
        { cause: err },
      );
    return new ProxyError('PROXY_ERR_LISTEN', `listen ${this.listenAddress}: ${what}`, {
      cause: err,
    });
  }

  /** address is the bound address (with the real port when 0 was asked), or null. */
  address(): AddressInfo | null {
    const address = this.#server.address();
    return typeof address === 'object' ? address : null;
  }

  /**
   * boundAddress is the bound address as `host:port` (`fd:N` for an inherited Unix
   * socket), or the configured one before listen().
   */
  boundAddress(): string {
    const address = this.#server.address();
    if (typeof address === 'string') return `unix:${address}`;
    // Node cannot ask an inherited Unix socket its path (no getsockname for pipes), and
    // it need not be `listen`: name the descriptor instead.
    if (address === null && this.inheritedFd !== undefined) return `fd:${this.inheritedFd}`;
    return address === null ? this.listenAddress : formatAddress(address.address, address.port);
  }

  // Design case "accept() returns a socket".
  #onConnection(socket: Socket): void {
    this.stats.accepted += 1;
    const context = new ProxyContext(this, socket);
    this.contexts.add(context);
    this.stats.active += 1;
    holdDescriptors(2); // the client's socket and, soon, the upstream's
    if (descriptorsExhausted()) this.onDescriptorShortage('EMFILE', 'accept');
    if (context.trace) {
      context.traceEvent('client', `accepted ${context.clientAddress} on ${this.config.name}`);
    }
    this.#events.connectionOpen(context);
    if (this.faults !== null && this.#applyFault(context)) return;
    if (this.contexts.size - this.queue.size > this.config.maxConnections) {
      if (this.queue.timeoutMs > 0) this.queue.add(context);
      else context.close('max_connections');
      return;
    }
    context.connect();
  }

  /** #applyFault refuses (RST, cause `toxic`) or hangs a client a test asked for; true if it did. */
  #applyFault(context: ProxyContext): boolean {
    const fate = this.faults?.onAccept() ?? 'dial';
    if (this.faults?.idle) this.faults = null; // served: back to the plain path
    if (fate === 'refuse') context.closeForStage('refuse_next', true);
    else if (fate === 'hang') context.hang();
    return fate !== 'dial';
  }

  // Design cases "accept() fails": EAGAIN and EINTR never get here (libuv retries
  // them), ECONNABORTED is skipped by libuv too. EMFILE/ENFILE: libuv first closes the
  // pending connections with its reserved descriptor (the back-off), and only reports
  // when it cannot; we log once per burst, count every one, and keep serving.
  #onAcceptError(err: Error): void {
    // Before the server listens, an error is a listen() failure: listen() reports it.
    if (!this.#server.listening) return;
    const code = errorCode(err);
    this.stats.countAcceptError(code);
    if (code === 'EMFILE' || code === 'ENFILE') this.onDescriptorShortage(code, 'accept');
    else this.log.warn('accept failed', { listener: this.config.name, code, message: err.message });
  }

  /**
   * onDescriptorShortage logs running out of file descriptors (EMFILE, ENFILE) once
   * per burst: a burst is a run of such errors less than a second apart. Called for
   * accept errors and for connect attempts that could not get a socket.
   */
  onDescriptorShortage(code: string, during: 'accept' | 'connect'): void {
    const now = this.timers.now();
    const newBurst = now - this.#lastShortageMs > 1000;
    this.#lastShortageMs = now;
    if (!newBurst) {
      this.#shortagesInBurst += 1;
      return;
    }
    this.log.warn('out of file descriptors; new clients are refused until some are free', {
      listener: this.config.name,
      code,
      during,
      previous_burst: this.#shortagesInBurst > 0 ? this.#shortagesInBurst + 1 : undefined,
    });
    this.#shortagesInBurst = 0;
  }

  /** onContextConnected: a context reached its upstream. */
  onContextConnected(context: ProxyContext): void {
    if (context.poolTarget !== null) this.pool.connected(context.poolTarget);
    this.#events.connectionConnect(context);
  }

  /** sameConfig tells whether `config` is the one this listener was given (nothing to update). */
  sameConfig(config: ListenerConfig): boolean {
    return isDeepStrictEqual(this.#given, config);
  }

  /** useHealth starts or stops (null) the health of this listener's targets: ListenerTargets.useHealth. */
  useHealth(options: PoolHealthOptions | null): void {
    this.targets.useHealth(options);
  }

  /** findContext returns the open connection with this id, if it is this listener's. */
  findContext(id: string): ProxyContext | undefined {
    for (const context of this.contexts) if (context.id === id) return context;
    return undefined;
  }

  /** onContextClosed: the context is done; count it, log the access record, forget it. */
  onContextClosed(context: ProxyContext): void {
    if (!this.contexts.delete(context)) return;
    this.toxics?.detach(context.id);
    // Only a connection that reached its target was counted on it (onContextConnected).
    if (context.poolTarget !== null && context.connectedAtMs >= 0)
      this.pool.closed(context.poolTarget);
    this.stats.active -= 1;
    holdDescriptors(-2);
    const info = context.info();
    if (this.faults !== null) {
      this.faults.onClosed(info);
      if (this.faults.idle) this.faults = null;
    }
    this.stats.countClosed(info.cause ?? 'shutdown', info.bytesToUpstream, info.bytesToClient);
    this.#logClosed(info);
    this.#events.connectionClose(info);
    // A slot is free when a connection that had one closed: the next waiting client takes it.
    if (this.queue.size > 0 && !this.queue.delete(context)) this.#admitWaiting();
    if (this.contexts.size === 0 && this.#drainWaiters.length > 0) this.#drained();
  }

  #admitWaiting(): void {
    while (this.contexts.size - this.queue.size < this.config.maxConnections) {
      const next = this.queue.shift();
      if (next === undefined) return;
      next.connect();
    }
  }

  #logClosed(info: ConnectionInfo): void {
    if (!this.log.enabled('info')) return;
    const failures = info.connectFailures;
    const clientTls = info.clientTls;
    const upstreamTls = info.upstreamTls;
    // One literal of one shape for every record (tlsRecord's fields spelled out, not
    // spread): a spread made each record through V8's slow object-cloning path.
    this.log.info('connection closed', {
      id: info.id,
      listener: info.listener,
      client: info.client,
      upstream: info.upstream,
      sni: info.sni,
      tls_version: clientTls?.version,
      tls_cipher: clientTls?.cipher,
      tls_client_subject: clientTls?.clientSubject,
      upstream_tls_version: upstreamTls?.version,
      upstream_tls_cipher: upstreamTls?.cipher,
      connect_ms: info.connectMs === undefined ? undefined : Math.round(info.connectMs),
      duration_ms: Math.round(info.ageMs),
      bytes_to_upstream: info.bytesToUpstream,
      bytes_to_client: info.bytesToClient,
      // What was read is worth a field only where it differs from what was delivered.
      bytes_from_client:
        info.bytesFromClient === info.bytesToUpstream ? undefined : info.bytesFromClient,
      bytes_from_upstream:
        info.bytesFromUpstream === info.bytesToClient ? undefined : info.bytesFromUpstream,
      // Failover shows only when it happened: a first attempt that worked is the usual case.
      attempts: info.attempts === 1 && failures.length === 0 ? undefined : info.attempts,
      connect_failures: failures.length === 0 ? undefined : formatConnectFailures(failures),
      cause: info.cause,
      toxic: info.toxic,
      first_close: info.firstClose ?? undefined,
      error: info.error,
    });
  }

  /**
   * update applies a changed configuration (same listen address) to new
   * connections. Open connections keep the options and targets they started with.
   */
  update(config: ListenerConfig): void {
    this.#given = config;
    this.config = this.targets.update(config); // the pools, routes and health (ListenerTargets)
    this.queue.timeoutMs = config.queueTimeoutMs;
    if (this.queue.size > 0) this.#admitWaiting(); // the limit may have grown
  }

  /** stopAccepting closes the server socket; open connections are not touched. */
  stopAccepting(): void {
    this.useHealth(null); // no new clients: no checks; no timer or socket left behind
    if (this.#server.listening) this.#server.close();
    // Clients still waiting for a slot would only be dialled during the drain: close them.
    for (const context of this.queue.clear()) context.close('shutdown');
  }

  /**
   * drain waits until every connection has closed, or until `timeoutMs` has passed,
   * then closes what is left with cause `shutdown`. It stops accepting first.
   */
  drain(timeoutMs: number): Promise<void> {
    this.stopAccepting();
    if (this.contexts.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drainWaiters.push(resolve);
      if (!this.#drainTimer.scheduled) this.timers.scheduleIn(this.#drainTimer, timeoutMs);
    });
  }

  /** relayingContexts: the open connections that relay now (for the toxics: ToxicRegistry's openConnections). */
  *relayingContexts(): Generator<StageControl> {
    for (const context of this.contexts)
      if (context.state === 'relaying' || context.state === 'half_closed')
        yield context.toxicControl ?? context;
  }

  /** closeAll tears down every open connection at once with `cause`. */
  closeAll(cause: 'shutdown' | 'admin_kill'): void {
    for (const context of [...this.contexts]) context.close(cause);
  }

  #drained(): void {
    this.timers.cancel(this.#drainTimer);
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** connections describes every open connection. */
  connections(): ConnectionInfo[] {
    return Array.from(this.contexts, (context) => context.info());
  }

  /** snapshot copies the counters, bytes of open connections included. */
  snapshot(): StatsSnapshot {
    let toUpstream = 0;
    let toClient = 0;
    for (const context of this.contexts) {
      toUpstream += context.bytesToUpstream;
      toClient += context.bytesToClient;
    }
    return this.stats.snapshot(toUpstream, toClient);
  }
}
