/**
 * Toxics as Toxiproxy defines them (issue #12, docs/faults.md): a name, a type, the
 * stream it acts on, its toxicity and the type's attributes. The one toxic model: the
 * Toxiproxy HTTP API, the config file, `proxy.toxics()` and the registry all read
 * toxics with `parseToxic` and show them with `toxicJson`. This module only
 * validates and fills in defaults; the stages that do the harm are in the other
 * files of `faults/`, and `registry.ts` keeps a listener's toxics.
 *
 * Defaults and checks follow Toxiproxy's `AddToxicJson` (toxic_collection.go), in its
 * order: `stream` (default `downstream`), then `name` (default `<type>_<stream>`),
 * then `type`, then whether the name is taken (409, before the attributes), then the
 * attributes, every one of them 0 unless given (Go's zero value). Where Toxiproxy
 * accepts a value that later misbehaves (a negative duration, a toxicity above 1, a
 * slicer that would split forever), we refuse it here with a one-line error naming
 * the attribute. Every error carries Toxiproxy's text and status too (`apiText`).
 */
import type { Stream } from '../stage.js';

/** ToxicAttributesByType: each toxic type's attributes, all whole numbers. */
export interface ToxicAttributesByType {
  /** Every chunk waits `latency` ms, plus or minus up to `jitter` ms. */
  latency: { latency: number; jitter: number };
  /** At most `rate` KB/s (1 KB = 1000 bytes); 0 = no limit. */
  bandwidth: { rate: number };
  /** The FIN waits `delay` ms. */
  slow_close: { delay: number };
  /** Nothing passes; the connection is closed after `timeout` ms (0: held until removed). */
  timeout: { timeout: number };
  /** `timeout` ms after the first data (or FIN), the connection is reset both ways. */
  reset_peer: { timeout: number };
  /** Chunks are cut into pieces of about `average_size` ± `size_variation` bytes, `delay` µs apart. */
  slicer: { average_size: number; size_variation: number; delay: number };
  /** The connection is closed once `bytes` bytes have passed. */
  limit_data: { bytes: number };
  /** Passes everything unchanged. */
  noop: Record<string, never>;
}

/** ToxicType is a toxic's `type`, as Toxiproxy spells it. */
export type ToxicType = keyof ToxicAttributesByType;

/** ToxicOf is a validated toxic of type T: every field and every attribute present. */
export interface ToxicOf<T extends ToxicType> {
  readonly name: string;
  readonly type: T;
  readonly stream: Stream;
  /** toxicity: the probability (0 to 1) that a new connection gets the toxic. */
  readonly toxicity: number;
  readonly attributes: Readonly<ToxicAttributesByType[T]>;
}

/** Toxic is a validated toxic of any type (frozen; made by parseToxic). */
export type Toxic = { [T in ToxicType]: ToxicOf<T> }[ToxicType];

/**
 * ToxicDefinition is a toxic as given (the HTTP API's body, a config file entry):
 * only `type` is required. parseToxic validates it into a Toxic.
 */
export interface ToxicDefinition {
  name?: string;
  type: string;
  stream?: string;
  toxicity?: number;
  attributes?: Readonly<Record<string, unknown>>;
}

/** ToxicChanges is what an update may change: toxicity, and some or all attributes. */
export interface ToxicChanges {
  toxicity?: number;
  attributes?: Readonly<Record<string, unknown>>;
}

/** ToxicErrorCode: what was wrong. The admin API maps it to a status (see `status`). */
export type ToxicErrorCode =
  /** The toxic, a field or an attribute is malformed (HTTP 400). */
  | 'PROXY_ERR_TOXIC_INVALID'
  /** A toxic of that name exists already on the listener (HTTP 409). */
  | 'PROXY_ERR_TOXIC_EXISTS'
  /** No toxic of that name on the listener (HTTP 404). */
  | 'PROXY_ERR_TOXIC_NOT_FOUND';

/**
 * ToxicError is every error of this folder. `message` is one line naming the field or
 * attribute; `status` and `toxiproxyError` are what Toxiproxy answers for the same
 * mistake (`{"error": toxiproxyError, "status": status}`; for a malformed body
 * Toxiproxy appends its decoder's text after "bad request body: ").
 */
export class ToxicError extends Error {
  readonly code: ToxicErrorCode;
  readonly status: 400 | 404 | 409;
  readonly toxiproxyError: string;

