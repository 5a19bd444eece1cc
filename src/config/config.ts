/**
 * The validated configuration. Everything that starts a proxy (the CLI's flags, a
 * library caller's options) is checked here once and turned into one frozen `Config`;
 * the code behind it trusts that value and checks nothing again.
 */
import { ProxyError } from '../errors.js';
import { type ConnectionHooks, hooksOf } from '../handshake.js';
import type { LoggerOptions } from '../log.js';
import { tlsHooks } from '../tls/listener-tls.js';
import {
  type Address,
  AddressError,
  parseAddress,
  type Target,
  type TargetOption,
  targetOf,
} from './address.js';
import { OptionValueError } from './option-kinds.js';
import {
  type ListenerSettings,
  SETTING_NAMES,
  type SettingsInput,
  setting,
  settingDefaults,
} from './options.js';
import { type Route, type RouteOption, routesKind } from './routes-kind.js';
import { type Toxic, type ToxicDefinition, toxicsKind } from './toxics-kind.js';

/**
 * DEFAULTS are the listener settings' defaults (from the option table, config/options.ts):
 * durations in milliseconds, `0` for a timeout means "never", `Infinity` no limit.
 */
export const DEFAULTS: ListenerSettings = Object.freeze(settingDefaults());

export type { Target, TargetOption } from './address.js';
export type { Route, RouteOption } from './routes-kind.js';

/**
 * ListenerConfig is one listener with its targets and settings, all validated. The
 * settings (`idleTimeoutMs`, `maxConnections`, ...) are those of the option table;
 * `maxConnections` is `Infinity` when there is no limit.
 */
export interface ListenerConfig extends ListenerSettings {
  /** name identifies the listener in logs; defaults to the listen string as given. */
  readonly name: string;
  readonly listen: Address;
  /** targets: the listener's targets; with `routes`, its default route's (the last). */
  readonly targets: readonly Target[];
  /** routes: route by TLS server name (SNI) without decrypting; absent on a listener without. */
  readonly routes?: readonly Route[];
  /** toxics: the file's (or library caller's) toxics, checked; absent on a listener without. */
  readonly toxics?: readonly Toxic[];
  /** hooks: the listener's handshake and preface (internal, experimental: handshake.ts). */
  readonly hooks?: ConnectionHooks;
}

/** Config is what a running proxy is built from. */
export interface Config {
  readonly listeners: readonly ListenerConfig[];
}

/**
 * ListenerOptions describe one listener as a library caller writes it, with any of the
 * settings of the option table (config/options.ts: `idleTimeoutMs`, `halfCloseTimeoutMs`,
 * `connectTimeoutMs`, `shutdownTimeoutMs`, `maxConnections`, ...), each defaulting to
 * `DEFAULTS`. Durations are milliseconds; `0` means never.
 */
export interface ListenerOptions extends SettingsInput {
  /** name for logs and stats. Default: the `listen` value as a string. */
  name?: string;
  /** listen: `'HOST:PORT'`, `'[::1]:PORT'`, `'PORT'` or a port number (all interfaces). Port 0 picks a free port. */
  listen: string | number;
  /**
   * targets: one or more `'HOST:PORT'` (or `{ address, weight }`), tried in round-robin
   * order with failover. Required, unless the listener has `routes` (then not allowed).
   */
  targets?: readonly TargetOption[];
  /**
   * routes: route by the client's TLS server name without decrypting, instead of
   * `targets`: `[{ sni: 'a.example.com', targets: [...] }, ..., { targets: [...] }]`, the
   * last route (without `sni`) being the default. `*.example.com` matches one label.
   * The ClientHello must come within `proxyHeaderTimeoutMs` (else `tls_handshake_failed`).
   */
  routes?: readonly RouteOption[];
  /** toxics: fault injection from the start, as Toxiproxy's API takes them (docs/faults.md). */
  toxics?: readonly ToxicDefinition[];
}

/** DefaultOverrides are the settings given as flags, which override a config file's `defaults`. */
export type DefaultOverrides = SettingsInput;

/** stripUndefined drops the keys whose value is undefined (an option not given). */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function invalid(where: string, what: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', `${where}: ${what}`);
}

