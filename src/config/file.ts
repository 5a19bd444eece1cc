/**
 * The config file: YAML (JSON being YAML too) with `defaults` and a list of
 * `listeners`, checked against schema/proxy.schema.json (the same file editors use
 * to complete and check it) and then for meaning (addresses, durations, unique
 * names and addresses). Every error is one line that names the file, the line and
 * column of the offending key or value, and the field path:
 *
 *     proxy.yaml:12:7 listeners[1].targets[0]: port must be 1 to 65535, got 70000
 *
 * Pure apart from reading the file: nothing is bound or started here.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Document, isMap, isScalar, LineCounter, type Node, parseDocument, visit } from 'yaml';
import { ProxyError } from '../errors.js';
import type { LogFormat, LogLevel } from '../log.js';
import { AddressError, checkHostName, formatParsed, parseAddress } from './address.js';
import {
  type DefaultOverrides,
  type ListenerOptions,
  type RouteOption,
  stripUndefined,
  type TargetOption,
} from './config.js';
import { OptionValueError } from './option-kinds.js';
import {
  configKey,
  OPTIONS,
  type OptionSpec,
  type Place,
  SETTING_NAMES,
  setting,
} from './options.js';
import { type SchemaError, validateSchema } from './schema-validator.js';
import type { ToxicDefinition } from './toxics-kind.js';

/** FileSettings is what a config file holds, as options for createProxy. */
export interface FileSettings {
  listeners: ListenerOptions[];
  logLevel: LogLevel | undefined;
  logFormat: LogFormat | undefined;
  /** admin is the `admin` section: where to serve, the token file as written, extra Host names. */
  admin: { listen: string; tokenFile: string | undefined; hosts: string[] } | undefined;
  /** workers is the top-level `workers`: processes sharing the listeners (see src/cluster.ts). */
  workers: number | 'auto' | undefined;
}

type Path = readonly (string | number)[];

/** readConfigFile reads and checks `file`; errors are PROXY_ERR_INVALID_CONFIG with a position. */
export function readConfigFile(file: string, overrides: DefaultOverrides = {}): FileSettings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new ProxyError(
      'PROXY_ERR_INVALID_CONFIG',
      `${file}: cannot read the config file: ${why}`,
    );
  }
  return parseConfigText(text, file, overrides);
}

/** parseConfigText checks the text of a config file called `file` (used in messages). */
export function parseConfigText(
  text: string,
  file: string,
  overrides: DefaultOverrides = {},
): FileSettings {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const fail = (path: Path, what: string, key?: string): never => {
    const offset = offsetOf(doc.contents, path, key);
    const { line, col } = lineCounter.linePos(offset);
    const where = formatPath(key === undefined ? path : [...path, key]);
    throw new ProxyError(
      'PROXY_ERR_INVALID_CONFIG',
      `${file}:${line}:${col}${where === '' ? '' : ` ${where}`}: ${what}`,
    );
  };

  const yamlError = doc.errors[0];
  if (yamlError !== undefined) {
    const pos = lineCounter.linePos(yamlError.pos[0]);
    const what = yamlError.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? '';
    throw new ProxyError('PROXY_ERR_INVALID_CONFIG', `${file}:${pos.line}:${pos.col}: ${what}`);
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // An alias to an anchor that does not exist (`*x` without `&x`) fails only here.
    const where = lineCounter.linePos(firstAliasOffset(doc));
    throw new ProxyError(
      'PROXY_ERR_INVALID_CONFIG',
      `${file}:${where.line}:${where.col}: ${String((err as Error).message)}`,
    );
  }
  if (data === null || data === undefined) fail([], 'the file is empty; expected listeners');
  if (!validateSchema(data)) {
    const error = pickSchemaError(validateSchema.errors ?? []);
    if (error !== undefined) describeSchemaError(error, fail);
  }
  return buildSettings(data as RawFile, overrides, fail, dirname(file));
}

// ---------------------------------------------------------------- schema errors

type Fail = (path: Path, what: string, key?: string) => never;

// With all errors collected, say the most useful one: a misspelt key explains a
// "missing field" next to it, so unknown fields come first; then the first in order.
function pickSchemaError(errors: readonly SchemaError[]): SchemaError | undefined {
  return errors.find((e) => e.keyword === 'additionalProperties') ?? errors[0];
}