  constructor(code: ToxicErrorCode, message: string, toxiproxyError: string) {
    super(message);
    this.name = 'ToxicError';
    this.code = code;
    this.status =
      code === 'PROXY_ERR_TOXIC_EXISTS' ? 409 : code === 'PROXY_ERR_TOXIC_NOT_FOUND' ? 404 : 400;
    this.toxiproxyError = toxiproxyError;
  }
}

const BAD_BODY = 'bad request body';
const BAD_STREAM = 'stream was invalid, can be either upstream or downstream';
const BAD_TYPE = 'invalid toxic type';

/** AttributeRule: an attribute's unit (for messages) and smallest value. */
interface AttributeRule {
  readonly unit: string;
  readonly min: number;
}

const MS: AttributeRule = { unit: 'milliseconds', min: 0 };

/** ATTRIBUTES lists each type's attributes in Toxiproxy's order, with their rules. */
const ATTRIBUTES: { readonly [T in ToxicType]: Readonly<Record<string, AttributeRule>> } = {
  latency: { latency: MS, jitter: MS },
  bandwidth: { rate: { unit: 'KB/s', min: 0 } },
  slow_close: { delay: MS },
  timeout: { timeout: MS },
  reset_peer: { timeout: MS },
  slicer: {
    average_size: { unit: 'bytes', min: 1 },
    size_variation: { unit: 'bytes', min: 0 },
    delay: { unit: 'microseconds', min: 0 },
  },
  limit_data: { bytes: { unit: 'bytes', min: 0 } },
  noop: {},
};

/** TOXIC_TYPES lists every toxic type, in the order Toxiproxy's README gives them. */
export const TOXIC_TYPES: readonly ToxicType[] = Object.freeze(
  Object.keys(ATTRIBUTES) as ToxicType[],
);

/** isToxicType: `type` names one of TOXIC_TYPES. */
export function isToxicType(type: unknown): type is ToxicType {
  return typeof type === 'string' && Object.hasOwn(ATTRIBUTES, type);
}

/** ParseOptions: `where` prefixes every message (a file and field); `strict` refuses unknown attributes. */
export interface ParseOptions {
  /**
   * taken says whether a name is in use on the listener: then PROXY_ERR_TOXIC_EXISTS
   * (409), checked before the attributes, as Toxiproxy does.
   */
  readonly taken?: (name: string) => boolean;
  /** where, e.g. `proxy.yaml: listeners[0].toxics[1]`; messages start with it. */
  readonly where?: string;
  /**
   * strict: an attribute the type does not have is an error (config files). Off by
   * default, as Toxiproxy ignores unknown attributes.
   */
  readonly strict?: boolean;
}

/**
 * parseToxic validates a toxic as given (a ToxicDefinition, or any JSON value) and
 * fills in Toxiproxy's defaults: `stream` downstream, `name` `<type>_<stream>`,
 * `toxicity` 1, every attribute 0. Throws a ToxicError (PROXY_ERR_TOXIC_INVALID)
 * whose one-line message names what is wrong. The result is frozen.
 */
export function parseToxic(input: unknown, options: ParseOptions = {}): Toxic {
  const at = options.where === undefined ? 'toxic' : `${options.where}: toxic`;
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid(`${at}: expected an object with a type, got ${show(input)}`, BAD_BODY);
  const given = input as Record<string, unknown>;
  const streamGiven = given['stream'] ?? 'downstream';
  if (typeof streamGiven !== 'string')
    throw invalid(`${at}: stream must be a string, got ${show(streamGiven)}`, BAD_BODY);
  const stream = streamGiven.toLowerCase();
  if (stream !== 'upstream' && stream !== 'downstream')
    throw invalid(
      `${at}: stream must be upstream or downstream, got ${show(streamGiven)}`,
      BAD_STREAM,
    );
  const type = given['type'];
  if (type !== undefined && typeof type !== 'string')
    throw invalid(`${at}: type must be a string, got ${show(type)}`, BAD_BODY);
  const nameGiven = given['name'];
  if (nameGiven !== undefined && nameGiven !== null && typeof nameGiven !== 'string')
    throw invalid(`${at}: name must be a string, got ${show(nameGiven)}`, BAD_BODY);
  const name = nameGiven ? nameGiven : `${type ?? ''}_${stream}`;
  const named = `${at} ${JSON.stringify(name)}`;
  if (!isToxicType(type))
    throw invalid(
      `${named}: type must be one of ${TOXIC_TYPES.join(', ')}, got ${show(type)}`,
      BAD_TYPE,
    );
  const toxicity = checkToxicity(given['toxicity'] ?? 1, named);
  if (options.taken?.(name) === true) throw toxicExists(name);
  const attributes = checkAttributes(type, {}, given['attributes'], named, options.strict === true);
  return Object.freeze({ name, type, stream, toxicity, attributes }) as Toxic;
}

