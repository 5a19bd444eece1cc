/**
 * How a proxied connection is described to the outside: the library's
 * `connections()` and events, the access record, the admin API and the SIGUSR1
 * snapshot. ProxyContext.info() fills it in; nothing here holds a reference to a
 * live connection.
 */
import type { CloseCause } from './close-cause.js';
import type { Side } from './endpoint.js';

/** ContextState is where a connection is in its life. */
export type ContextState = 'connecting' | 'relaying' | 'half_closed' | 'closed';

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
  bytesToUpstream: number;
  bytesToClient: number;
  /** buffered: bytes the proxy holds in user space for this connection now (both sockets, both ways). */
  buffered: number;
  /** connectMs: from accept to upstream connected; undefined if it never connected. */
  connectMs: number | undefined;
  /** ageMs: from accept until now, or until close for a closed connection. */
  ageMs: number;
  /** cause: why it closed; null while open. */
  cause: CloseCause | null;
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
    bytes_to_upstream: c.bytesToUpstream,
    bytes_to_client: c.bytesToClient,
    connect_ms: c.connectMs === undefined ? undefined : Math.round(c.connectMs),
    age_ms: Math.round(c.ageMs),
  };
}
