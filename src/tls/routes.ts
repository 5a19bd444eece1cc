/**
 * SNI routes: a listener's `routes: [{ sni: NAME, targets: [...] }, ..., { targets: [...] }]`
 * (docs/cli-contract "TLS"). A client's server name picks the route whose `sni` is
 * that name or a one-label wildcard over it (names.ts: exact names win over
 * wildcards, case does not matter); a client with no server name, or one no route
 * names, gets the last route, the default, which has no `sni`. Pure.
 */
import { checkNamePattern, NameTable, normalizeHostName } from './names.js';

/** SniRoute is one route: `sni` (absent on the default route, the last one) and its targets. */
export interface SniRoute<T> {
  readonly sni?: string | undefined;
  readonly targets: readonly T[];
}

/** RouteProblem is what is wrong with a routes list: where (`[1, 'sni']`: routes[1].sni; `[]`: the list) and what. */
export interface RouteProblem {
  readonly at: readonly (number | string)[];
  readonly what: string;
}

/**
 * routeProblem finds the first problem of a routes list (see checkRoutes), with its
 * place as a path under the list, for callers that say where in their own terms (the
 * config file's line and column).
 */
export function routeProblem(routes: readonly SniRoute<unknown>[]): RouteProblem | null {
  if (routes.length === 0)
    return { at: [], what: 'expected at least one route (the last, without sni, is the default)' };
  const seen = new Map<string, number>();
  const last = routes.length - 1;
  for (const [i, route] of routes.entries()) {
    if (route.sni === undefined) {
      if (i !== last)
        return {
          at: [i],
          what: `a route without sni is the default and must come last (route ${i + 1} of ${routes.length})`,
        };
    } else {
      if (i === last)
        return {
          at: [i],
          what: `the last route is the default and has no sni (got ${JSON.stringify(route.sni)}); add a route without sni`,
        };
      const bad = checkNamePattern(route.sni);
      if (bad !== null) return { at: [i, 'sni'], what: bad };
      const name = normalizeHostName(route.sni);
      const earlier = seen.get(name);
      if (earlier !== undefined)
        return {
          at: [i, 'sni'],
          what: `${JSON.stringify(route.sni)} is already the name of routes[${earlier}]`,
        };
      seen.set(name, i);
    }
    if (route.targets.length === 0)
      return { at: [i, 'targets'], what: 'expected at least one target' };
  }
  return null;
}

/**
 * checkRoutes validates a routes list: at least one route; every route but the last
 * has a valid `sni` (a host name or `*.` and a host name), no name twice; the last has
 * none; each has a target. Returns the first problem as `where[i].field: what`, or null.
 */
export function checkRoutes(routes: readonly SniRoute<unknown>[], where = 'routes'): string | null {
  const problem = routeProblem(routes);
  if (problem === null) return null;
  const at = problem.at.map((part) => (typeof part === 'number' ? `[${part}]` : `.${part}`));
  return `${where}${at.join('')}: ${problem.what}`;
}

/**
 * SniRouter picks a route by server name. Built once per listener config (a reload
 * builds a new one); `route` is a map lookup or two, no allocation but the lower-cased name.
 */
export class SniRouter<R extends SniRoute<unknown>> {
  readonly #table = new NameTable<R>();
  /** defaultRoute is the last route, the one without sni. */
  readonly defaultRoute: R;

  /** Throws a RangeError with checkRoutes' message when `routes` is not a valid list. */
  constructor(routes: readonly R[]) {
    const problem = checkRoutes(routes);
    if (problem !== null) throw new RangeError(problem);
    for (const route of routes) if (route.sni !== undefined) this.#table.add(route.sni, route);
    this.defaultRoute = routes[routes.length - 1] as R;
  }

  /** route returns the route for `serverName` (null: the client sent none): its own, else the default. */
  route(serverName: string | null): R {
    if (serverName === null) return this.defaultRoute;
    return this.#table.lookup(serverName) ?? this.defaultRoute;
  }
}
