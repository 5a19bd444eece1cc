/**
 * The kinds of value an option can hold, each with everything that depends only on
 * the kind: how a flag's text is parsed, how a config file's value and a library
 * caller's value are checked, its JSON Schema, its placeholder in `--help`, and how
 * it is shown (`l4proxy check`, `/api/listeners`, the status page).
 *
 * config/options.ts declares each option once with one of these kinds; the parsers,
 * the schema and the displays walk that table. A kind's messages say what was
 * expected and what was given, never where: the caller adds the flag (`--idle-timeout:
 * ...`), the field path or the file position, so every message keeps its shape.
 *
 * Kinds for the options to come fit the same shape: a list of CIDRs (`list(cidr)`:
 * the flag repeats, the file holds a list), a rate `N/DUR`, a word like `--send-proxy
 * v1|v2` (`choice`), and config-only structured values (`routes` today, config/routes-kind.ts;
 * `tls.certs`, `health`, `toxics`), a StructuredKind, which brings its own schema and
 * definitions and has no `parseFlag`.
 */
import { CidrError, parseCidr } from '../access/cidr.js';
import { formatRate, parseRate, type Rate, RateError } from '../access/rate-limit.js';
import { DurationError, formatDuration, parseDuration } from './duration.js';

/** JsonSchema is a JSON Schema (draft-07) fragment, as plain data. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/**
/**
 * OptionValueError says why a value is wrong; the caller adds where it came from. A
 * structured value's error also says where inside it (`path`: `[1, 'sni']` for
 * `routes[1].sni`), which the caller appends to the option's own place; a list's
 * (`list`) gives the wrong item's place, `[2]`, which is also its `index`.
 */
export class OptionValueError extends Error {
  readonly path: readonly (string | number)[];

  constructor(message: string, path: readonly (string | number)[] = []) {
    super(message);
    this.path = path;
  }

  /** index is the wrong item's place when the value is a list, else undefined. */
  get index(): number | undefined {
    const first = this.path[0];
    return typeof first === 'number' ? first : undefined;
  }
}

/** eachItem reads every item of a list, an error saying which item was wrong. */
function eachItem<T>(values: unknown[], read: (value: unknown) => T): T[] {
  return values.map((value, i) => {
    try {
      return read(value);
    } catch (err) {
      if (err instanceof OptionValueError)
        throw new OptionValueError(err.message, [i, ...err.path]);
      throw err;
    }
  });
}

/**
 * PageFormat names how the status page writes a value of `/api/listeners`: `timeout`
 * (milliseconds; 0 is `off`), `limit` (a number; null is `no limit`), `text`, or
 * `probe` (the `health` mapping: `send "..." expect "..."`, or `connect`).
 */
export type PageFormat = 'timeout' | 'limit' | 'text' | 'probe';

/** Kind describes the values of one type of option, as written and as held. */
export interface Kind {
  /** metavar is the placeholder `--help` prints after the flag (`DUR`, `N`); '' for a switch. */
  readonly metavar: string;
  /** flagType is how parseArgs reads the flag: with a value (`string`) or without (`boolean`). */
  readonly flagType: 'string' | 'boolean';
  /** schema is the JSON Schema of a value in the config file (a `$ref` for a shared definition). */
  readonly schema: JsonSchema;
  /** patternMessage is what a value failing the schema's `pattern` was expected to be. */
  readonly patternMessage?: string;
  /** definitions are the schema definitions its `$ref`s name, by name. */
  readonly definitions?: { readonly [name: string]: JsonSchema };
  /** repeatable: the flag may be given several times, and the file holds a list (`list`). */
  readonly repeatable?: boolean;
}

/**
 * StructuredKind is the kind of a config-only structured value (a listener's `routes`;
 * to come: `tls.certs`, `health`, `toxics`): its schema and definitions describe it,
 * and it has no flag. `I` is the value as a library caller writes it, `T` as held.
 */
export interface StructuredKind<I, T> extends Kind {
  /**
   * fromFile checks a config file value the schema accepted, and gives it as a library
   * caller writes it; throws OptionValueError with the `path` of the wrong part.
   */
  fromFile(value: unknown): I;
  /** check validates a library caller's value; throws OptionValueError with a `path`. */
  check(value: unknown): T;
  /** show writes the value as `l4proxy check` prints it: one line per element. */
  show(value: T): string[];
}