/** The keys a ListenerOptions may have; anything else is a typo to report, not to ignore. */
const LISTENER_KEYS: readonly string[] = [
  'name',
  'listen',
  'targets',
  'routes',
  'toxics',
  ...SETTING_NAMES,
];

/**
 * checkKeys refuses a key of `options` that is not in `known`. TypeScript catches
 * these at compile time; a JavaScript caller's `target:` for `targets:` would
 * otherwise surface as a confusing "targets: expected at least one target".
 * `where` is the prefix of every message of that object ('' at the top level).
 */
function checkKeys(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const close = closestKey(key, known);
    const what = `unknown option ${key}${close === undefined ? '' : ` (did you mean ${close}?)`}`;
    // 'listeners[1].' becomes 'listeners[1]: '; 'proxy.json: ' stays as it is.
    const at = where.endsWith('.') ? `${where.slice(0, -1)}: ` : where;
    throw new ProxyError('PROXY_ERR_INVALID_CONFIG', `${at}${what}`);
  }
}

/** closestKey is the known key nearest to a misspelt one (2 edits at most, case aside), if any. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** editDistance is the Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** resolveSettings checks each setting a library caller gave; the others get their default. */
function resolveSettings(options: SettingsInput, where: string): ListenerSettings {
  const settings: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = setting(name);
    try {
      settings[name] = spec.kind.check(options[name], spec.default);
    } catch (err) {
      if (err instanceof OptionValueError) {
        const item = err.index === undefined ? '' : `[${err.index}]`;
        throw invalid(`${where}${name}${item}`, err.message);
      }
      throw err;
    }
  }
  return settings as ListenerSettings;
}

function listenOption(value: unknown, where: string): Address {
  if (typeof value === 'number') value = String(value);
  if (typeof value !== 'string') throw invalid(where, `expected an address like 127.0.0.1:8080`);
  try {
    return parseAddress(value, { allowBarePort: true, allowPortZero: true });
  } catch (err) {
    if (err instanceof AddressError) throw invalid(where, err.message);
    throw err;
  }
}

function targetOption(value: unknown, where: string): Target {
  let text = value;
  let weight: unknown = 1;
  let backup: unknown = false;
  if (typeof value === 'object' && value !== null && 'address' in value) {
    text = value.address;
    if ('weight' in value && value.weight !== undefined) weight = value.weight;
    if ('backup' in value && value.backup !== undefined) backup = value.backup;
  }
  if (typeof text !== 'string') throw invalid(where, `expected HOST:PORT, got ${String(text)}`);
  if (typeof weight !== 'number' || !Number.isSafeInteger(weight) || weight < 1) {
    throw invalid(`${where}.weight`, `expected a whole number >= 1, got ${String(weight)}`);
  }
  if (typeof backup !== 'boolean')
    throw invalid(`${where}.backup`, `expected true or false, got ${String(backup)}`);
  // A target that is not a backup has no `backup` key, as before backups existed.
  const flags = backup ? { weight, backup } : { weight };
  try {
    return targetOf(parseAddress(text), flags);
  } catch (err) {
    if (err instanceof AddressError) throw invalid(where, err.message);
    throw err;
  }
}

/** resolveListener validates one listener's options; `where` prefixes every message. */
export function resolveListener(options: ListenerOptions, where: string): ListenerConfig {
  checkKeys(options, LISTENER_KEYS, where);
  const listen = listenOption(options.listen, `${where}listen`);
  const routes = options.routes === undefined ? undefined : routesOption(options, where);
  let targets: readonly Target[];
  if (routes !== undefined) {
    targets = routes[routes.length - 1]?.targets ?? [];
  } else {
    if (!Array.isArray(options.targets) || options.targets.length === 0) {
      throw invalid(`${where}targets`, 'expected at least one target HOST:PORT');
    }
    targets = options.targets.map((t, i) => targetOption(t, `${where}targets[${i}]`));
    checkDuplicateTargets(targets, where);
  }
  const name = options.name ?? String(options.listen);
  if (typeof name !== 'string' || name === '')
    throw invalid(`${where}name`, 'expected a non-empty string');
  const settings = resolveSettings(options, where);
  // TLS files are read now, so a bad one refuses the start or the reload (all or nothing).
  const tls = tlsHooks(settings, where);
  const given = hooksOf(options);
  const hooks = tls === undefined ? given : Object.freeze({ ...tls, ...given });
  return Object.freeze({
    name,
    listen: Object.freeze(listen),
    targets: Object.freeze(targets),
    ...(routes === undefined ? {} : { routes }),
    ...(options.toxics === undefined ? {} : { toxics: toxicsOption(options.toxics, where) }),
    ...settings,
    ...withHooks(hooks),
  });
}

