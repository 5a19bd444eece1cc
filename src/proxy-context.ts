/**
 * The proxy context: one proxied connection. It owns the client socket (the
 * design's source), the upstream socket (the destination), their per-socket state
 * (two Endpoints), the byte counters, the times, and its one Timer. Other objects
 * (the listener's set, the timer set) only reference it.
 *
 * Life of a connection (docs/design.md has the diagram):
 *
 *   [handshake] ──allow──▶ connecting ──connected──▶ relaying ──first FIN──▶ half_closed ──▶ closed
 *        │                      │   (preface, then held bytes)    │                    │
 *        └─ refuse, deadline, FIN, reset; every target failed, timeout, shutdown: close(cause) ──▶ closed
 *
 * The client is read from accept on: during the handshake (handshake.ts) and the
 * connect its bytes are held, bounded (EarlyBytes), so a reset or FIN is seen at once.
 *
 * Every path ends in `close(cause)`, which runs once: it cancels the timer, destroys
 * (or resets) both sockets and hands the context back to its listener for the access
 * record. Nothing is torn down anywhere else.
 *
 * The one Timer serves every wait a context can have, never two at once: the
 * handshake's deadline, the connect timeout while connecting, the idle (or
 * half-close) timeout afterwards.
 */
import type { Socket } from 'node:net';
import { type CloseCause, connectCause, isResetCode, PASSED_ON_AS_RESET } from './close-cause.js';
import type { ListenerConfig, Target } from './config/config.js';
import {
  type ConnectFailure,
  type ConnectionInfo,
  type ContextState,
  formatConnectFailures,
} from './connection-info.js';
import { Endpoint, type Side } from './endpoint.js';
import { errorCode } from './errors.js';
import { EARLY_BYTES_LIMIT, EarlyBytes, type Handshake } from './handshake.js';
import type { Logger } from './log.js';
import {
  relayClient,
  startClientRelay,
  startUpstreamRelay,
  UPSTREAM_ONREAD,
  watchSocket,
} from './relay.js';
import { deliveredBytes, describeClient, destroySocket } from './socket-ends.js';
import type { Stats } from './stats.js';
import { Timer, type TimerSet } from './timer-set.js';
import { abandonDial, dial, finishDial } from './upstream/dial.js';
import type { Plan, PoolTarget, TargetPool } from './upstream/target-pool.js';

/** ContextHost is what a context needs from the listener that accepted it. */
export interface ContextHost {
  readonly config: ListenerConfig;
  readonly timers: TimerSet;
  readonly log: Logger;
  readonly stats: Stats;
  /** pool gives each connection its plan of targets to try (target-pool.ts). */
  readonly pool: TargetPool<Target>;
  onContextClosed(context: ProxyContext): void;
  onContextConnected(context: ProxyContext): void;
  onDescriptorShortage(code: string, during: 'connect'): void;
}

let lastId = 0;

function onContextTimer(context: ProxyContext): void {
  context.onTimer();
}

