/**
 * The proxy context: one proxied connection. It owns the client socket (the
 * design's source), the upstream socket (the destination), their per-socket state
 * (two Endpoints), the byte counters, the times, its one Timer and, when a connection
 * has them, the stages between the sockets. Other objects (the listener's set, the
 * timer set) only reference it.
 *
 * Life of a connection (docs/design.md has the diagram):
 *
 *   [handshake] ──allow──▶ connecting ──connected──▶ relaying ──first FIN──▶ half_closed ──▶ closed
 *        │                      │   (preface, then held bytes)    │                    │
 *        └─ refuse, deadline, FIN, reset; every target failed, timeout, shutdown: close(cause) ──▶ closed
 *
 * Everything before relaying (the handshake, holding the client's early bytes, the
 * connect attempts with failover, wrapping the upstream) is the context's Opening
 * (opening.ts). This module is the rest of the life: relaying, half-close, the stages
 * (stage.ts), the timers, and teardown.
 *
 * Every path ends in `close(cause)`, which runs once: it cancels the timer, stops the
 * stages, destroys (or resets) both sockets and hands the context back to its
 * listener for the access record. Nothing is torn down anywhere else.
 *
 * The one Timer serves every wait a context can have, never two at once: the
 * handshake's deadline, the connect timeout while connecting, the idle (or
 * half-close) timeout afterwards.
 */
import type { Socket } from 'node:net';
import { type CloseCause, isResetCode, PASSED_ON_AS_RESET } from './close-cause.js';
import type { ListenerConfig, Target } from './config/config.js';
import type { ConnectionInfo, ContextState } from './connection-info.js';
import { Endpoint, type EndpointSocket, type Side } from './endpoint.js';
import { errorCode } from './errors.js';
import type { ListenerFaults } from './faults/listener-faults.js';
import type { ToxicRegistry } from './faults/registry.js';
import type { TlsFacts } from './handshake.js';
import { armInactivity, inactivityExpired } from './inactivity.js';
import { Opening, type OpeningHost } from './opening.js';
import { followStage, startClientRelay, startUpstreamRelay, watchSocket } from './relay.js';
import { describeClient, destroyEnd, peerName } from './socket-ends.js';
import type { Stage, StageControl, Stream } from './stage.js';
import { replaceStage, type StageOwner, stageIn } from './stage-port.js';
import { Timer, type TimerSet } from './timer-set.js';
import type { PoolTarget } from './upstream/target-pool.js';

/** ContextHost is what a context needs from the listener that accepted it. */
export interface ContextHost extends OpeningHost {
  readonly config: ListenerConfig;
  /** contextConfig is `config` as new connections get it, with the hooks its settings ask for. */
  readonly contextConfig: ListenerConfig;
  readonly timers: TimerSet;
  /** toxics: the listener's toxics; a connection is attached only while there are some. */
  readonly toxics?: ToxicRegistry | null;
  /** faults: a JavaScript test's requests for the next connections (listener-faults.ts). */
  readonly faults?: ListenerFaults | null;
  onContextClosed(context: ProxyContext): void;
  onContextConnected(context: ProxyContext): void;
}

let lastId = 0;

function onContextTimer(context: ProxyContext): void {
  context.onTimer();
}