/**
 * SettingKind is a Kind whose values a listener holds (`T` in a ListenerConfig, `J` in
 * `/api/listeners`): it parses them from every source and shows them.
 */
export interface SettingKind<T, J = T> extends Kind {
  /**
   * parseFlag reads a command-line value; throws OptionValueError. A repeatable kind
   * reads each value into a list, and the lists are joined; a switch (`flagType`
   * `boolean`) reads `'true'` when its flag is given. None for a config-only kind.
   */
  parseFlag?(text: string): T;
  /** fromFile reads a config file value the schema accepted; throws OptionValueError. */
  fromFile(value: unknown): T;
  /** check validates a library caller's value (undefined: `fallback`); throws OptionValueError. */
  check(value: unknown, fallback: T): T;
  /** toJson is the value as `/api/listeners` and `ListenerInfo` give it. */
  toJson(value: T): J;
  /** show writes the value as `l4proxy check` prints it. */
  show(value: T): string;
  /** page is how the status page writes the JSON value. */
  readonly page: PageFormat;
  /**
   * paths rewrites the file names a value holds (a relative name in a config file is
   * relative to that file); none for a kind without file names.
   */
  paths?(value: T, resolve: (name: string) => string): T;
}

const DURATION_SCHEMA: JsonSchema = {
  description:
    'A whole number with an optional unit ms, s, m or h (1500ms, 30s, 5m); a bare number is milliseconds.',
  type: ['integer', 'string'],
  minimum: 0,
  pattern: '^[0-9]+(ms|s|m|h)?$',
};

function durationText(text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    if (err instanceof DurationError) throw new OptionValueError(err.message);
    throw err;
  }
}

/** duration: `DUR` on the command line and in the file (a bare number is ms); ms inside. */
export const duration: SettingKind<number> = {
  metavar: 'DUR',
  flagType: 'string',
  schema: { $ref: '#/definitions/duration' },
  definitions: { duration: DURATION_SCHEMA },
  patternMessage: 'expected a duration like 30s, 1500ms or 0',
  parseFlag: durationText,
  fromFile: (value) => (typeof value === 'number' ? value : durationText(String(value))),
  check(value, fallback) {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new OptionValueError(
        `expected a whole number of milliseconds >= 0, got ${String(value)}`,
      );
    }
    return value;
  },
  toJson: (value) => value,
  show: formatDuration,
  page: 'timeout',
};

/**
 * limit: a whole number >= 1, or no limit (`Infinity` inside, `null` in JSON, absent
 * on the command line and in the file).
 */
export const limit: SettingKind<number, number | null> = {
  metavar: 'N',
  flagType: 'string',
  schema: { type: 'integer', minimum: 1 },
  parseFlag(text) {
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new OptionValueError(`expected a whole number >= 1, got ${JSON.stringify(text)}`);
    }
    return n;
  },
  fromFile: (value) => value as number,
  check(value, fallback) {
    if (value === undefined || value === Number.POSITIVE_INFINITY) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new OptionValueError(`expected a whole number >= 1, got ${String(value)}`);
    }
    return value;
  },
  toJson: (value) => (Number.isFinite(value) ? value : null),
  show: (value) => (Number.isFinite(value) ? String(value) : 'none'),
  page: 'limit',
};

/** choice: one of a few words (`--log-level`, and to come `--balance`, `--send-proxy`). */
export function choice<const T extends string>(
  values: readonly T[],
  metavar: string,
): SettingKind<T> & { readonly values: readonly T[] } {
  const expected = (got: string) =>
    new OptionValueError(`expected one of ${values.join(', ')}, got ${got}`);
  const find = (value: unknown) => values.find((v) => v === value);
  return {
    metavar,
    flagType: 'string',
    values,
    schema: { enum: values },
    parseFlag: (text) => find(text) ?? throwError(expected(JSON.stringify(text))),
    fromFile: (value) => value as T,
    check: (value, fallback) =>
      value === undefined ? fallback : (find(value) ?? throwError(expected(String(value)))),
    toJson: (value) => value,
    show: (value) => value,
    page: 'text',
  };
}

function throwError(err: Error): never {
  throw err;
}

/**
 * list: a repeatable option, each value of kind `item`: the flag may be given several
 * times, the file holds a list (at least `minItems`), and the setting is the list.
 */