/** ProxyContext is one client connection and everything that belongs to it. */
export class ProxyContext {
  readonly id: string;
  readonly host: ContextHost;
  /**
   * config is the listener's as it was when the client was accepted: a reload
   * changes it for new connections only, never under an open one.
   */
  readonly config: ListenerConfig;
  /** #routePool: a handshake may replace the listener's pool for this connection (a route chosen by SNI). */
  #routePool: TargetPool<Target> | null = null;
  readonly client: Endpoint;
  readonly upstream: Endpoint;
  /** clientAddress: a handshake may replace it with the real client's (a PROXY header's source). */
  clientAddress: string;
  /** sni: the TLS server name a handshake read (SNI routing), for the access record. */
  sni: string | undefined = undefined;
  readonly trace: boolean;
  state: ContextState = 'connecting';
  cause: CloseCause | null = null;
  firstClose: Side | null = null;
  /** target is the target being dialed, then the one connected to. */
  target: Target | null = null;
  /** poolTarget is `target`'s entry in the listener's pool (its state and connection count). */
  poolTarget: PoolTarget<Target> | null = null;
  errorCode: string | undefined = undefined;
  readonly acceptedAtMs: number;
  connectedAtMs = -1;
  closedAtMs = -1;
  lastActivityMs: number;
  readonly watchesActivity: boolean;
  readonly #timer: Timer<ProxyContext>;
  /** #dialing is the upstream socket of the connect attempt under way, if any. */
  #dialing: Socket | null = null;
  /** #plan lists the targets this connection tries, in order (TargetPool.plan). */
  #plan: Plan<Target> | null = null;
  #dialAttempt = 0;
  /** #attempts counts connect attempts started (drained targets skipped are not attempts). */
  #attempts = 0;
  #dialFailures: ConnectFailure[] = [];
  /** #drainedSkipped lists the drained targets this connection skipped. */
  #drainedSkipped: string[] = [];
  /**
   * Bytes each socket's kernel accepted, read just before close() destroyed the sockets
   * (afterwards Node no longer knows how much of a pending write the kernel took); -1
   * while open.
   */
  #deliveredToClient = -1;
  #deliveredToUpstream = -1;
  #lastPendingWrites = 0;
  #killWithReset = false;
  /** #early holds the client's bytes read before the upstream was connected. */
  #early: EarlyBytes | null = null;
  /** #prefaceBytes: the preface's length, not counted in bytesToUpstream. */
  #prefaceBytes = 0;

  /** The context takes ownership of `clientSocket`, which must be paused (pauseOnConnect). */
  constructor(host: ContextHost, clientSocket: Socket) {
    this.id = String(++lastId);
    this.host = host;
    this.config = host.config;
    this.trace = host.log.enabled('trace');
    this.acceptedAtMs = host.timers.now();
    this.lastActivityMs = this.acceptedAtMs;
    this.watchesActivity = this.config.idleTimeoutMs > 0 || this.config.halfCloseTimeoutMs > 0;
    this.#timer = new Timer<ProxyContext>(this, onContextTimer);
    this.client = new Endpoint('client', this);
    this.upstream = new Endpoint('upstream', this);
    this.client.peer = this.upstream;
    this.upstream.peer = this.client;
    // Attached (marked) first: reading remoteAddress adds a property to the socket too,
    // and the order is part of its hidden class (Endpoint.mark).
    watchSocket(this.client.attach(clientSocket));
    this.clientAddress = describeClient(clientSocket, this.config);
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  now(): number {
    return this.host.timers.now();
  }

  /**
   * connect starts reading the client, runs the listener's handshake if it has one,
   * and starts dialing the targets of the pool's plan, in order, with failover.
   */
  connect(): void {
    const client = this.client.socket;
    if (client !== null) startClientRelay(client);
    const handshake = this.config.hooks?.handshake;
    if (handshake !== undefined) this.#beginHandshake(handshake, client);
    else this.#dialFirst();
  }

  #dialFirst(): void {
    const pool = this.#routePool ?? this.host.pool;
    const plan = pool.plan(this.client.socket?.remoteAddress);
    this.#plan = plan;
    // A drained target gets no new connections: the plan leaves it out, as if not listed.
    for (const skipped of plan.skipped) {
      if (skipped.drained) this.#drainedSkipped.push(skipped.address);
    }
    this.#dialNext();
  }

  // ---------------------------------------------------------------- handshake

  #beginHandshake(handshake: Handshake, client: Socket | null): void {
    this.state = 'handshake';
    if (handshake.timeoutMs > 0) this.host.timers.scheduleIn(this.#timer, handshake.timeoutMs);
    if (this.trace) {
      this.traceEvent('client', `handshake ${handshake.name} started`, {
        timeout_ms: handshake.timeoutMs,
      });
    }
    if (client !== null) this.#stepHandshake(handshake, Buffer.alloc(0));
  }