/** ProxyContext is one client connection and everything that belongs to it. */
export class ProxyContext implements StageControl, StageOwner {
  readonly id: string;
  readonly host: ContextHost;
  /**
   * config is the listener's as it was when the client was accepted: a reload
   * changes it for new connections only, never under an open one.
   */
  readonly config: ListenerConfig;
  readonly client: Endpoint;
  readonly upstream: Endpoint;
  /** clientAddress: a handshake may replace it with the real client's (a PROXY header's source). */
  clientAddress: string;
  /** clientIp: the accepted socket's peer IP (undefined for a Unix socket, or a client gone at once). */
  readonly clientIp: string | undefined;
  /** sni: the TLS server name a handshake read (SNI routing), for the access record. */
  sni: string | undefined = undefined;
  /** clientTls, upstreamTls: the TLS handshakes' facts (termination, origination), for the access record. */
  clientTls: TlsFacts | undefined = undefined;
  upstreamTls: TlsFacts | undefined = undefined;
  readonly trace: boolean;
  state: ContextState = 'connecting';
  /**
   * toxicControl: what the listener's toxics are given in place of this connection
   * when a test holds it (ConnectionHandle.stageControl); null: the connection itself.
   */
  toxicControl: StageControl | null = null;
  /** #hanging: a test asked that this client hang (never dialled) until it leaves. */
  #hanging = false;
  cause: CloseCause | null = null;
  firstClose: Side | null = null;
  /** target is the target being dialed, then the one connected to. */
  target: Target | null = null;
  /** poolTarget is `target`'s entry in the listener's pool (its state and connection count). */
  poolTarget: PoolTarget<Target> | null = null;
  errorCode: string | undefined = undefined;
  /** closingStage names the stage that closed the connection (cause `toxic`), else null. */
  closingStage: string | null = null;
  readonly acceptedAtMs: number;
  connectedAtMs = -1;
  closedAtMs = -1;
  lastActivityMs: number;
  readonly watchesActivity: boolean;
  /** prefaceBytes: the preface's length, not counted in bytesToUpstream (opening.ts). */
  prefaceBytes = 0;
  readonly #timer: Timer<ProxyContext>;
  readonly #opening: Opening;
  /** lastPendingWrites: what `buffered` was at the last expiry of the idle timer (inactivity.ts). */
  lastPendingWrites = 0;
  #killWithReset = false;

