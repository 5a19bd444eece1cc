/**
 * The opening of a connection: everything between accept and relaying.
 *   accept ──▶ [handshake: read the client, verdict] ──▶ dial the plan's targets, in
 *   order (failover) ──▶ connected: preface, [wrap the upstream (TLS)] ──▶ relay
 *
 * The client is read from accept on; what it sends meanwhile is held, bounded
 * (EarlyBytes), and handed to the relay when it starts, so a reset or a FIN is seen
 * at once. A handshake (handshake.ts) may consume bytes, replace the client's address
 * or targets, or replace the client socket by a wrapper (TLS termination); an upstream
 * wrapper (TLS origination) stands on the connected upstream socket before its first
 * relayed byte. The context's one Timer is the handshake's deadline, then the connect
 * timeout of each attempt.
 *
 * An Opening belongs to one ProxyContext, seen as an OpeningContext (no import of it).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type CloseCause, connectCause } from './close-cause.js';
import type { ListenerConfig, Target } from './config/config.js';
import {
  type ConnectFailure,
  type ContextState,
  formatConnectFailures,
} from './connection-info.js';
import type { Endpoint, EndpointSocket, Side } from './endpoint.js';
import { errorCode } from './errors.js';
import {
  EARLY_BYTES_LIMIT,
  EarlyBytes,
  type Handshake,
  type HandshakeAllow,
  type HandshakeRefuse,
  type TlsFacts,
  type UpstreamWrapper,
} from './handshake.js';
import type { Logger } from './log.js';
import {
  relayClient,
  startWrappedClient,
  UPSTREAM_ONREAD,
  unwatchReplaced,
  watchSocket,
} from './relay.js';
import type { Stats } from './stats.js';
import { abandonDial, dial, finishDial } from './upstream/dial.js';
import type { Plan, PoolTarget, TargetPool } from './upstream/target-pool.js';

/** OpeningHost is what an opening needs from the listener (part of the context's host). */
export interface OpeningHost {
  readonly log: Logger;
  readonly stats: Stats;
  /** pool gives each connection its plan of targets to try (target-pool.ts). */
  readonly pool: TargetPool<Target>;
  onDescriptorShortage(code: string, during: 'connect'): void;
}

/** OpeningContext is what an opening needs from its proxy context (ProxyContext). */
export interface OpeningContext {
  readonly id: string;
  readonly config: ListenerConfig;
  readonly host: OpeningHost;
  readonly client: Endpoint;
  readonly upstream: Endpoint;
  /** scheduleIn sets the context's one Timer to fire in `delayMs`; cancelTimer cancels it. */
  scheduleIn(delayMs: number): void;
  cancelTimer(): void;
  readonly closed: boolean;
  readonly trace: boolean;
  state: ContextState;
  clientAddress: string;
  /** clientIp: the accepted socket's peer IP, as balancing gets it when no handshake gave one. */
  readonly clientIp: string | undefined;
  /** sni: the server name a handshake read (SNI routing), for the access record. */
  sni: string | undefined;
  /** clientTls, upstreamTls: the TLS handshakes' facts (termination, origination), for the access record. */
  clientTls: TlsFacts | undefined;
  upstreamTls: TlsFacts | undefined;
  target: Target | null;
  poolTarget: PoolTarget<Target> | null;
  errorCode: string | undefined;
  /** prefaceBytes: the preface's length (written on the upstream's own socket), not relayed bytes. */
  prefaceBytes: number;
  traceEvent(side: Side, event: string, fields?: Readonly<Record<string, number | string>>): void;
  close(cause: CloseCause): void;
  /** startRelaying: the upstream is attached (and ready); relay both ways from now on. */
  startRelaying(upstream: EndpointSocket): void;
}

/** Opening runs a connection's handshake and connect attempts; made with its context. */
export class Opening {
  readonly #context: OpeningContext;
  /** #early holds the client's bytes read before the upstream was connected. */
  #early: EarlyBytes | null = null;
  /** #routePool: a handshake may replace the listener's pool (a route chosen by SNI). */
  #routePool: TargetPool<Target> | null = null;
  /** #waiting: the handshake's verdict is a promise not settled yet. */
  #waiting = false;
  /** #dialing is the socket of the connect attempt under way; #plan the targets to try, in order. */
  #dialing: Socket | null = null;
  #plan: Plan<Target> | null = null;
  #dialAttempt = 0;
  /** #lastFailedTls: the last attempt failed in the upstream's TLS handshake. */
  #lastFailedTls = false;
  /** attempts counts connect attempts started (drained targets skipped are not attempts). */
  attempts = 0;
  /** #failures: how each failed attempt ended, in order; null until one fails (the usual case). */
  #failures: ConnectFailure[] | null = null;
  /** #drainedSkipped lists the drained targets this connection skipped; null: none. */
  #drainedSkipped: string[] | null = null;
  /** #clientIp: the real client's IP when a handshake gave one (HandshakeAllow.clientIp). */
  #clientIp: string | undefined = undefined;
  /** #destination: where the real client connected to, when a handshake said (HandshakeAllow.destination). */
  #destination: string | undefined = undefined;
  /** #handshake: the handshake running now (a listener's, then its `next`); null: none or done. */
  #handshake: Handshake | null = null;

