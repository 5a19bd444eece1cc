/**
 * The kind of a listener's `routes` (routing by TLS server name without decrypting,
 * docs/config.md): `[{ sni: NAME, targets: [...] }, ..., { targets: [...] }]`, the
 * last route, without `sni`, being the default. Its schema, the checks of a config
 * file's and a library caller's value (every message with its place in the list:
 * `[1].sni`, `[0].targets[2]`), and its lines in `l4proxy check`. The rules of the list
 * itself (names, wildcards, order) are tls/routes.ts's. Pure.
 */
import { routeProblem, type SniRoute } from '../tls/routes.js';
import { AddressError, parseAddress, type Target, type TargetOption, targetOf } from './address.js';
import { type JsonSchema, OptionValueError, type StructuredKind, target } from './option-kinds.js';

/** RouteOption is a route as written: `sni` (none on the default route, the last) and its targets. */
export interface RouteOption {
  readonly sni?: string;
  readonly targets: readonly TargetOption[];
}

/** Route is a checked route: its `sni` as written (undefined: the default route) and its targets. */
export type Route = SniRoute<Target>;

type Path = readonly (string | number)[];

const ROUTE_SCHEMA: JsonSchema = {
  description:
    'A route: clients whose TLS server name (SNI) is sni go to its targets. The last route has no sni: it is the default.',
  type: 'object',
  additionalProperties: false,
  required: ['targets'],
  properties: {
    sni: {
      description:
        'A host name (any case) or *.domain, which matches exactly one label (a.example.com, not a.b.example.com). An exact name wins over a wildcard.',
      type: 'string',
      minLength: 1,
    },
    targets: { type: 'array', minItems: 1, items: target.schema },
  },
};

/** routesKind: a listener's `routes`, config only (see the module comment). */
export const routesKind: StructuredKind<RouteOption[], Route[]> = {
  metavar: 'ROUTES',
  flagType: 'string',
  schema: { type: 'array', minItems: 1, items: { $ref: '#/definitions/route' } },
  definitions: { ...target.definitions, route: ROUTE_SCHEMA },
  fromFile(value) {
    routesKind.check(value);
    return value as RouteOption[];
  },
  check(value) {
    if (!Array.isArray(value)) {
      throw new OptionValueError(
        'expected a list of routes like [{ sni: NAME, targets: [...] }, { targets: [...] }]',
      );
    }
    const routes = value.map((route: unknown, i) => checkRoute(route, i));
    const problem = routeProblem(routes);
    if (problem !== null) throw new OptionValueError(problem.what, problem.at);
    return routes;
  },
  show: (routes) =>
    routes.map(
      (route) =>
        `${route.sni === undefined ? 'default' : `sni ${route.sni}`} -> ${route.targets.map(showTarget).join(', ')}`,
    ),
};

/** showTarget writes a target as `l4proxy check` does: `a:1`, `a:1 (weight 2)`, `a:1 (weight 2, backup)`. */
export function showTarget(t: Target): string {
  const notes = [
    ...(t.weight === 1 ? [] : [`weight ${t.weight}`]),
    ...(t.backup ? ['backup'] : []),
  ];
  return notes.length === 0 ? t.address : `${t.address} (${notes.join(', ')})`;
}

function checkRoute(value: unknown, i: number): Route {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new OptionValueError('expected a route like { sni: NAME, targets: [...] }', [i]);
  const route = value as { readonly [key: string]: unknown };
  for (const key of Object.keys(route)) {
    if (key !== 'sni' && key !== 'targets')
      throw new OptionValueError(`unknown field ${key} (a route has sni and targets)`, [i]);
  }
  const sni = route['sni'];
  if (sni !== undefined && (typeof sni !== 'string' || sni === ''))
    throw new OptionValueError(`expected a host name, got ${String(sni)}`, [i, 'sni']);
  const targets = route['targets'];
  if (!Array.isArray(targets))
    throw new OptionValueError('expected a list of targets HOST:PORT', [i, 'targets']);
  const checked = targets.map((t: unknown, j) => checkTarget(t, [i, 'targets', j]));
  // A target twice in one route would be counted as one (config.ts says why).
  const seen = new Map<string, number>();
  for (const [j, t] of checked.entries()) {
    const first = seen.get(t.address);
    if (first !== undefined)
      throw new OptionValueError(`duplicate target ${t.address} (already targets[${first}])`, [
        i,
        'targets',
        j,
      ]);
    seen.set(t.address, j);
  }
  return sni === undefined ? { targets: checked } : { sni, targets: checked };
}

function checkTarget(value: unknown, path: Path): Target {
  let text = value;
  let weight: unknown = 1;
  let at = path;
  if (typeof value === 'object' && value !== null && 'address' in value) {
    text = value.address;
    at = [...path, 'address'];
    if ('weight' in value && value.weight !== undefined) weight = value.weight;
  }
  if (typeof text !== 'string')
    throw new OptionValueError(`expected HOST:PORT, got ${String(text)}`, at);
  if (typeof weight !== 'number' || !Number.isSafeInteger(weight) || weight < 1)
    throw new OptionValueError(`expected a whole number >= 1, got ${String(weight)}`, [
      ...path,
      'weight',
    ]);
  try {
    return targetOf(parseAddress(text), { weight });
  } catch (err) {
    if (err instanceof AddressError) throw new OptionValueError(err.message, at);
    throw err;
  }
}