function firstAliasOffset(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

function describeSchemaError(error: SchemaError, fail: Fail): never {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((part) =>
      /^\d+$/.test(part) ? Number(part) : part.replace(/~1/g, '/').replace(/~0/g, '~'),
    );
  const got = error.data;
  const params = error.params;
  switch (error.keyword) {
    case 'additionalProperties':
      return fail(path, 'unknown field', String(params['additionalProperty']));
    case 'required':
      return fail(path, `missing field ${JSON.stringify(params['missingProperty'])}`);
    case 'type':
      return fail(path, `expected ${describeTypes(params['type'])}, got ${describeValue(got)}`);
    case 'enum':
      return fail(
        path,
        `expected one of ${(params['allowedValues'] as unknown[]).join(', ')}, got ${describeValue(got)}`,
      );
    case 'pattern':
      return fail(path, `${patternMessage(path)}, got ${describeValue(got)}`);
    case 'minItems':
      return fail(path, 'expected at least one entry');
    case 'minLength':
      return fail(path, 'expected a non-empty string');
    case 'minimum':
    case 'maximum':
      return fail(
        path,
        `expected a whole number ${String(params['comparison'])} ${String(params['limit'])}, got ${describeValue(got)}`,
      );
    default:
      return fail(path, error.message ?? 'invalid value');
  }
}

/**
 * patternMessage is what the option at `path` expects, from its kind in the option
 * table (the key is the last name in the path: `allow` in `listeners[0].allow[2]`).
 */
function patternMessage(path: Path): string {
  const key = path.findLast((part) => typeof part === 'string');
  const sections: Record<string, Place> = {
    defaults: 'defaults',
    listeners: 'listener',
    admin: 'admin',
  };
  const place = (path.length > 1 && sections[String(path[0])]) || 'top';
  const spec = (Object.values(OPTIONS) as OptionSpec[]).find(
    (o) => o.places.includes(place) && o.kind.patternMessage !== undefined && configKey(o) === key,
  );
  return spec?.kind.patternMessage ?? 'expected a different value';
}

function describeTypes(types: unknown): string {
  const names: Record<string, string> = {
    integer: 'a whole number',
    object: 'a mapping',
    array: 'a list',
    string: 'a string',
  };
  const list = Array.isArray(types) ? types : [types];
  return list.map((t) => names[String(t)] ?? String(t)).join(' or ');
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value) ?? String(value);
}

// ---------------------------------------------------------------- meaning

interface RawTarget {
  address: string;
  weight?: number;
  backup?: boolean;
}
/** RawOptions: the settings as written in `defaults` or a listener, by config key. */
type RawOptions = { readonly [key: string]: unknown };
interface RawListener extends RawOptions {
  name?: string;
  listen: string | number;
  /** targets: required unless the listener has routes (the schema says so). */
  targets?: (string | RawTarget)[];
  routes?: unknown;
  toxics?: unknown;
}
interface RawFile {
  defaults?: RawOptions & { log_level?: LogLevel; log_format?: LogFormat };
  listeners: RawListener[];
  admin?: { listen: string | number; token_file?: string; hosts?: string[] };
  workers?: number | 'auto';
}

function buildSettings(
  raw: RawFile,
  overrides: DefaultOverrides,
  fail: Fail,
  dir: string,
): FileSettings {
  const defaults = raw.defaults ?? {};
  const defaultOptions = readOptions(defaults, ['defaults'], fail, dir);
  // Command-line flags override the file's defaults, never a listener's own values.
  const base: DefaultOverrides = { ...defaultOptions, ...stripUndefined(overrides) };
  const names = new Map<string, number>();
  const listens = new Map<string, number>();
  const listeners = raw.listeners.map((l, i): ListenerOptions => {
    const path = ['listeners', i] as const;
    const listen = String(l.listen);
    checkAddress(listen, true, [...path, 'listen'], fail);
    const routes = l.routes === undefined ? undefined : readRoutes(l, path, fail);
    // A target listed twice would be counted, drained and shown as one (config.ts).
    const targetIndex = new Map<string, number>();
    const targets = (l.targets ?? []).map((t, j): TargetOption => {
      const address = typeof t === 'string' ? t : t.address;
      const targetPath =
        typeof t === 'string' ? [...path, 'targets', j] : [...path, 'targets', j, 'address'];
      checkAddress(address, false, targetPath, fail);
      const normal = formatParsed(parseAddress(address));
      const first = targetIndex.get(normal);
      if (first !== undefined)
        fail(targetPath, `duplicate target ${normal} (already targets[${first}])`);
      targetIndex.set(normal, j);
      if (typeof t === 'string') return t;
      return { address, weight: t.weight ?? 1, ...(t.backup === true ? { backup: true } : {}) };
    });
    const sameListen = listens.get(listen);
    if (sameListen !== undefined) {
      fail([...path, 'listen'], `address ${listen} is already used by listeners[${sameListen}]`);
    }
    listens.set(listen, i);
    const name = l.name ?? listen;
    const sameName = names.get(name);
    if (sameName !== undefined) {
      fail(
        l.name === undefined ? [...path, 'listen'] : [...path, 'name'],
        `duplicate listener name ${JSON.stringify(name)} (also listeners[${sameName}])`,
      );
    }
    names.set(name, i);
    const to = routes === undefined ? { targets } : { routes };
    const toxics = l.toxics === undefined ? {} : { toxics: readToxics(l.toxics, path, fail) };
    const own = readOptions(l, path, fail, dir);
    return { ...inherited(base, own), ...own, name, listen, ...to, ...toxics };
  });
  let admin: FileSettings['admin'];
  if (raw.admin !== undefined) {
    const listen = String(raw.admin.listen);
    checkAddress(listen, true, ['admin', 'listen'], fail);
    const hosts = raw.admin.hosts ?? [];
    hosts.forEach((name, i) => {
      const problem = checkHostName(name);
      if (problem !== null) fail(['admin', 'hosts', i], problem);
    });
    admin = { listen, tokenFile: raw.admin.token_file, hosts };
  }
  return {
    listeners,
    logLevel: defaults.log_level,
    logFormat: defaults.log_format,
    admin,
    workers: raw.workers,
  };
}