  constructor(context: OpeningContext) {
    this.#context = context;
  }

  /** failures: how each failed attempt ended, in order. */
  get failures(): readonly ConnectFailure[] {
    return this.#failures ?? NO_FAILURES;
  }

  /** start runs the listener's handshake if it has one, else dials the first target. */
  start(): void {
    const handshake = this.#context.config.hooks?.handshake;
    if (handshake !== undefined) this.#beginHandshake(handshake);
    else this.#dialFirst();
  }

  /**
   * handOver ends the opening once `upstream` relays: the client's held bytes are
   * written first, in order (through its stage, if any), then its reads are relayed.
   * Reading goes on (resumes, if the bound paused it) unless the upstream holds its
   * high-water mark, as for copies ('drain' then resumes the client).
   */
  handOver(upstream: EndpointSocket): void {
    const context = this.#context;
    const early = this.#early;
    this.#early = null;
    // The targets to try are done with: an open connection does not keep them.
    this.#plan = null;
    let goOn = true;
    if (early !== null) {
      const stage = context.client.stage;
      for (const chunk of early.chunks)
        goOn = stage !== null ? stage.take(chunk) : upstream.write(chunk);
      if (context.trace)
        context.traceEvent('upstream', `wrote ${early.length} held bytes to upstream`);
    }
    const client = context.client.socket;
    if (client === null) return;
    relayClient(client);
    if (goOn && context.client.paused) {
      context.client.paused = false;
      client.resume();
    }
  }

  /** abandon drops a connect attempt under way (the context is closing). */
  abandon(): void {
    if (this.#dialing !== null) abandonDial(this.#dialing);
    this.#dialing = null;
  }

  // ---------------------------------------------------------------- handshake

  /** handshakeTimeoutCause: the cause that ends a client whose handshake (the one running now) ran out of time. */
  get handshakeTimeoutCause(): CloseCause | undefined {
    return this.#handshake?.timeoutCause;
  }

  // A handshake's `next` begins on the bytes held and not consumed (after a PROXY header).
  #beginHandshake(handshake: Handshake): void {
    const context = this.#context;
    context.state = 'handshake';
    this.#handshake = handshake;
    if (handshake.timeoutMs > 0) context.scheduleIn(handshake.timeoutMs);
    if (context.trace) {
      context.traceEvent('client', `handshake ${handshake.name} started`, {
        timeout_ms: handshake.timeoutMs,
      });
    }
    const held = this.#early?.all() ?? Buffer.alloc(0);
    if (context.client.socket !== null) this.#stepHandshake(handshake, held);
  }

