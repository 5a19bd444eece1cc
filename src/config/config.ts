/**
 * The validated configuration. Everything that starts a proxy (the CLI's flags, a
 * library caller's options) is checked here once and turned into one frozen `Config`;
 * the code behind it trusts that value and checks nothing again.
 */
import { ProxyError } from '../errors.js';
import type { LoggerOptions } from '../log.js';
import { type Address, AddressError, formatParsed, parseAddress } from './address.js';

/** The defaults, in milliseconds. `0` for a timeout means "never". */
export const DEFAULTS = Object.freeze({
  idleTimeoutMs: 0,
  halfCloseTimeoutMs: 0,
  connectTimeoutMs: 10_000,
  shutdownTimeoutMs: 30_000,
  maxConnections: Number.POSITIVE_INFINITY,
});

/**
 * Target is one upstream, resolved from `HOST:PORT` (then `path` is undefined) or
 * `unix:/path` (then `host` and `port` are undefined).
 */
export type Target = {
  /** address is the target as logs and metrics print it: `host:port`, `[::1]:80`, `unix:/path`. */
  readonly address: string;
  /** weight is the target's relative share of new connections (default 1). */
  readonly weight: number;
} & (
  | { readonly host: string; readonly port: number; readonly path?: undefined }
  | { readonly path: string; readonly host?: undefined; readonly port?: undefined }
);

/** TargetOption is a target as written: `'HOST:PORT'`, or `{ address: 'HOST:PORT', weight }`. */
export type TargetOption = string | { readonly address: string; readonly weight?: number };

/** ListenerConfig is one listener with its targets and connection options, all validated. */
export interface ListenerConfig {
  /** name identifies the listener in logs; defaults to the listen string as given. */
  readonly name: string;
  readonly listen: Address;
  readonly targets: readonly Target[];
  readonly idleTimeoutMs: number;
  readonly halfCloseTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  /** maxConnections is `Infinity` when there is no limit. */
  readonly maxConnections: number;
}

/** Config is what a running proxy is built from. */
export interface Config {
  readonly listeners: readonly ListenerConfig[];
}

/**
 * ListenerOptions describe one listener as a library caller writes it.
 * Durations are milliseconds; `0` means never.
 */
export interface ListenerOptions {
  /** name for logs and stats. Default: the `listen` value as a string. */
  name?: string;
  /** listen: `'HOST:PORT'`, `'[::1]:PORT'`, `'PORT'` or a port number (all interfaces). Port 0 picks a free port. */
  listen: string | number;
  /** targets: one or more `'HOST:PORT'` (or `{ address, weight }`), tried in round-robin order with failover. */
  targets: readonly TargetOption[];
  /** idleTimeoutMs: close a connection with no bytes either way for this long. Default 0 (never). */
  idleTimeoutMs?: number;
  /** halfCloseTimeoutMs: after one side's FIN, close if no bytes flow for this long. Default 0 (idle timeout applies). */
  halfCloseTimeoutMs?: number;
  /** connectTimeoutMs: give up on a target after this long and try the next. Default 10000. */
  connectTimeoutMs?: number;
  /** shutdownTimeoutMs: how long a graceful close lets connections finish. Default 30000. */
  shutdownTimeoutMs?: number;
  /** maxConnections: at most this many proxied connections at once. Default: no limit. */
  maxConnections?: number;
}

function invalid(where: string, what: string): ProxyError {
  return new ProxyError('PROXY_ERR_INVALID_CONFIG', `${where}: ${what}`);
}

function durationOption(value: unknown, where: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(where, `expected a whole number of milliseconds >= 0, got ${String(value)}`);
  }
  return value;
}

function maxConnectionsOption(value: unknown, where: string): number {
  if (value === undefined || value === Number.POSITIVE_INFINITY) return DEFAULTS.maxConnections;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalid(where, `expected a whole number >= 1, got ${String(value)}`);
  }
  return value;
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
  if (typeof value === 'object' && value !== null && 'address' in value) {
    text = value.address;
    if ('weight' in value && value.weight !== undefined) weight = value.weight;
  }
  if (typeof text !== 'string') throw invalid(where, `expected HOST:PORT, got ${String(text)}`);
  if (typeof weight !== 'number' || !Number.isSafeInteger(weight) || weight < 1) {
    throw invalid(`${where}.weight`, `expected a whole number >= 1, got ${String(weight)}`);
  }
  try {
    const parsed = parseAddress(text);
    const address = formatParsed(parsed);
    if (parsed.path !== undefined) return Object.freeze({ path: parsed.path, address, weight });
    // parseAddress without allowBarePort always yields a host for TCP.
    return Object.freeze({ host: parsed.host ?? '', port: parsed.port, address, weight });
  } catch (err) {
    if (err instanceof AddressError) throw invalid(where, err.message);
    throw err;
  }
}

/** resolveListener validates one listener's options; `where` prefixes every message. */
export function resolveListener(options: ListenerOptions, where: string): ListenerConfig {
  const listen = listenOption(options.listen, `${where}listen`);
  if (!Array.isArray(options.targets) || options.targets.length === 0) {
    throw invalid(`${where}targets`, 'expected at least one target HOST:PORT');
  }
  const targets = options.targets.map((t, i) => targetOption(t, `${where}targets[${i}]`));
  const name = options.name ?? String(options.listen);
  if (typeof name !== 'string' || name === '')
    throw invalid(`${where}name`, 'expected a non-empty string');
  return Object.freeze({
    name,
    listen: Object.freeze(listen),
    targets: Object.freeze(targets),
    idleTimeoutMs: durationOption(
      options.idleTimeoutMs,
      `${where}idleTimeoutMs`,
      DEFAULTS.idleTimeoutMs,
    ),
    halfCloseTimeoutMs: durationOption(
      options.halfCloseTimeoutMs,
      `${where}halfCloseTimeoutMs`,
      DEFAULTS.halfCloseTimeoutMs,
    ),
    connectTimeoutMs: durationOption(
      options.connectTimeoutMs,
      `${where}connectTimeoutMs`,
      DEFAULTS.connectTimeoutMs,
    ),
    shutdownTimeoutMs: durationOption(
      options.shutdownTimeoutMs,
      `${where}shutdownTimeoutMs`,
      DEFAULTS.shutdownTimeoutMs,
    ),
    maxConnections: maxConnectionsOption(options.maxConnections, `${where}maxConnections`),
  });
}

/** resolveConfig validates a list of listeners; names must be unique. */
export function resolveConfig(listeners: readonly ListenerOptions[]): Config {
  if (listeners.length === 0) throw invalid('listeners', 'expected at least one listener');
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
  return resolveConfig('listeners' in options ? options.listeners : [options]);
}