/** routesOption checks a listener's `routes` (routes-kind.ts); it then has no `targets` of its own. */
function routesOption(options: ListenerOptions, where: string): readonly Route[] {
  if (options.targets !== undefined) {
    throw invalid(
      `${where}targets`,
      'a listener with routes has no targets of its own (the last route, without sni, is the default)',
    );
  }
  try {
    return Object.freeze(
      routesKind.check(options.routes).map((route) => Object.freeze({ ...route })),
    );
  } catch (err) {
    if (err instanceof OptionValueError)
      throw invalid(`${where}routes${formatPath(err.path)}`, err.message);
    throw err;
  }
}

/** toxicsOption checks a listener's `toxics` (toxics-kind.ts). */
function toxicsOption(toxics: unknown, where: string): readonly Toxic[] {
  try {
    return Object.freeze(toxicsKind.check(toxics));
  } catch (err) {
    if (err instanceof OptionValueError)
      throw invalid(`${where}toxics${formatPath(err.path)}`, err.message);
    throw err;
  }
}

/** formatPath writes a path inside a value (`[1, 'sni']`) as `[1].sni`. */
function formatPath(path: readonly (string | number)[]): string {
  return path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${part}`)).join('');
}

// A listener without hooks has no `hooks` key at all, as before they existed.
function withHooks(hooks: ConnectionHooks | undefined): { hooks?: ConnectionHooks } {
  return hooks === undefined ? {} : { hooks };
}

/**
 * checkDuplicateTargets refuses a target listed twice in one listener (as written
 * after normalising, so `[::1]:80` and `[0:0::1]:80` are not told apart, but
 * `localhost:80` and `127.0.0.1:80` are different targets). Targets are known by their
 * address everywhere (stats, drain, the admin API, metrics): two with one address
 * would be counted, drained and shown as one.
 */
function checkDuplicateTargets(targets: readonly Target[], where: string): void {
  const seen = new Map<string, number>();
  for (const [i, target] of targets.entries()) {
    const first = seen.get(target.address);
    if (first !== undefined) {
      throw invalid(
        `${where}targets[${i}]`,
        `duplicate target ${target.address} (already targets[${first}])`,
      );
    }
    seen.set(target.address, i);
  }
}

/**
 * resolveConfig validates a list of listeners; names must be unique. An empty list is
 * refused unless `allowNone` (a proxy whose listeners are added at run time).
 */
export function resolveConfig(listeners: readonly ListenerOptions[], allowNone = false): Config {
  if (listeners.length === 0 && !allowNone)
    throw invalid('listeners', 'expected at least one listener');
  const resolved = listeners.map((l, i) =>
    resolveListener(l, listeners.length === 1 ? '' : `listeners[${i}].`),
  );
  const seen = new Set<string>();
  for (const [i, l] of resolved.entries()) {
    if (seen.has(l.name))
      throw invalid(`listeners[${i}].name`, `duplicate listener name ${l.name}`);
    seen.add(l.name);
  }
  return Object.freeze({ listeners: Object.freeze(resolved) });
}

/**
 * ProxyOptions: one listener (`listen` and `targets` plus its options), or several
 * under `listeners`. `log` defaults to `{ level: 'silent' }`: an embedded proxy is quiet
 * unless asked; pass `{ level: 'info' }` for the access log on stderr.
 */
export type ProxyOptions = (ListenerOptions | { listeners: readonly ListenerOptions[] }) & {
  log?: LoggerOptions;
};

/** resolveOptions validates library options into a Config (the `log` part is not part of it). */
export function resolveOptions(options: ProxyOptions): Config {
  if ('listeners' in options) {
    checkKeys(options, ['listeners', 'log'], '');
    // `listeners: []` is a proxy with none yet: the admin API adds them (createListener).
    return resolveConfig(options.listeners, Array.isArray(options.listeners));
  }
  const { log: _log, ...listener } = options;
  checkKeys(listener, LISTENER_KEYS, '');
  return resolveConfig([listener]);
}
