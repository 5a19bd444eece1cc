/**
 * Errors that `l4proxy` creates itself. Each carries a stable `code` with the
 * `PROXY_ERR_` prefix; match on `code`, never on `instanceof` or on the message.
 * Node's own errno codes (`ECONNRESET`, `EPIPE`, ...) pass through unchanged on the
 * errors Node creates.
 */

/** ProxyErrorCode lists every code `l4proxy` may put on an error it creates. */
export type ProxyErrorCode =
  /** A flag, option or config value is malformed or missing. The CLI exits 2. */
  | 'PROXY_ERR_INVALID_CONFIG'
  /** A listener could not bind its address (in use, permission, not available). The CLI exits 1. */
  | 'PROXY_ERR_LISTEN'
  /** The proxy was already closed or is closing. */
  | 'PROXY_ERR_CLOSED'
  /** address() was asked of a proxy that is not listening on TCP (before listen(), after close(), or a Unix socket). */
  | 'PROXY_ERR_NOT_LISTENING'
  /** A worker process (`--workers N`) did not answer the primary in time, or is gone. */
  | 'PROXY_ERR_WORKER';

/** ProxyError is the one error class of the library; `cause` holds the error it wraps, if any. */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
  }
}

/** errorCode returns the `code` of an error Node or we created, or `'UNKNOWN'`. */
export function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return 'UNKNOWN';
}

const LISTEN_ERRORS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address in use',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this host',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  // A Unix socket path taken by something that is not a socket (unix-socket.ts).
  ENOTSOCK: 'exists and is not a socket',
};

/** listenErrorText says why a bind failed, in words (`address in use`), for any listener. */
export function listenErrorText(err: unknown): string {
  return LISTEN_ERRORS[errorCode(err)] ?? (err instanceof Error ? err.message : String(err));
}