  #stepHandshake(handshake: Handshake, bytes: Buffer): void {
    const socket = this.client.socket;
    if (socket === null) return;
    const verdict = handshake.step(bytes, { address: this.clientAddress, socket });
    if (verdict === undefined) return;
    if (!verdict.allow) {
      if (this.trace) {
        this.traceEvent(
          'client',
          `handshake ${handshake.name} refused the client: ${verdict.cause}`,
        );
      }
      if (verdict.reason !== undefined && this.host.log.enabled('debug')) {
        this.host.log.debug('client refused', { id: this.id, reason: verdict.reason });
      }
      this.close(verdict.cause);
      return;
    }
    this.host.timers.cancel(this.#timer);
    this.#early?.consume(verdict.consumed);
    if (verdict.client !== undefined) this.clientAddress = verdict.client;
    if (verdict.pool !== undefined) this.#routePool = verdict.pool;
    if (verdict.sni !== undefined) this.sni = verdict.sni;
    if (this.trace) {
      this.traceEvent('client', `handshake ${handshake.name} allowed ${this.clientAddress}`, {
        consumed: verdict.consumed,
      });
    }
    this.state = 'connecting';
    this.#dialFirst();
  }

  /** holdEarly keeps a chunk read before the upstream was connected (relay.ts); false: pause reading. */
  holdEarly(chunk: Buffer): boolean {
    if (this.closed) return false;
    if (this.#early === null) this.#early = new EarlyBytes();
    const early = this.#early;
    early.push(chunk);
    if (this.trace) {
      this.traceEvent('client', `read ${chunk.length} bytes from client (held: ${this.state})`);
    }
    const handshake = this.config.hooks?.handshake;
    if (this.state === 'handshake' && handshake !== undefined) {
      this.#stepHandshake(handshake, early.all());
      if (this.state === 'handshake') return early.length < handshake.maxBytes;
    }
    return !this.closed && early.length < EARLY_BYTES_LIMIT;
  }

  // ---------------------------------------------------------------- dialing

  #dialNext(): void {
    const entry = this.#plan?.targets[this.#dialAttempt];
    if (entry === undefined) {
      this.#allTargetsFailed();
      return;
    }
    const target = entry.target;
    this.target = target;
    this.poolTarget = entry;
    this.#attempts += 1;
    if (this.trace) {
      this.traceEvent(
        'upstream',
        `connecting to ${target.address} (attempt ${this.#dialAttempt + 1})`,
      );
    }
    this.#dialing = dial(target, this.upstream, UPSTREAM_ONREAD);
    const timeoutMs = this.config.connectTimeoutMs;
    if (timeoutMs > 0) {
      this.host.timers.scheduleIn(this.#timer, timeoutMs);
      if (this.trace)
        this.traceEvent('upstream', `timer armed: connect timeout in ${timeoutMs} ms`);
    }
  }

  /** onDialConnected: the design's connect() completing (writable, SO_ERROR = 0). */
  onDialConnected(socket: Socket): void {
    finishDial(socket);
    this.#dialing = null;
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.trace && this.#timer.scheduled)
      this.traceEvent('upstream', 'timer cancelled: connect timeout');
    this.host.timers.cancel(this.#timer);
    this.errorCode = undefined; // failures of earlier targets did not end this connection
    this.connectedAtMs = this.now();
    this.lastActivityMs = this.connectedAtMs;
    this.state = 'relaying';
    const upstream = this.upstream.attach(socket);
    watchSocket(upstream);
    if (this.trace) {
      const ms = Math.round(this.connectedAtMs - this.acceptedAtMs);
      this.traceEvent('upstream', `connected to ${this.target?.address ?? '?'} after ${ms} ms`);
    }
    if (this.target !== null) this.host.stats.countConnect(this.target.address);
    this.host.onContextConnected(this);
    startUpstreamRelay(upstream);
    const preface = this.config.hooks?.preface;
    if (preface !== undefined) {
      const bytes = preface(this);
      if (bytes !== null && bytes.length > 0) {
        this.#prefaceBytes = bytes.length;
        upstream.write(bytes);
      }
    }
    // The client's bytes held while we were dialing go first, in order; reading goes
    // on (resumes, if the bound paused it) once the upstream took them.
    const early = this.#early;
    this.#early = null;
    // As the relay does for copies: go on reading unless write() says the upstream
    // holds its high-water mark ('drain' then resumes the client, socketOnDrain).
    let goOn = true;
    if (early !== null) {
      for (const chunk of early.chunks) goOn = upstream.write(chunk);
      if (this.trace) this.traceEvent('upstream', `wrote ${early.length} held bytes to upstream`);
    }
    const client = this.client.socket;
    if (client !== null) {
      relayClient(client);
      if (goOn && this.client.paused) {
        this.client.paused = false;
        client.resume();
      }
    }
    this.#armInactivity();
    if (this.client.finReceived) this.onFin(this.client); // its FIN came while dialing
  }

  /** onDialFailed: the design's connect() failing; count it and try the next target. */
  onDialFailed(_socket: Socket, err: Error): void {
    this.#failAttempt(errorCode(err));
  }

  #onConnectTimeout(): void {
    this.#failAttempt('ETIMEDOUT');
  }

  #failAttempt(code: string): void {
    if (this.#dialing !== null) abandonDial(this.#dialing);
    this.#dialing = null;
    if (this.closed) return;
    this.host.timers.cancel(this.#timer);
    const address = this.target?.address ?? '?';
    this.host.stats.countConnectFailure(code, address);
    this.#dialFailures.push({ upstream: address, code });
    this.errorCode = code;
    if (code === 'EMFILE' || code === 'ENFILE') this.host.onDescriptorShortage(code, 'connect');
    if (this.trace) this.traceEvent('upstream', `connect to ${address} failed: ${code}`);
    if (this.host.log.enabled('debug')) {
      this.host.log.debug('connect failed', { id: this.id, upstream: address, code });
    }
    this.#dialAttempt += 1;
    this.#dialNext();
  }

  #allTargetsFailed(): void {
    const code = this.errorCode;
    this.target = null;
    this.poolTarget = null;
    if (code === 'EMFILE' || code === 'ENFILE') {
      // Logged once per burst by the listener, not once per client.
      this.close('connect_error');
      return;
    }
    // Every target drained is an operator's doing, not a failure of the targets: say so.
    const failures = this.#dialFailures;
    this.host.log.warn(
      failures.length === 0
        ? 'no target reachable: every target is drained'
        : 'no target reachable',
      {
        id: this.id,
        listener: this.config.name,
        client: this.clientAddress,
        tried: failures.length === 0 ? undefined : formatConnectFailures(failures),
        drained: this.#drainedSkipped.length === 0 ? undefined : this.#drainedSkipped.join(', '),
      },
    );
    this.close(code === undefined ? 'no_target' : connectCause(code));
  }

  // ---------------------------------------------------------------- relaying

  /** onFin: `from` finished sending. Pass the FIN on once its bytes are delivered. */
  onFin(from: Endpoint): void {
    if (this.closed) return;
    if (this.firstClose === null) this.firstClose = from.side;
    if (this.state === 'handshake') {
      this.close('client_fin'); // it left before the handshake was done
      return;
    }
    if (this.state === 'connecting') {
      // Passed on (half-close) once the upstream is connected and the held bytes written.
      if (this.trace) this.traceEvent(from.side, `FIN received from ${from.side} while connecting`);
      return;
    }
    this.state = 'half_closed';
    this.lastActivityMs = this.now(); // the half-close timeout counts from the FIN
    if (this.trace) this.traceEvent(from.side, `FIN received from ${from.side}`);
    const to = from.peer;
    if (!to.writeShut && to.socket !== null) {
      to.writeShut = true;
      // end() sends our FIN only after every byte already written reached the kernel.
      to.socket.end();
      if (this.trace)
        this.traceEvent(to.side, `shut write side of ${to.side} (FIN after buffered bytes)`);
    }
    this.#armInactivity();
  }

  /** onSocketError: an I/O error on one side is fatal for the whole context. */
  onSocketError(from: Endpoint, err: Error): void {
    const code = errorCode(err);
    if (this.firstClose === null) this.firstClose = from.side;
    this.errorCode = code;
    if (this.trace) this.traceEvent(from.side, `${from.side} socket error ${code}`);
    this.close(isResetCode(code) ? `${from.side}_reset` : `${from.side}_error`);
  }

  /** onSocketClose: both sockets closed after FINs both ways is the normal end. */
  onSocketClose(from: Endpoint): void {
    if (from.peer.socketClosed) {
      this.close(`${this.firstClose ?? from.side}_fin`);
    } else if (!from.finReceived) {
      // Closed under us without FIN or error (destroyed elsewhere): treat as a failure of that side.
      if (this.firstClose === null) this.firstClose = from.side;
      this.close(`${from.side}_error`);
    }
    // Otherwise this side is done both ways and the peer is still flushing: wait for it.
  }

  // ---------------------------------------------------------------- timers

  /** onTimer: the context's timer fired; what it means depends on the state. */
  onTimer(): void {
    if (this.state === 'handshake') {
      if (this.trace) this.traceEvent('client', 'timer fired: handshake deadline');
      this.close(this.config.hooks?.handshake?.timeoutCause ?? 'idle_timeout');
      return;
    }
    if (this.state === 'connecting') {
      this.#onConnectTimeout();
      return;
    }
    if (this.closed) return;
    const periodMs = this.#inactivityPeriodMs();
    if (periodMs === 0) return;
    const now = this.now();
    // Bytes still moving through our buffers count as activity too (as Node's own
    // socket timeout counts a draining write): if what we hold for either socket,
    // either way, changed since the last check, a slow peer is still taking bytes.
    const pending = this.client.buffered + this.upstream.buffered;
    if (pending > 0 && pending !== this.#lastPendingWrites) this.lastActivityMs = now;
    this.#lastPendingWrites = pending;
    const deadline = this.lastActivityMs + periodMs;
    if (now < deadline) {
      this.host.timers.schedule(this.#timer, deadline);
      return;
    }
    if (this.trace) {
      this.traceEvent(this.firstClose ?? 'client', `timer fired: no bytes for ${periodMs} ms`);
    }
    const halfClosed = this.state === 'half_closed' && this.config.halfCloseTimeoutMs > 0;
    this.close(halfClosed ? 'half_close_timeout' : 'idle_timeout');
  }

  #inactivityPeriodMs(): number {
    const { idleTimeoutMs, halfCloseTimeoutMs } = this.config;
    if (this.state === 'half_closed' && halfCloseTimeoutMs > 0) return halfCloseTimeoutMs;
    return idleTimeoutMs;
  }

  // Lazy refresh: the deadline is set from the last activity; per chunk only
  // `lastActivityMs` moves, and onTimer re-schedules if the deadline was not real.
  #armInactivity(): void {
    const periodMs = this.#inactivityPeriodMs();
    if (periodMs === 0) {
      if (this.trace && this.#timer.scheduled) this.traceEvent('client', 'timer cancelled');
      this.host.timers.cancel(this.#timer);
      return;
    }
    const deadline = this.lastActivityMs + periodMs;
    if (!this.#timer.scheduled || deadline < this.#timer.deadline) {
      this.host.timers.schedule(this.#timer, deadline);
      if (this.trace) {
        const what = this.state === 'half_closed' ? 'half-close' : 'idle';
        this.traceEvent('client', `timer armed: ${what} timeout, ${periodMs} ms without bytes`);
      }
    }
  }

  // ---------------------------------------------------------------- teardown

  /**
   * close tears the context down, exactly once, for `cause`. A reset or error of one
   * side is passed on as a reset (RST) to the other where possible; timeouts, limits,
   * shutdown and failed connects close the sockets normally. Calling it again does nothing.
   * Whatever throws on the way (destroying a socket never does), both sockets end up
   * destroyed and the listener hears of it: a context is never left half-closed (state
   * `closed` but still listed, its sockets open).
   */
  close(cause: CloseCause): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.cause = cause;
    this.closedAtMs = this.now();
    const reset = PASSED_ON_AS_RESET.has(cause) || this.#killWithReset;
    try {
      this.#settleDelivered(); // before the sockets are destroyed: it needs their handles
      this.host.timers.cancel(this.#timer);
      if (this.#dialing !== null) abandonDial(this.#dialing);
      if (this.trace) {
        if (reset)
          this.traceEvent(this.firstClose ?? 'client', 'passed the reset on to the other side');
        this.traceEvent(this.firstClose ?? 'client', `closed: ${cause}`);
      }
    } finally {
      // destroySocket never throws, so these run even if a step above did.
      this.#dialing = null;
      // A Unix domain socket has no RST: only TCP sockets are reset.
      destroySocket(this.client.socket, reset && this.config.listen.path === undefined);
      destroySocket(this.upstream.socket, reset && this.target?.path === undefined);
      this.host.onContextClosed(this);
    }
  }

  /**
   * kill closes the connection at an operator's request (cause `admin_kill`): both
   * sockets are destroyed at once, with a reset (RST) when `reset` is true, else with
   * a FIN. It never waits for a stuck peer.
   */
  kill(reset: boolean): void {
    this.#killWithReset = reset;
    this.close('admin_kill');
  }

  // ---------------------------------------------------------------- views

  // Counted once, at close, not per chunk: the relay's hot path stays as it is.
  #settleDelivered(): void {
    this.#deliveredToClient = deliveredBytes(this.client.socket);
    this.#deliveredToUpstream = deliveredBytes(this.upstream.socket);
  }

  /** bytesToClient: bytes the client's socket took into the kernel (docs/observability.md, "delivered"). */
  get bytesToClient(): number {
    const settled = this.#deliveredToClient;
    return settled >= 0 ? settled : deliveredBytes(this.client.socket);
  }

  /** bytesToUpstream: bytes the upstream's socket took into the kernel. */
  get bytesToUpstream(): number {
    const settled = this.#deliveredToUpstream;
    const delivered = settled >= 0 ? settled : deliveredBytes(this.upstream.socket);
    return Math.max(0, delivered - this.#prefaceBytes); // relayed bytes only: not the preface
  }

  /** info describes the connection now (or as it was when it closed). */
  info(): ConnectionInfo {
    const end = this.closedAtMs >= 0 ? this.closedAtMs : this.now();
    return {
      id: this.id,
      listener: this.config.name,
      state: this.state,
      client: this.clientAddress,
      upstream: this.connectedAtMs >= 0 && this.target !== null ? this.target.address : null,
      sni: this.sni,
      bytesToUpstream: this.bytesToUpstream,
      bytesToClient: this.bytesToClient,
      bytesFromClient: this.client.bytesRead,
      bytesFromUpstream: this.upstream.bytesRead,
      attempts: this.#attempts,
      connectFailures: this.#dialFailures.slice(),
      buffered: this.client.buffered + this.upstream.buffered,
      connectMs: this.connectedAtMs >= 0 ? this.connectedAtMs - this.acceptedAtMs : undefined,
      ageMs: end - this.acceptedAtMs,
      cause: this.cause,
      firstClose: this.firstClose,
      error: this.errorCode,
    };
  }

  /** traceEvent logs one event of this connection at trace level. */
  traceEvent(side: Side, event: string, fields?: Readonly<Record<string, number | string>>): void {
    this.host.log.trace(event, { id: this.id, side, ...fields });
  }
}
