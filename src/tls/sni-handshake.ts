/**
 * The SNI routing handshake: read the client's TLS ClientHello before dialing, pick
 * the route by its server name, and relay every byte unchanged to that route's
 * targets. The proxy never decrypts: it only peeks (consumes nothing), so the
 * ClientHello and all that follows reach the upstream as the client sent them.
 *
 * A client that sends anything but a valid ClientHello, or none within the deadline
 * (`--proxy-header-timeout`), is closed with `tls_handshake_failed` and no target is
 * dialled. Reading stops at the parser's bound (16 KiB, the early-bytes bound), where
 * the parser has always decided.
 *
 * Wiring: a listener with `routes` gets `{ handshake: sniHandshake(routePools(routes), ...) }`
 * as its ConnectionHooks (handshake.ts).
 */
import type { Target } from '../config/address.js';
import { EARLY_BYTES_LIMIT, type Handshake, type HandshakeVerdict } from '../handshake.js';
import { TargetPool } from '../upstream/target-pool.js';
import { parseClientHello } from './client-hello.js';
import { checkRoutes, type SniRoute, SniRouter } from './routes.js';

/** SniHandshakeOptions: where the targets come from and how long a client may take. */
export interface SniHandshakeOptions {
  /**
   * route gives the pool for a server name (null: the client sent none); undefined
   * means the listener's own targets. `routePools(routes).route` is the usual one.
   */
  readonly route: (serverName: string | null) => TargetPool<Target> | undefined;
  /** timeoutMs: the ClientHello must be complete within this long (0: no deadline). */
  readonly timeoutMs: number;
  /** maxBytes: the bytes read for the ClientHello at most; default EARLY_BYTES_LIMIT (16 KiB). */
  readonly maxBytes?: number;
}

/**
 * sniHandshake makes the Handshake of a listener that routes by SNI. It holds no
 * per-connection state: each step parses everything read so far (a few hundred
 * bytes, usually one read).
 */
export function sniHandshake(options: SniHandshakeOptions): Handshake {
  const maxBytes = options.maxBytes ?? EARLY_BYTES_LIMIT;
  const route = options.route;
  return {
    name: 'sni',
    timeoutMs: options.timeoutMs,
    timeoutCause: 'tls_handshake_failed',
    maxBytes,
    step(bytes: Buffer): HandshakeVerdict {
      if (bytes.length === 0) return undefined;
      const parsed = parseClientHello(bytes, maxBytes);
      if (parsed.state === 'incomplete') return undefined;
      if (parsed.state === 'invalid')
        return { allow: false, cause: 'tls_handshake_failed', reason: parsed.error };
      const pool = route(parsed.hello.serverName);
      return pool === undefined ? { allow: true, consumed: 0 } : { allow: true, consumed: 0, pool };
    },
  };
}

/**
 * RoutePools is an SniRouter whose routes each have a TargetPool of their own, kept
 * for the life of the listener config (round-robin and connection counts per route).
 */
export interface RoutePools {
  readonly router: SniRouter<SniRoute<Target> & { readonly pool: TargetPool<Target> }>;
  /** route returns the pool for a server name (the default route's for null or an unknown name). */
  route(serverName: string | null): TargetPool<Target>;
}

/**
 * routePools builds the router and one TargetPool per route, round-robin by the
 * targets' weights. Throws a RangeError with checkRoutes' one-line message for a
 * bad list (validate with checkRoutes first to report it with its place in the file).
 */
export function routePools(routes: readonly SniRoute<Target>[]): RoutePools {
  const problem = checkRoutes(routes);
  if (problem !== null) throw new RangeError(problem);
  const withPools = routes.map((route) => ({
    ...route,
    pool: new TargetPool(route.targets, {
      addressOf: (target: Target) => target.address,
      weightOf: (target: Target) => target.weight,
    }),
  }));
  const router = new SniRouter(withPools);
  return { router, route: (serverName) => router.route(serverName).pool };
}
