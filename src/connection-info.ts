/**
 * How a proxied connection is described to the outside: the library's
 * `connections()` and events, the access record, the admin API and the SIGUSR1
 * snapshot. ProxyContext.info() fills it in; nothing here holds a reference to a
 * live connection.
 */
import type { CloseCause } from './close-cause.js';
import type { Side } from './endpoint.js';
import type { TlsFacts } from './handshake.js';

/** ContextState is where a connection is in its life. */
export type ContextState = 'handshake' | 'connecting' | 'relaying' | 'half_closed' | 'closed';

/** ConnectFailure is one failed connect attempt: the target's `host:port` and the error code. */
export interface ConnectFailure {
  upstream: string;
  code: string;
}

/** ConnectionInfo describes a connection, open or closed (the library's and the log's view). */
export interface ConnectionInfo {
  /** id is unique within the process. */
  id: string;
  listener: string;
  state: ContextState;
  /** client is the client's `host:port`. */
  client: string;
  /** upstream is the target's `host:port`, or null before one was reached. */
  upstream: string | null;
  /** sni is the TLS server name the client sent: the one that chose the route (`routes`) or the certificate (termination). */
  sni?: string | undefined;
  /** clientTls: the client's TLS handshake (termination); undefined for a plain client. */
  clientTls?: TlsFacts | undefined;
  /** upstreamTls: the upstream's TLS handshake (origination, `--target-tls`); undefined for a plain upstream. */
  upstreamTls?: TlsFacts | undefined;
  /**
   * bytesToUpstream: bytes delivered to the upstream, i.e. accepted by the kernel for
   * the upstream socket (docs/observability.md says exactly what that means).
   */
  bytesToUpstream: number;
  /** bytesToClient: bytes delivered to the client (accepted by the kernel for its socket). */
  bytesToClient: number;
  /** bytesFromClient: bytes read from the client; more than bytesToUpstream while some wait in the proxy, or if they never got through. */
  bytesFromClient: number;
  /** bytesFromUpstream: bytes read from the upstream. */
  bytesFromUpstream: number;
  /** attempts: connect attempts made, one per target dialed (drained targets are skipped, not tried). */
  attempts: number;
  /** connectFailures: each failed attempt, in order: the target and why (ECONNREFUSED, ETIMEDOUT, ...). */
  connectFailures: ConnectFailure[];
  /** buffered: bytes the proxy holds in user space for this connection now (both sockets, both ways). */
  buffered: number;
  /** connectMs: from accept to upstream connected; undefined if it never connected. */
  connectMs: number | undefined;
  /** ageMs: from accept until now, or until close for a closed connection. */
  ageMs: number;
  /** cause: why it closed; null while open. */
  cause: CloseCause | null;
  /** toxic: the name of the toxic that ended it (cause `toxic`, fault injection); absent otherwise. */
  toxic?: string;
  /** firstClose: the side that finished sending (or failed) first, if any. */
  firstClose: Side | null;
  /** error: the error code that ended it (ECONNRESET, ECONNREFUSED, ...), if any. */
  error: string | undefined;
}

/**
 * connectionRecord spells a live connection the way the admin API and the SIGUSR1
 * snapshot do (snake_case, whole milliseconds).
 */
export function connectionRecord(c: ConnectionInfo) {
  return {
    id: c.id,
    listener: c.listener,
    state: c.state,
    client: c.client,
    upstream: c.upstream,
    sni: c.sni,
    ...tlsRecord(c),
    bytes_to_upstream: c.bytesToUpstream,
    bytes_to_client: c.bytesToClient,
    bytes_from_client: c.bytesFromClient,
    bytes_from_upstream: c.bytesFromUpstream,
    attempts: c.attempts,
    connect_failures:
      c.connectFailures.length === 0 ? undefined : formatConnectFailures(c.connectFailures),
    connect_ms: c.connectMs === undefined ? undefined : Math.round(c.connectMs),
    age_ms: Math.round(c.ageMs),
  };
}

/**
 * tlsRecord spells the TLS facts of a connection (both sides) as the access record, the
 * admin API and the snapshot do, to be spread into the record; undefined (nothing to
 * spread, no object made) for a plain connection.
 */
export function tlsRecord(c: ConnectionInfo) {
  const client = c.clientTls;
  const upstream = c.upstreamTls;
  if (client === undefined && upstream === undefined) return undefined;
  return {
    tls_version: client?.version,
    tls_cipher: client?.cipher,
    tls_client_subject: client?.clientSubject,
    upstream_tls_version: upstream?.version,
    upstream_tls_cipher: upstream?.cipher,
  };
}

/** formatConnectFailures writes failed attempts as the logs print them: `127.0.0.1:1 ECONNREFUSED, ...`. */
export function formatConnectFailures(failures: readonly ConnectFailure[]): string {
  return failures.map((f) => `${f.upstream} ${f.code}`).join(', ');
}