/**
 * updateToxic applies `changes` to `toxic` as Toxiproxy's update does: `toxicity`
 * and the attributes given change, the rest stays (name, type and stream cannot
 * change; other fields are ignored). Throws a ToxicError as parseToxic does.
 */
export function updateToxic(toxic: Toxic, changes: unknown, options: ParseOptions = {}): Toxic {
  const at = options.where === undefined ? 'toxic' : `${options.where}: toxic`;
  const named = `${at} ${JSON.stringify(toxic.name)}`;
  if (typeof changes !== 'object' || changes === null || Array.isArray(changes))
    throw invalid(`${named}: expected an object, got ${show(changes)}`, BAD_BODY);
  const given = changes as Record<string, unknown>;
  const toxicity = checkToxicity(given['toxicity'] ?? toxic.toxicity, named);
  const attributes = checkAttributes(
    toxic.type,
    toxic.attributes,
    given['attributes'],
    named,
    options.strict === true,
  );
  return Object.freeze({ ...toxic, toxicity, attributes }) as Toxic;
}

/** toxicExists is the error for a name in use (409, Toxiproxy's `toxic already exists`). */
export function toxicExists(name: string): ToxicError {
  return new ToxicError(
    'PROXY_ERR_TOXIC_EXISTS',
    `toxic ${JSON.stringify(name)} exists already`,
    'toxic already exists',
  );
}

/** toxicNotFound is the error for a name not in use (404, Toxiproxy's `toxic not found`). */
export function toxicNotFound(name: string): ToxicError {
  return new ToxicError(
    'PROXY_ERR_TOXIC_NOT_FOUND',
    `toxic ${JSON.stringify(name)} not found`,
    'toxic not found',
  );
}

/**
 * apiText is what Toxiproxy's API answers for `err`: its own text, with our message
 * after `bad request body: ` for a malformed body (Toxiproxy puts its decoder's there).
 */
export function apiText(err: ToxicError): string {
  return err.toxiproxyError === BAD_BODY ? `${BAD_BODY}: ${err.message}` : err.toxiproxyError;
}

/** toxicJson is a toxic as Toxiproxy's API writes it, keys in its order. */
export function toxicJson(toxic: Toxic): Record<string, unknown> {
  return {
    attributes: toxic.attributes,
    name: toxic.name,
    type: toxic.type,
    stream: toxic.stream,
    toxicity: toxic.toxicity,
  };
}

function checkToxicity(value: unknown, named: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1)
    throw invalid(`${named}: toxicity must be a number from 0 to 1, got ${show(value)}`, BAD_BODY);
  return value;
}

/** checkAttributes: `before` with the given attributes over it, each checked; every attribute present. */
function checkAttributes(
  type: ToxicType,
  before: Readonly<Record<string, unknown>>,
  given: unknown,
  named: string,
  strict: boolean,
): Readonly<Record<string, number>> {
  if (given !== undefined && given !== null && (typeof given !== 'object' || Array.isArray(given)))
    throw invalid(`${named}: attributes must be an object, got ${show(given)}`, BAD_BODY);
  const values = (given ?? {}) as Record<string, unknown>;
  const rules = ATTRIBUTES[type];
  if (strict) {
    for (const key of Object.keys(values)) {
      if (!Object.hasOwn(rules, key)) {
        const known = Object.keys(rules);
        const expected = known.length === 0 ? 'none' : known.join(', ');
        throw invalid(
          `${named}: ${type} has no attribute ${JSON.stringify(key)} (expected ${expected})`,
          BAD_BODY,
        );
      }
    }
  }
  const out: Record<string, number> = {};
  for (const [key, rule] of Object.entries(rules)) {
    const value = values[key] ?? before[key] ?? 0;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < rule.min)
      throw invalid(
        `${named}: attribute ${key} must be a whole number of ${rule.unit}, at least ${rule.min}, got ${show(value)}`,
        BAD_BODY,
      );
    out[key] = value;
  }
  if (type === 'slicer' && (out['size_variation'] ?? 0) >= (out['average_size'] ?? 0))
    throw invalid(
      `${named}: attribute size_variation must be smaller than average_size (${out['average_size']}), got ${out['size_variation']}`,
      BAD_BODY,
    );
  return Object.freeze(out);
}

function invalid(message: string, toxiproxyError: string): ToxicError {
  return new ToxicError('PROXY_ERR_TOXIC_INVALID', message, toxiproxyError);
}

/** show writes a value given for a message: JSON, cut short. */
function show(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