/**
 * inherited is what a listener takes from `defaults` and the flags: all of it, except
 * that its own certificates (`tls_cert`/`tls_key`, or `tls`) replace both kinds of
 * inherited ones, as one setting would.
 */
function inherited(base: DefaultOverrides, own: DefaultOverrides): DefaultOverrides {
  const ownPair = own.tlsCert !== undefined || own.tlsKey !== undefined;
  if (!ownPair && own.tls === undefined) return base;
  const { tlsCert: _cert, tlsKey: _key, tls: _tls, ...rest } = base;
  return rest;
}

/**
 * readOptions reads the listener settings written in `raw` (`defaults` or a listener),
 * in table order; a relative file name is taken as relative to the file's `dir`.
 */
function readOptions(raw: RawOptions, path: Path, fail: Fail, dir: string): DefaultOverrides {
  const options: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = setting(name);
    const key = configKey(spec);
    const value = raw[key];
    if (value === undefined) continue; // (the schema refused a key not allowed here)
    try {
      const read = spec.kind.fromFile(value);
      options[name] = spec.kind.paths ? spec.kind.paths(read, (n) => resolve(dir, n)) : read;
    } catch (err) {
      if (err instanceof OptionValueError) {
        const at = err.index === undefined ? [...path, key] : [...path, key, err.index];
        fail(at, err.message);
      }
      throw err;
    }
  }
  return options as DefaultOverrides;
}

/**
 * readRoutes reads a listener's `routes` (routes-kind.ts), every error at its place in
 * the list (`listeners[0].routes[1].sni`); such a listener has no `targets` of its own.
 */
function readRoutes(l: RawListener, path: Path, fail: Fail): RouteOption[] {
  if (l.targets !== undefined) {
    fail(
      [...path, 'targets'],
      'a listener with routes has no targets of its own (the last route, without sni, is the default)',
    );
  }
  try {
    return OPTIONS.routes.kind.fromFile(l.routes);
  } catch (err) {
    if (err instanceof OptionValueError) fail([...path, 'routes', ...err.path], err.message);
    throw err;
  }
}

/** readToxics reads a listener's `toxics` (toxics-kind.ts), every error at its place (`listeners[0].toxics[1].attributes.latency`). */
function readToxics(value: unknown, path: Path, fail: Fail): ToxicDefinition[] {
  try {
    return OPTIONS.toxics.kind.fromFile(value);
  } catch (err) {
    if (err instanceof OptionValueError) fail([...path, 'toxics', ...err.path], err.message);
    throw err;
  }
}

function checkAddress(text: string, isListen: boolean, path: Path, fail: Fail): void {
  try {
    parseAddress(text, { allowBarePort: isListen, allowPortZero: isListen });
  } catch (err) {
    if (err instanceof AddressError) fail(path, err.message);
    throw err;
  }
}

// ---------------------------------------------------------------- positions

/** offsetOf finds where `path` (and, inside a mapping, `key`) is written; the nearest parent if it is not. */
function offsetOf(root: unknown, path: Path, key?: string): number {
  let node = root as Node | null | undefined;
  let offset = node?.range?.[0] ?? 0;
  for (const part of path) {
    const child = childOf(node, part);
    if (child === undefined) return offset;
    node = child;
    offset = child.range?.[0] ?? offset;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    const keyNode = pair?.key as Node | undefined;
    if (keyNode?.range) return keyNode.range[0];
  }
  return offset;
}

function childOf(node: Node | null | undefined, part: string | number): Node | undefined {
  if (node === null || node === undefined || !('get' in node) || typeof node.get !== 'function')
    return undefined;
  const child = (node as { get(k: unknown, keepScalar: boolean): unknown }).get(part, true);
  return child !== null && typeof child === 'object' && 'range' in child
    ? (child as Node)
    : undefined;
}

/** formatPath writes ['listeners', 1, 'targets', 0] as `listeners[1].targets[0]`. */
function formatPath(path: Path): string {
  let text = '';
  for (const part of path)
    text += typeof part === 'number' ? `[${part}]` : text === '' ? part : `.${part}`;
  return text;
}
