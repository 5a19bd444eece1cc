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
 * Wiring: a listener with `routes` (src/listener.ts) keeps a RoutePools across reloads
 * and gets `{ handshake: sniHandshake({ route: pools.route, timeoutMs }) }` as its
 * ConnectionHooks (handshake.ts), the timeout being its `--proxy-header-timeout`.
 */
import type { Target } from '../config/address.js';
import { EARLY_BYTES_LIMIT, type Handshake, type HandshakeVerdict } from '../handshake.js';
import { TargetPool } from '../upstream/target-pool.js';
import { parseClientHello } from './client-hello.js';
import { normalizeHostName } from './names.js';
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
      const serverName = parsed.hello.serverName;
      const pool = route(serverName);
      // The name goes to the access record and /api/connections (`sni`), when there is one.
      const sni = serverName === null ? {} : { sni: serverName };
      return pool === undefined
        ? { allow: true, consumed: 0, ...sni }
        : { allow: true, consumed: 0, pool, ...sni };
    },
  };
}

/** PooledRoute is a route with the TargetPool its connections are balanced over. */
export type PooledRoute = SniRoute<Target> & { readonly pool: TargetPool<Target> };

/**
 * RoutePools is an SniRouter whose routes each have a TargetPool of their own, kept
 * for the life of the listener (round-robin, target states and connection counts per
 * route; a reload that keeps a route keeps its pool: routePools' `previous`).
 */
export interface RoutePools {
  readonly router: SniRouter<PooledRoute>;
  /** routes are the routes in configured order, the default last. */
  readonly routes: readonly PooledRoute[];
  /** route returns the pool for a server name (the default route's for null or an unknown name). */
  route(serverName: string | null): TargetPool<Target>;
}

/** RoutePoolsOptions: pools to keep from the listener's previous routes, and the default route's own. */
export interface RoutePoolsOptions {
  /**
   * previous: the pools of the routes before a reload. A route whose `sni` (any case)
   * was there keeps its pool, updated to its new targets (a target that stays keeps
   * its state and open connections); a new route gets a new pool.
   */
  readonly previous?: RoutePools | null;
  /** defaultPool serves the default route (a listener's own pool); default: a new one. */
  readonly defaultPool?: TargetPool<Target>;
}

/**
 * routePools builds the router and one TargetPool per route, round-robin by the
 * targets' weights. Throws a RangeError with checkRoutes' one-line message for a
 * bad list (validate with checkRoutes first to report it with its place in the file).
 */
export function routePools(
  routes: readonly SniRoute<Target>[],
  { previous = null, defaultPool }: RoutePoolsOptions = {},
): RoutePools {
  const problem = checkRoutes(routes);
  if (problem !== null) throw new RangeError(problem);
  const kept = new Map<string, TargetPool<Target>>();
  for (const route of previous?.routes ?? []) {
    if (route.sni !== undefined) kept.set(normalizeHostName(route.sni), route.pool);
  }
  const withPools = routes.map((route): PooledRoute => {
    const own = route.sni === undefined ? defaultPool : kept.get(normalizeHostName(route.sni));
    const pool = own ?? newPool(route.targets);
    if (own !== undefined && own !== defaultPool && !sameTargets(own, route.targets))
      pool.update(route.targets);
    return { ...route, pool };
  });
  const router = new SniRouter(withPools);
  return { router, routes: withPools, route: (serverName) => router.route(serverName).pool };
}

/** sameTargets: the pool holds these targets, in this order, with these weights (so round-robin goes on). */
function sameTargets(pool: TargetPool<Target>, targets: readonly Target[]): boolean {
  const entries = pool.entries;
  return (
    entries.length === targets.length &&
    targets.every(
      (t, i) => entries[i]?.address === t.address && entries[i]?.target.weight === t.weight,
    )
  );
}

function newPool(targets: readonly Target[]): TargetPool<Target> {
  return new TargetPool(targets, {
    addressOf: (target: Target) => target.address,
    weightOf: (target: Target) => target.weight,
  });
}