  #stepHandshake(handshake: Handshake, bytes: Buffer): void {
    const context = this.#context;
    const socket = context.client.transport;
    if (socket === null || this.#waiting) return;
    const verdict = handshake.step(bytes, { address: context.clientAddress, socket });
    if (verdict === undefined) return;
    if (!(verdict instanceof Promise)) {
      this.#decide(handshake, verdict);
      return;
    }
    this.#waiting = true;
    verdict.then(
      (settled) => this.#decide(handshake, settled),
      (err: unknown) =>
        this.#decide(handshake, {
          allow: false,
          cause: handshake.timeoutCause,
          reason: asError(err).message,
        }),
    );
  }

  #decide(handshake: Handshake, verdict: HandshakeAllow | HandshakeRefuse): void {
    const context = this.#context;
    this.#waiting = false;
    if (context.closed || context.state !== 'handshake') {
      if (verdict.allow) verdict.socket?.destroy(); // too late: the deadline or a reset won
      return;
    }
    if (!verdict.allow) {
      if (context.trace) {
        context.traceEvent(
          'client',
          `handshake ${handshake.name} refused the client: ${verdict.cause}`,
        );
      }
      if (verdict.reason !== undefined && context.host.log.enabled('debug')) {
        context.host.log.debug('client refused', { id: context.id, reason: verdict.reason });
      }
      if (verdict.code !== undefined) context.errorCode = verdict.code;
      if (verdict.client !== undefined) context.clientAddress = verdict.client;
      context.close(verdict.cause);
      return;
    }
    context.cancelTimer();
    this.#early?.consume(verdict.consumed);
    if (verdict.client !== undefined) context.clientAddress = verdict.client;
    if (verdict.clientIp !== undefined) this.#clientIp = verdict.clientIp;
    if (verdict.destination !== undefined) this.#destination = verdict.destination;
    if (verdict.pool !== undefined) this.#routePool = verdict.pool;
    if (verdict.sni !== undefined) context.sni = verdict.sni;
    if (verdict.tls !== undefined) context.clientTls = verdict.tls;
    if (verdict.socket !== undefined) this.#replaceClient(verdict.socket);
    if (context.trace) {
      const tls = verdict.tls;
      context.traceEvent('client', `handshake ${handshake.name} allowed ${context.clientAddress}`, {
        consumed: verdict.consumed,
        ...(tls === undefined ? {} : traceTls(tls)),
        ...(verdict.sni === undefined ? {} : { sni: verdict.sni }),
      });
    }
    if (handshake.next !== undefined) {
      this.#beginHandshake(handshake.next);
      return;
    }
    this.#handshake = null;
    context.state = 'connecting';
    this.#dialFirst();
  }

  // The handshake wrapped the client socket (TLS termination): read and own the wrapper.
  #replaceClient(wrapper: Duplex): void {
    const client = this.#context.client;
    const replaced = client.socket;
    const transport = client.transport;
    if (replaced === null || transport === null) return;
    unwatchReplaced(replaced);
    const owned = client.attachWrapper(wrapper, transport);
    client.paused = false;
    watchSocket(owned);
    startWrappedClient(owned);
  }

  /** holdEarly keeps a chunk read before the upstream was connected; false: pause reading. */
  holdEarly(chunk: Buffer): boolean {
    const context = this.#context;
    if (context.closed) return false;
    if (this.#early === null) this.#early = new EarlyBytes();
    const early = this.#early;
    early.push(chunk);
    if (context.trace) {
      context.traceEvent(
        'client',
        `read ${chunk.length} bytes from client (held: ${context.state})`,
      );
    }
    const handshake = this.#handshake;
    if (context.state === 'handshake' && handshake !== null) {
      this.#stepHandshake(handshake, early.all());
      // A step may have begun the next handshake, which may have taken the socket over (TLS).
      if (context.state === 'handshake') return early.length < (this.#handshake?.maxBytes ?? 0);
    }
    return !context.closed && early.length < EARLY_BYTES_LIMIT;
  }

  // ---------------------------------------------------------------- dialing

  #dialFirst(): void {
    const context = this.#context;
    const pool = this.#routePool ?? context.host.pool;
    // The real client's IP (a PROXY header's source), so source hashing follows the client.
    const plan = pool.plan(this.#clientIp ?? context.clientIp);
    this.#plan = plan;
    // A drained target gets no new connections: the plan leaves it out, as if not listed.
    for (const skipped of plan.skipped) {
      if (!skipped.drained) continue;
      this.#drainedSkipped ??= [];
      this.#drainedSkipped.push(skipped.address);
    }
    this.#dialNext();
  }

  #dialNext(): void {
    const context = this.#context;
    const entry = this.#plan?.targets[this.#dialAttempt];
    if (entry === undefined) {
      this.#allTargetsFailed();
      return;
    }
    const target = entry.target;
    context.target = target;
    context.poolTarget = entry;
    this.attempts += 1;
    if (context.trace) {
      context.traceEvent(
        'upstream',
        `connecting to ${target.address} (attempt ${this.#dialAttempt + 1})`,
      );
    }
    this.#dialing = dial(target, context.upstream, UPSTREAM_ONREAD);
    const timeoutMs = context.config.connectTimeoutMs;
    if (timeoutMs > 0) {
      context.scheduleIn(timeoutMs);
      if (context.trace)
        context.traceEvent('upstream', `timer armed: connect timeout in ${timeoutMs} ms`);
    }
  }

  /** onDialConnected: the design's connect() completing (writable, SO_ERROR = 0). */
  onDialConnected(socket: Socket): void {
    const context = this.#context;
    const hooks = context.config.hooks;
    const wrap = hooks?.wrapUpstream;
    if (wrap === undefined) {
      finishDial(socket);
      this.#dialing = null;
    }
    if (context.closed) {
      socket.destroy();
      return;
    }
    // The preface goes on the upstream's own socket, first: under a wrapper (TLS),
    // before it, and then it is no part of the wrapper's count of bytes.
    const bytes = hooks?.preface?.({
      clientAddress: context.clientAddress,
      ...(this.#destination === undefined ? {} : { destinationAddress: this.#destination }),
      client: { socket: context.client.transport },
      upstream: { socket },
      target: context.target,
    });
    if (bytes !== undefined && bytes !== null && bytes.length > 0) {
      socket.write(bytes);
      if (wrap === undefined) context.prefaceBytes = bytes.length;
    }
    if (wrap !== undefined) this.#wrapUpstream(wrap, socket);
    else context.startRelaying(context.upstream.attach(socket));
  }

  // TLS origination: the attempt stays under way (its connect timeout, its dial
  // listeners: an error of the socket fails it) until the wrapper is ready.
  #wrapUpstream(wrap: UpstreamWrapper, socket: Socket): void {
    const context = this.#context;
    const failed = (err: unknown): void => {
      if (this.#dialing === socket) this.#failAttempt(errorCode(err), true);
    };
    const ready = (wrapper: Duplex): void => {
      if (this.#dialing !== socket || context.closed) {
        wrapper.destroy(); // the attempt timed out or the client left meanwhile
        return;
      }
      finishDial(socket);
      this.#dialing = null;
      socket.on('error', ignoreLateError); // its errors reach us through the wrapper
      context.upstreamTls = context.config.hooks?.upstreamFacts?.(wrapper);
      if (context.trace && context.upstreamTls !== undefined)
        context.traceEvent('upstream', 'upstream TLS ready', traceTls(context.upstreamTls));
      context.startRelaying(context.upstream.attachWrapper(wrapper, socket));
    };
    try {
      if (context.target !== null) wrap(socket, context.target).then(ready, failed);
    } catch (err) {
      failed(err);
    }
  }

  /** onDialFailed: the design's connect() failing; count it and try the next target. */
  onDialFailed(_socket: Socket, err: Error): void {
    this.#failAttempt(errorCode(err));
  }

  /** onConnectTimeout: the attempt under way took longer than the connect timeout. */
  onConnectTimeout(): void {
    this.#failAttempt('ETIMEDOUT');
  }

  /** #failAttempt: `tls`, the upstream wrapper's handshake failed (TLS origination). */
  #failAttempt(code: string, tls = false): void {
    const context = this.#context;
    this.#lastFailedTls = tls;
    this.abandon();
    if (context.closed) return;
    context.cancelTimer();
    const address = context.target?.address ?? '?';
    context.host.stats.countConnectFailure(code, address);
    this.#failures ??= [];
    this.#failures.push({ upstream: address, code });
    // Passive health: the pool tells its TargetHealth, if it has one.
    if (context.poolTarget !== null)
      (this.#routePool ?? context.host.pool).failed(context.poolTarget, code);
    context.errorCode = code;
    if (code === 'EMFILE' || code === 'ENFILE') context.host.onDescriptorShortage(code, 'connect');
    if (context.trace) context.traceEvent('upstream', `connect to ${address} failed: ${code}`);
    if (context.host.log.enabled('debug')) {
      context.host.log.debug('connect failed', { id: context.id, upstream: address, code });
    }
    this.#dialAttempt += 1;
    this.#dialNext();
  }

  #allTargetsFailed(): void {
    const context = this.#context;
    const code = context.errorCode;
    context.target = null;
    context.poolTarget = null;
    if (code === 'EMFILE' || code === 'ENFILE') {
      // Logged once per burst by the listener, not once per client.
      context.close('connect_error');
      return;
    }
    // Every target down (none tried): the target health said so once, not per client.
    if (this.failures.length === 0 && this.#plan?.skipped.some((e) => e.down && !e.drained)) {
      context.close('no_healthy_target');
      return;
    }
    // Every target drained is an operator's doing, not a failure of the targets: say so.
    const tried = this.failures.length === 0 ? undefined : formatConnectFailures(this.failures);
    const drained = this.#drainedSkipped?.join(', ');
    const what = tried === undefined ? ': every target is drained' : '';
    const { id, config, clientAddress: client } = context;
    context.host.log.warn(`no target reachable${what}`, {
      id,
      listener: config.name,
      client,
      tried,
      drained,
    });
    if (code === undefined) context.close('no_target');
    else context.close(this.#lastFailedTls ? 'tls_handshake_failed' : connectCause(code));
  }
}

// The failures of a connection none of whose attempts failed (no array per connection).
const NO_FAILURES: readonly ConnectFailure[] = Object.freeze([]);

function ignoreLateError(): void {}

/** traceTls: a handshake's facts as trace fields. */
function traceTls(tls: TlsFacts): Record<string, string> {
  const fields: Record<string, string> = { tls_version: tls.version, tls_cipher: tls.cipher };
  if (tls.clientSubject !== undefined) fields['tls_client_subject'] = tls.clientSubject;
  return fields;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