export function list<T, J>(item: SettingKind<T, J>, minItems?: number): SettingKind<T[], J[]>;
export function list(item: Kind, minItems?: number): Kind;
export function list<T, J>(item: Kind | SettingKind<T, J>, minItems = 0): Kind {
  const schema = { type: 'array', ...(minItems === 0 ? {} : { minItems }), items: item.schema };
  const { metavar, definitions, patternMessage } = item;
  const base = {
    metavar,
    flagType: item.flagType,
    schema,
    definitions,
    patternMessage,
    repeatable: true,
  };
  if (!('fromFile' in item)) return base;
  const many = (value: unknown) => (Array.isArray(value) ? value : [value]);
  const kind: SettingKind<T[], J[]> = {
    ...base,
    flagType: 'string',
    fromFile: (values) => eachItem(many(values), (v) => item.fromFile(v)),
    check: (value, fallback) =>
      value === undefined ? fallback : eachItem(many(value), (v) => item.check(v, v as T)),
    toJson: (values) => values.map((v) => item.toJson(v)),
    show: (values) => (values.length === 0 ? 'none' : values.map((v) => item.show(v)).join(' ')),
    page: 'text',
  };
  const parseFlag = item.parseFlag;
  if (parseFlag === undefined) return kind;
  const withFlag: SettingKind<T[], J[]> = { ...kind, parseFlag: (text) => [parseFlag(text)] };
  return withFlag;
}

/**
 * cidr: an IP address or CIDR range (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`), held
 * as its canonical text (access/cidr.ts); the listener parses it into its AccessControl.
 */
export const cidr: SettingKind<string> = {
  metavar: 'CIDR',
  flagType: 'string',
  schema: { type: 'string', minLength: 1 },
  parseFlag: cidrText,
  fromFile: (value) => cidrText(String(value)),
  check: (value, fallback) => {
    if (value === undefined) return fallback;
    if (typeof value !== 'string') {
      throw new OptionValueError(`expected a CIDR range like 10.0.0.0/8, got ${String(value)}`);
    }
    return cidrText(value);
  },
  toJson: (value) => value,
  show: (value) => value,
  page: 'text',
};

function cidrText(text: string): string {
  try {
    return parseCidr(text).text;
  } catch (err) {
    if (err instanceof CidrError) throw new OptionValueError(err.message);
    throw err;
  }
}

/**
 * rate: `N/DUR` (`20/1s`, `600/1m`: at most N per DUR), or none (`null`, absent on the
 * command line and in the file). Held as a Rate (`{ count, periodMs }`); a library
 * caller may also give the text.
 */
export const rate: SettingKind<Rate | null, string | null> = {
  metavar: 'N/DUR',
  flagType: 'string',
  schema: { type: 'string', pattern: '^[1-9][0-9]{0,8}/[0-9]+(ms|s|m|h)?$' },
  patternMessage: 'expected N/DUR like 20/1s or 600/1m',
  parseFlag: rateText,
  fromFile: (value) => rateText(String(value)),
  check(value, fallback) {
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'string') return rateText(value);
    const { count, periodMs } = value as Partial<Rate>;
    const whole = (n: unknown, min: number) =>
      typeof n === 'number' && Number.isSafeInteger(n) && n >= min;
    if (!whole(count, 1) || !whole(periodMs, 1)) {
      throw new OptionValueError(
        `expected N/DUR like 20/1s or { count, periodMs } (whole numbers >= 1), got ${JSON.stringify(value)}`,
      );
    }
    return Object.freeze({ count: count as number, periodMs: periodMs as number });
  },
  toJson: (value) => (value === null ? null : formatRate(value)),
  show: (value) => (value === null ? 'none' : formatRate(value)),
  page: 'text',
};

function rateText(text: string): Rate {
  try {
    return parseRate(text);
  } catch (err) {
    if (err instanceof RateError) throw new OptionValueError(err.message);
    throw err;
  }
}

/** optionalChoice: one of a few words, or none (`null`, the default: `--send-proxy`). */
export function optionalChoice<const T extends string>(
  values: readonly T[],
  metavar: string,
): SettingKind<T | null> & { readonly values: readonly T[] } {
  const words = choice(values, metavar);
  return {
    ...words,
    check: (value, fallback) => (value === null ? null : words.check(value, fallback as T)),
    show: (value) => value ?? 'none',
  };
}