  /** The context takes ownership of `clientSocket`, which must be paused (pauseOnConnect). */
  constructor(host: ContextHost, clientSocket: Socket) {
    this.id = String(++lastId);
    this.host = host;
    this.config = host.contextConfig;
    this.trace = host.log.enabled('trace');
    this.acceptedAtMs = host.timers.now();
    this.lastActivityMs = this.acceptedAtMs;
    this.watchesActivity = this.config.idleTimeoutMs > 0 || this.config.halfCloseTimeoutMs > 0;
    this.#timer = new Timer<ProxyContext>(this, onContextTimer);
    this.client = new Endpoint('client', this);
    this.upstream = new Endpoint('upstream', this);
    this.client.peer = this.upstream;
    this.upstream.peer = this.client;
    this.#opening = new Opening(this);
    watchSocket(this.client.attach(clientSocket));
    // Asked of the handle, not through remoteAddress: no property added to the socket.
    const peer = this.config.listen.path === undefined ? peerName(clientSocket) : {};
    this.clientIp = peer.address;
    this.clientAddress = describeClient(peer, this.config);
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  now(): number {
    return this.host.timers.now();
  }

  /** scheduleIn sets the context's one Timer to fire in `delayMs` (the opening's deadlines). */
  scheduleIn(delayMs: number): void {
    this.host.timers.scheduleIn(this.#timer, delayMs);
  }

  /** cancelTimer cancels the context's Timer. */
  cancelTimer(): void {
    this.host.timers.cancel(this.#timer);
  }

  /**
   * connect starts reading the client, runs the listener's handshake if it has one,
   * and starts dialing the targets of the pool's plan, in order, with failover.
   */
  connect(): void {
    const client = this.client.transport;
    if (client !== null) startClientRelay(client);
    this.#opening.start();
  }

  /**
   * hang reads the client but never dials (a test's `hangNext`): the connection stays
   * until the client leaves (FIN: `client_fin`, reset: `client_reset`) or the proxy
   * closes it. What the client sends is held up to the early-bytes bound, then not read.
   */
  hang(): void {
    this.#hanging = true;
    const client = this.client.transport;
    if (client !== null) startClientRelay(client);
  }

  // The opening's events, as the endpoints and dial() report them (EndpointOwner).

  /** holdEarly keeps a chunk read before the upstream was connected (relay.ts); false: pause reading. */
  holdEarly(chunk: Buffer): boolean {
    return this.#opening.holdEarly(chunk);
  }

  /** onDialConnected: the design's connect() completing (writable, SO_ERROR = 0). */
  onDialConnected(socket: Socket): void {
    this.#opening.onDialConnected(socket);
  }

  /** onDialFailed: the design's connect() failing; the next target is tried. */
  onDialFailed(socket: Socket, err: Error): void {
    this.#opening.onDialFailed(socket, err);
  }

  // ---------------------------------------------------------------- relaying

  /**
   * startRelaying: the upstream is connected (and its wrapper ready). Report it, start
   * its relay, let the `relaying` hook choose the stages, then hand the client's held
   * bytes over (written first, in order) and relay the client's reads.
   */
  startRelaying(upstream: EndpointSocket): void {
    if (this.trace && this.#timer.scheduled)
      this.traceEvent('upstream', 'timer cancelled: connect timeout');
    this.cancelTimer();
    this.errorCode = undefined; // failures of earlier targets did not end this connection
    this.connectedAtMs = this.now();
    this.lastActivityMs = this.connectedAtMs;
    this.state = 'relaying';
    watchSocket(upstream);
    if (this.trace) {
      const ms = Math.round(this.connectedAtMs - this.acceptedAtMs);
      this.traceEvent('upstream', `connected to ${this.target?.address ?? '?'} after ${ms} ms`);
    }
    if (this.target !== null) this.host.stats.countConnect(this.target.address);
    this.host.onContextConnected(this);
    startUpstreamRelay(upstream);
    this.config.hooks?.relaying?.(this);
    const faults = this.host.faults;
    if (faults != null) this.toxicControl = faults.onRelaying(this)?.stageControl ?? null;
    const toxics = this.host.toxics;
    if (toxics != null && toxics.size > 0) toxics.attach(this.toxicControl ?? this);
    if (this.closed) return; // the hook (or a stage) closed it
    if (this.upstream.stage !== null) followStage(upstream);
    this.#opening.handOver(upstream);
    armInactivity(this, this.#timer);
    if (this.client.finReceived) this.onFin(this.client); // its FIN came while dialing
  }

  /** onFin: `from` finished sending. Pass the FIN on once its bytes are delivered. */
  onFin(from: Endpoint): void {
    if (this.closed) return;
    if (this.firstClose === null) this.firstClose = from.side;
    if (this.state === 'handshake' || this.#hanging) {
      this.close('client_fin'); // it left before the handshake was done (or while hanging)
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
    // Through a stage, the FIN comes after what it holds, when the stage passes it on.
    if (from.stage !== null) from.stage.takeEnd();
    else this.shutWrite(from.peer);
    armInactivity(this, this.#timer);
  }

  /** shutWrite sends our FIN to `to` (once), after every byte already written to it. */
  shutWrite(to: Endpoint): void {
    if (to.writeShut || to.socket === null || this.closed) return;
    to.writeShut = true;
    // end() sends our FIN only after every byte already written reached the kernel.
    to.socket.end();
    if (this.trace)
      this.traceEvent(to.side, `shut write side of ${to.side} (FIN after buffered bytes)`);
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

  // ---------------------------------------------------------------- stages

  /**
   * setStage puts `stage` into `stream` (`upstream`: the client's bytes, `downstream`:
   * the target's), in place of the one there, whose held bytes and FIN are flushed on
   * in order; null takes it out (StageControl, stage.ts). Internal: the `relaying` hook
   * and fault injection call it.
   */
  setStage(stream: Stream, stage: Stage | null): void {
    if (this.closed) {
      stage?.stop();
      return;
    }
    const from = stream === 'upstream' ? this.client : this.upstream;
    const before = stageIn(from);
    const relaying = this.state === 'relaying' || this.state === 'half_closed';
    replaceStage(from, stage, this, relaying);
    if (this.trace) {
      if (before !== null)
        this.traceEvent(from.side, `stage ${before.name} taken out of ${stream}`);
      if (stage !== null) this.traceEvent(from.side, `stage ${stage.name} put into ${stream}`);
    }
  }

  /** stageOf is the stage in `stream` now, or null. */
  stageOf(stream: Stream): Stage | null {
    return stageIn(stream === 'upstream' ? this.client : this.upstream);
  }

  /** closeForStage: a stage ends the connection (cause `toxic`), with a reset or a FIN. */
  closeForStage(name: string, reset: boolean): void {
    if (this.closed) return;
    this.closingStage = name;
    this.#killWithReset = reset;
    this.close('toxic');
  }

  // ---------------------------------------------------------------- timers

  /** onTimer: the context's timer fired; what it means depends on the state. */
  onTimer(): void {
    if (this.state === 'handshake') {
      if (this.trace) this.traceEvent('client', 'timer fired: handshake deadline');
      this.close(this.#opening.handshakeTimeoutCause ?? 'idle_timeout');
      return;
    }
    if (this.state === 'connecting') {
      this.#opening.onConnectTimeout();
      return;
    }
    if (this.closed) return;
    const cause = inactivityExpired(this, this.#timer);
    if (cause !== null) this.close(cause);
  }

  /** buffered: the bytes this connection holds in user space now, both ways (§7). */
  get buffered(): number {
    return this.client.buffered + this.upstream.buffered;
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
      // Counted once, at close, not per chunk; before the sockets are destroyed (their handles).
      this.client.settleDelivered();
      this.upstream.settleDelivered();
      this.host.timers.cancel(this.#timer);
      this.#opening.abandon();
      // A stage's timers end with the connection; what it held is dropped with it.
      if (this.client.stage !== null) replaceStage(this.client, null, this, false);
      if (this.upstream.stage !== null) replaceStage(this.upstream, null, this, false);
      if (this.trace) {
        if (reset)
          this.traceEvent(this.firstClose ?? 'client', 'passed the reset on to the other side');
        this.traceEvent(this.firstClose ?? 'client', `closed: ${cause}`);
      }
    } finally {
      // destroyEnd never throws, so these run even if a step above did.
      // A Unix domain socket has no RST: only TCP sockets are reset.
      destroyEnd(this.client, reset && this.config.listen.path === undefined);
      destroyEnd(this.upstream, reset && this.target?.path === undefined);
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

  /** bytesToClient: bytes the client's socket took into the kernel (docs/observability.md, "delivered"). */
  get bytesToClient(): number {
    return this.client.delivered;
  }

  /** bytesToUpstream: bytes the upstream's socket took into the kernel, the preface left out. */
  get bytesToUpstream(): number {
    return Math.max(0, this.upstream.delivered - this.prefaceBytes);
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
      clientTls: this.clientTls,
      upstreamTls: this.upstreamTls,
      bytesToUpstream: this.bytesToUpstream,
      bytesToClient: this.bytesToClient,
      bytesFromClient: this.client.bytesRead,
      bytesFromUpstream: this.upstream.bytesRead,
      attempts: this.#opening.attempts,
      connectFailures: this.#opening.failures.slice(),
      buffered: this.buffered,
      connectMs: this.connectedAtMs >= 0 ? this.connectedAtMs - this.acceptedAtMs : undefined,
      ageMs: end - this.acceptedAtMs,
      cause: this.cause,
      ...(this.closingStage === null ? {} : { toxic: this.closingStage }),
      firstClose: this.firstClose,
      error: this.errorCode,
    };
  }

  /** traceEvent logs one event of this connection at trace level. */
  traceEvent(side: Side, event: string, fields?: Readonly<Record<string, number | string>>): void {
    this.host.log.trace(event, { id: this.id, side, ...fields });
  }
}
