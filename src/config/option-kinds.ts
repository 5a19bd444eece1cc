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
 * v1|v2` (`choice`), and config-only structured values (`tls.certs`, `routes`,
 * `health`, `toxics`), whose kind brings its own schema and definitions and has no
 * `parseFlag`.
 */
import { DurationError, formatDuration, parseDuration } from './duration.js';

/** JsonSchema is a JSON Schema (draft-07) fragment, as plain data. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** OptionValueError says why a value is wrong; the caller adds where it came from. */
export class OptionValueError extends Error {}

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
 * SettingKind is a Kind whose values a listener holds (`T` in a ListenerConfig, `J` in
 * `/api/listeners`): it parses them from every source and shows them.
 */
export interface SettingKind<T, J = T> extends Kind {
  readonly flagType: 'string';
  /**
   * parseFlag reads a command-line value; throws OptionValueError. A repeatable kind
   * reads each value into a list, and the lists are joined. None for a config-only kind.
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
    fromFile: (values) => many(values).map((v) => item.fromFile(v)),
    check: (value, fallback) =>
      value === undefined ? fallback : many(value).map((v) => item.check(v, v as T)),
    toJson: (values) => values.map((v) => item.toJson(v)),
    show: (values) => (values.length === 0 ? 'none' : values.map((v) => item.show(v)).join(' ')),
    page: 'text',
  };
  const parseFlag = item.parseFlag;
  if (parseFlag === undefined) return kind;
  const withFlag: SettingKind<T[], J[]> = { ...kind, parseFlag: (text) => [parseFlag(text)] };
  return withFlag;
}

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