/**
 * switchSetting: a listener setting that is on or off (`--accept-proxy`): a flag
 * without a value turns it on; the file holds `true` or `false`.
 */
export const switchSetting: SettingKind<boolean> = {
  metavar: '',
  flagType: 'boolean',
  schema: { type: 'boolean' },
  parseFlag: (text) => text !== 'false',
  fromFile: (value) => value === true,
  check(value, fallback) {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      throw new OptionValueError(`expected true or false, got ${String(value)}`);
    }
    return value;
  },
  toJson: (value) => value,
  show: (value) => (value ? 'on' : 'off'),
  page: 'text',
};

/** switchKind: a flag without a value (`--watch-config`, `--help`). */
export const switchKind: Kind = { metavar: '', flagType: 'boolean', schema: { type: 'boolean' } };

/** text: a string read as it is (a file name, a listener name, a host name). */
export function text(metavar: string): Kind {
  return { metavar, flagType: 'string', schema: { type: 'string', minLength: 1 } };
}

/** address: `[HOST:]PORT`, `[IPv6]:PORT` or `unix:/path` (config/address.ts parses it). */
export function address(metavar: string): Kind {
  return {
    metavar,
    flagType: 'string',
    schema: { type: ['string', 'integer'], minLength: 1, minimum: 0, maximum: 65535 },
  };
}

/** target: `HOST:PORT` on the command line; in the file also `{ address, weight, backup }` (a `list`). */
export const target: Kind = {
  metavar: 'HOST:PORT',
  flagType: 'string',
  schema: { $ref: '#/definitions/target' },
  definitions: {
    address: {
      description: 'HOST:PORT, [IPv6]:PORT, or unix:/path/to.sock.',
      type: 'string',
      minLength: 1,
    },
    target: {
      description: 'HOST:PORT (or unix:/path), or an object with address, weight and backup.',
      type: ['string', 'object'],
      if: { type: 'string' },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then/else, never awaited.
      then: { $ref: '#/definitions/address' },
      else: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: {
          address: { $ref: '#/definitions/address' },
          weight: {
            type: 'integer',
            minimum: 1,
            maximum: 1000,
            description: 'Relative share of new connections. Default 1.',
          },
          backup: {
            type: 'boolean',
            description:
              'Get connections only while no other (non-backup) target is up. Default false.',
          },
        },
      },
    },
  },
};

/**
 * HealthProbe is what an active health check does after connecting (the config
 * file's `health: { send, expect }`): write `send`, then read until `expect` appears.
 * Neither set (the default): the check only connects.
 */
export interface HealthProbe {
  readonly send?: string;
  readonly expect?: string;
}

const PROBE_KEYS = ['send', 'expect'] as const;

/**
 * healthProbe: the config-only `health` mapping of a listener or of `defaults`, with
 * `send` and `expect` (strings); no flag. The timings are the flat `health_*` keys.
 */
export const healthProbe: SettingKind<HealthProbe, { send: string | null; expect: string | null }> =
  {
    metavar: '',
    flagType: 'string',
    schema: {
      type: 'object',
      additionalProperties: false,
      properties: {
        send: {
          type: 'string',
          minLength: 1,
          description: 'Written to the target once a check has connected.',
        },
        expect: {
          type: 'string',
          minLength: 1,
          description: 'The answer must contain this string within --health-timeout.',
        },
      },
    },
    fromFile: (value) => probeOf(value as HealthProbe),
    check(value, fallback) {
      if (value === undefined) return fallback;
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new OptionValueError(`expected { send?, expect? }, got ${String(value)}`);
      for (const [key, field] of Object.entries(value)) {
        if (!(PROBE_KEYS as readonly string[]).includes(key))
          throw new OptionValueError(`expected { send?, expect? }, got a key ${key}`);
        if (field !== undefined && (typeof field !== 'string' || field === ''))
          throw new OptionValueError(`expected ${key} to be a non-empty string`);
      }
      return probeOf(value as HealthProbe);
    },
    toJson: (value) => ({ send: value.send ?? null, expect: value.expect ?? null }),
    show(value) {
      if (value.send === undefined && value.expect === undefined) return 'connect';
      const parts = PROBE_KEYS.filter((k) => value[k] !== undefined).map(
        (k) => `${k} ${JSON.stringify(value[k])}`,
      );
      return parts.join(' ');
    },
    page: 'probe',
  };

