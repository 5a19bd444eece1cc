/**
 * The handshake phase and the preface: the two seams in the life of a connection
 * where a listener may do more than relay bytes (docs/design.md, "Life of a
 * connection").
 *
 * - A Handshake runs on the client side BEFORE any upstream is dialled: it reads what
 *   the client sent so far (a PROXY protocol header, a TLS ClientHello) or only looks
 *   at the client's address (access control), and answers with a verdict: more bytes
 *   needed, allow (how many bytes it consumed; optionally the real client address and
 *   the targets to use), or refuse (with a close cause). Bytes it did not consume are
 *   relayed to the upstream first, in order, before anything read later; a reader
 *   that only peeks (SNI routing) consumes nothing. It has its own deadline, kept by
 *   the context's one Timer in the listener's TimerSet.
 * - A Preface is written to the upstream once it is connected, before any relayed
 *   byte (the PROXY header of `--send-proxy`). It is not counted in bytesToUpstream,
 *   which counts relayed client bytes only.
 *
 * Both are internal for now: a listener gets them through ListenerConfig.hooks, which
 * the library fills from the `kConnectionHooks` property of a listener's options (a
 * symbol, so it is no public option and no CLI flag). The capabilities of the
 * contract ("Next capabilities") will set them from their flags.
 *
 * A plain listener (no hooks) pays one property check per connection, nothing more.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { CloseCause } from './close-cause.js';
import type { Target } from './config/address.js';
import type { StageControl } from './stage.js';
import type { TargetPool } from './upstream/target-pool.js';

/** HandshakeClient is what a handshake may know of the client before it is allowed. */
export interface HandshakeClient {
  /** address is the client as logs print it (`host:port`, `unix`, `unknown`). */
  readonly address: string;
  /**
   * socket is the client's socket, for its addresses (remote and local) only: never
   * read or write it, except to wrap it (HandshakeAllow.socket).
   */
  readonly socket: Socket;
}

/** TlsFacts: what a TLS handshake settled; only connections that used TLS have them (tls/facts.ts reads them). */
export interface TlsFacts {
  /** version: the protocol, as Node names it (`TLSv1.3`, `TLSv1.2`). */
  readonly version: string;
  /** cipher: the cipher suite's OpenSSL name (`TLS_AES_256_GCM_SHA384`). */
  readonly cipher: string;
  /** clientSubject: the client certificate's subject on one line (`CN=client one`), under mutual TLS. */
  readonly clientSubject?: string;
}

/** HandshakeAllow lets the connection go on to dial its upstream. */
export interface HandshakeAllow {
  readonly allow: true;
  /** consumed: how many of the bytes read so far the handshake used up; the rest are relayed. */
  readonly consumed: number;
  /** client replaces the client's address for logs, the admin API and balancing (the PROXY header's source). */
  readonly client?: string;
  /** clientIp is `client`'s IP address without the port, for balancing (source hashing). */
  readonly clientIp?: string;
  /**
   * destination is the address the real client connected to, as logs print it (the
   * PROXY header's destination), for the `--send-proxy` header; default: the local end
   * of the client's socket.
   */
  readonly destination?: string;
  /** pool replaces the listener's targets for this connection (a route chosen by SNI). */
  readonly pool?: TargetPool<Target>;
  /**
   * socket replaces the client's socket from now on: a Duplex standing on it (TLS
   * termination: a tls.TLSSocket wrapping `client.socket`), which the context then reads
   * (through 'data' events), writes and owns (destroys at close; a reset resets the
   * socket under it). The wrapper must take the socket's native handle over, as
   * tls.TLSSocket does: the context no longer reads the socket itself. To wrap after
   * bytes were read, unshift them onto the paused socket before wrapping and count them
   * in `consumed` (tls.TLSSocket reads what the socket has buffered first).
   */
  readonly socket?: Duplex;
  /** sni is the server name the client asked for (its TLS ClientHello), for the access record. */
  readonly sni?: string;
  /** tls: the facts of the client's TLS handshake (termination), for the access record. */
  readonly tls?: TlsFacts;
}

/** HandshakeRefuse closes the client at once, before any upstream is dialled. */
export interface HandshakeRefuse {
  readonly allow: false;
  /** cause: `denied`, `bad_proxy_header`, `tls_handshake_failed`, ... */
  readonly cause: CloseCause;
  /** reason is logged (debug) and traced; it is not part of the access record. */
  readonly reason?: string;
  /** code: the error code behind the refusal (a TLS error's), the access record's `error`. */
  readonly code?: string;
  /** client: the real client's address when the handshake learned it before refusing (a PROXY header's source). */
  readonly client?: string;
}

