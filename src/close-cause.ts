/**
 * Why a proxied connection ended. The same names are used by the access log
 * (`cause`), the stats and, later, the metrics, so they are part of the contract.
 *
 * The cause is what *started* the teardown: the first FIN, reset, timeout or
 * action. A connection whose client sent FIN first and whose upstream answered
 * with its own FIN ends with `client_fin`.
 */
export const CLOSE_CAUSES = [
  /** The client finished sending (FIN) first; both directions then finished normally. */
  'client_fin',
  /** The upstream finished sending (FIN) first; both directions then finished normally. */
  'upstream_fin',
  /** The client's socket was reset (ECONNRESET) or was gone when written to (EPIPE). */
  'client_reset',
  /** The upstream's socket was reset (ECONNRESET) or was gone when written to (EPIPE). */
  'upstream_reset',
  /** Another I/O error on the client's socket (ETIMEDOUT, EHOSTUNREACH, ...). */
  'client_error',
  /** Another I/O error on the upstream's socket. */
  'upstream_error',
  /** No bytes flowed either way for the idle timeout. */
  'idle_timeout',
  /** One side had sent FIN and no bytes flowed for the half-close timeout. */
  'half_close_timeout',
  /** The last target tried refused the connection (ECONNREFUSED). */
  'connect_refused',
  /** The last target tried did not answer within the connect timeout. */
  'connect_timeout',
  /** The last target tried failed otherwise (EHOSTUNREACH, ENETUNREACH, DNS failure, ...). */
  'connect_error',
  /** There was no target to try: every target was drained (taken out of rotation). */
  'no_target',
  /** There was no target to try: every target was down by health checks (or drained). */
  'no_healthy_target',
  /** The listener was at --max-connections: the client was accepted and closed at once. */
  'max_connections',
  /** The proxy shut down (or the listener was removed) before the connection finished. */
  'shutdown',
  /** An operator closed the connection (admin API: DELETE /api/connections/{id}). */
  'admin_kill',
  /** A handshake refused the client (access control); no upstream was dialled. */
  'denied',
  /** A per-address limit refused the client (open connections or new connections per period); no upstream was dialled. */
  'rate_limited',
  /** The client's PROXY protocol header was malformed or missing. */
  'bad_proxy_header',
  /** No complete PROXY protocol header arrived in time. */
  'proxy_header_timeout',
  /** The client's (or the upstream's) TLS handshake failed, or no valid ClientHello arrived in time. */
  'tls_handshake_failed',
  /** A stage between the sockets (a fault injected on purpose, stage.ts) ended the connection. */
  'toxic',
] as const;

/** CloseCause is one of CLOSE_CAUSES. */
export type CloseCause = (typeof CLOSE_CAUSES)[number];

// A failure of one side's socket is passed on to the other as a reset (RST), so the
// peer learns that the stream broke instead of seeing a clean end. Everything else
// (timeouts, limits, shutdown, failed connects) closes the client with a FIN.
/** PASSED_ON_AS_RESET: causes whose teardown resets (RST) the other side. */
export const PASSED_ON_AS_RESET: ReadonlySet<CloseCause> = new Set([
  'client_reset',
  'upstream_reset',
  'client_error',
  'upstream_error',
]);

/** isResetCode: the error code of a socket reset by its peer (or gone when written to). */
export function isResetCode(code: string): boolean {
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** connectCause is the close cause of a connection whose last connect attempt failed with `code`. */
export function connectCause(code: string): CloseCause {
  // The same cases as upstream/dial.ts dialCaseOf: refused, timeout, anything else.
  if (code === 'ECONNREFUSED') return 'connect_refused';
  if (code === 'ETIMEDOUT') return 'connect_timeout';
  return 'connect_error';
}