function probeOf(value: HealthProbe): HealthProbe {
  return Object.freeze({
    ...(value.send === undefined ? {} : { send: value.send }),
    ...(value.expect === undefined ? {} : { expect: value.expect }),
  });
}

/** workerCount: a whole number 1 to `max`, or `auto` (one per CPU core). */
export function workerCount(max: number): Kind {
  return {
    metavar: 'N',
    flagType: 'string',
    schema: { type: ['integer', 'string'], minimum: 1, maximum: max, pattern: '^auto$' },
    patternMessage: `expected a whole number 1 to ${max} or auto`,
  };
}

function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '')
    throw new OptionValueError(`expected ${what}, got ${JSON.stringify(value) ?? String(value)}`);
  return value;
}

/**
 * file: a file name (`--tls-cert FILE`); null when not given. In a config file a
 * relative name is relative to the file (`paths`).
 */
export const file: SettingKind<string | null> = {
  metavar: 'FILE',
  flagType: 'string',
  schema: { type: 'string', minLength: 1 },
  parseFlag: (text) => nonEmpty(text, 'a file name'),
  fromFile: (value) => value as string,
  check: (value, fallback) =>
    value === undefined || value === null ? fallback : nonEmpty(value, 'a file name'),
  toJson: (value) => value,
  show: (value) => value ?? 'none',
  page: 'text',
  paths: (value, resolve) => (value === null ? null : resolve(value)),
};

/** hostName: a host name given as it is (`--target-servername`); null when not given. */
export const hostName: SettingKind<string | null> = {
  ...file,
  metavar: 'NAME',
  parseFlag: (text) => nonEmpty(text, 'a host name'),
  check: (value, fallback) =>
    value === undefined || value === null ? fallback : nonEmpty(value, 'a host name'),
  paths: undefined,
};

/** CertificateFiles are one certificate (with its chain) and its private key, as file names. */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

/** TlsFiles is a listener's `tls` section: its certificates, the first being the default. */
export interface TlsFiles {
  readonly certs: readonly CertificateFiles[];
}

/**
 * tlsFiles: the config file's `tls: { certs: [{cert, key}, ...] }` (no flag: `--tls-cert`
 * and `--tls-key` give one pair); null when not given. Shown as file names, never the keys.
 */
export const tlsFiles: SettingKind<TlsFiles | null> = {
  metavar: '',
  flagType: 'string',
  schema: { $ref: '#/definitions/tls' },
  definitions: {
    tls: {
      description:
        "TLS termination: the certificates this listener presents, chosen by the client's SNI name (exact names before one-label *. wildcards); the first is the default.",
      type: 'object',
      additionalProperties: false,
      required: ['certs'],
      properties: {
        certs: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['cert', 'key'],
            properties: {
              cert: {
                type: 'string',
                minLength: 1,
                description: 'PEM certificate file (its chain after it).',
              },
              key: { type: 'string', minLength: 1, description: 'PEM private key file.' },
            },
          },
        },
      },
    },
  },
  fromFile: (value) => {
    const certs = (value as { certs: CertificateFiles[] }).certs;
    return { certs: certs.map(({ cert, key }) => ({ cert, key })) };
  },
  check(value, fallback) {
    if (value === undefined || value === null) return fallback;
    const certs = (value as { certs?: unknown }).certs;
    if (typeof value !== 'object' || !Array.isArray(certs) || certs.length === 0)
      throw new OptionValueError('expected { certs: [{ cert, key }, ...] } with at least one pair');
    return {
      certs: certs.map((pair: unknown, i) => {
        const { cert, key } = (pair ?? {}) as { cert?: unknown; key?: unknown };
        try {
          return { cert: nonEmpty(cert, 'a file name'), key: nonEmpty(key, 'a file name') };
        } catch (err) {
          if (err instanceof OptionValueError)
            throw new OptionValueError(`certs[${i}]: ${err.message}`);
          throw err;
        }
      }),
    };
  },
  toJson: (value) => value,
  show: (value) =>
    value === null ? 'none' : value.certs.map((c) => `${c.cert}+${c.key}`).join(' '),
  page: 'text',
  paths: (value, resolve) =>
    value === null
      ? null
      : { certs: value.certs.map((c) => ({ cert: resolve(c.cert), key: resolve(c.key) })) },
};