/**
 * HandshakeVerdict is a handshake's answer; undefined means "read more". A promise is
 * a verdict still being reached (a TLS handshake): no further step is called, the
 * deadline still applies, and a rejection closes the client with `timeoutCause`.
 */
export type HandshakeVerdict =
  | HandshakeAllow
  | HandshakeRefuse
  | Promise<HandshakeAllow | HandshakeRefuse>
  | undefined;

/** Handshake is one listener's handshake step. It is shared by its connections: keep no per-connection state in it. */
export interface Handshake {
  /** name appears in the trace. */
  readonly name: string;
  /** timeoutMs: the client must get a verdict within this long (0: no deadline). */
  readonly timeoutMs: number;
  /** timeoutCause closes a client whose deadline passed (`proxy_header_timeout`, `tls_handshake_failed`). */
  readonly timeoutCause: CloseCause;
  /**
   * maxBytes bounds what is read while the handshake runs: reading pauses there (the
   * step should have refused by then; otherwise the deadline ends the connection).
   */
  readonly maxBytes: number;
  /**
   * step decides on everything read so far (`bytes`, empty on the first call, which
   * comes at accept, before any read: a decision on the address alone needs no bytes).
   * It is called again after each read until it answers.
   */
  step(bytes: Buffer, client: HandshakeClient): HandshakeVerdict;
  /**
   * next runs once this handshake has allowed the client, on the bytes it did not
   * consume, with its own deadline, bound and timeout cause (TLS termination or SNI
   * routing after the PROXY header of `--accept-proxy`). What both allowed applies;
   * where both set a field, the later one wins. Default: none.
   */
  readonly next?: Handshake;
}

/** PrefaceConnection is what a preface may know of its connection. */
export interface PrefaceConnection {
  /** clientAddress is the (real) client's address, as a handshake may have replaced it. */
  readonly clientAddress: string;
  /** destinationAddress: where the real client connected to, when a handshake said (HandshakeAllow.destination). */
  readonly destinationAddress?: string;
  readonly client: { readonly socket: Socket | null };
  readonly upstream: { readonly socket: Socket | null };
  readonly target: Target | null;
}

/** Preface gives the bytes written to a connected upstream before any relayed byte (null: none). */
export type Preface = (connection: PrefaceConnection) => Buffer | null;

/**
 * UpstreamWrapper stands a Duplex on a connected upstream socket (TLS origination:
 * `tls.connect({ socket })`). It must take the socket over at once (synchronously,
 * as tls.connect does), then resolve with the wrapper once it is ready
 * ('secureConnect'), or reject (the attempt failed: the next target is tried). The
 * connect timeout covers it. The context then reads the wrapper through 'data'
 * events, writes and owns it; the preface was written on the socket before.
 */
export type UpstreamWrapper = (socket: Socket, target: Target) => Promise<Duplex>;

/**
 * ConnectionHooks are a listener's handshake and preface, its upstream wrapper, and
 * `relaying`, called once a connection relays, with the control of its stages
 * (stage.ts: fault injection); all optional.
 */
export interface ConnectionHooks {
  readonly handshake?: Handshake;
  readonly preface?: Preface;
  readonly wrapUpstream?: UpstreamWrapper;
  /** upstreamFacts describes a ready upstream wrapper (its TLS handshake), for the access record. */
  readonly upstreamFacts?: (wrapper: Duplex) => TlsFacts | undefined;
  readonly relaying?: (connection: StageControl) => void;
}

/**
 * kConnectionHooks is the property of a listener's options (library) that carries its
 * ConnectionHooks. Experimental and internal: tests use it until the flags exist.
 */
export const kConnectionHooks: unique symbol = Symbol('l4proxy.connectionHooks');

/** hooksOf reads the ConnectionHooks of a listener's options, if any. */
export function hooksOf(options: object): ConnectionHooks | undefined {
  const hooks = (options as { [kConnectionHooks]?: ConnectionHooks })[kConnectionHooks];
  return hooks === undefined ? undefined : Object.freeze({ ...hooks });
}

/**
 * EARLY_BYTES_LIMIT bounds the client bytes held while the upstream is being
 * dialled: reading pauses there until they are written to the upstream (the same
 * bound as a socket's write high-water mark, which the relay applies afterwards).
 */
export const EARLY_BYTES_LIMIT = 16 * 1024;

/**
 * EarlyBytes holds what the client sent before its bytes could be relayed (during the
 * handshake and the connect), in order. Made only when such bytes arrive.
 */
export class EarlyBytes {
  chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** all is every byte held, as one buffer. */
  all(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** consume drops the first `n` bytes (the handshake's). */
  consume(n: number): void {
    if (n <= 0) return;
    const rest = this.all().subarray(Math.min(n, this.length));
    this.chunks = rest.length === 0 ? [] : [rest];
    this.length = rest.length;
  }
}
