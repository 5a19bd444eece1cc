/**
 * Toxics as Toxiproxy's HTTP API describes them: the JSON model, its validation, and
 * an in-memory store per listener. Pure: no sockets, no timers.
 *
 * A toxic is `{ name, type, stream, toxicity, attributes }`. The types, their
 * attributes and units are Toxiproxy's (toxics/*.go in Shopify/toxiproxy); an
 * attribute that is not given is 0, as Go's zero value is there. Reading a body
 * follows toxic_collection.go step by step, so the same body gets the same answer:
 * the body, then `stream`, then `type`, then whether the name is taken (409), then
 * the attributes. Errors carry Toxiproxy's text and HTTP status (`ToxicError`).
 *
 * Where this is stricter than Toxiproxy (which takes any int64 and any float32):
 * attributes must be whole numbers ≥ 0 and `toxicity` must lie in 0..1; either
 * mistake is a 400 "bad request body: ..." naming the field.
 *
 * The data path reads the toxics of a listener through the same `ToxicStore`
 * interface the API writes them through; `MemoryToxicStore` only keeps them.
 */

/** TOXIC_ATTRIBUTES lists every toxic type with its attributes and their defaults (Toxiproxy's). */
export const TOXIC_ATTRIBUTES = Object.freeze({
  /** latency, jitter: ms added to each chunk (latency ± jitter). */
  latency: { latency: 0, jitter: 0 },
  /** rate: KB/s. */
  bandwidth: { rate: 0 },
  /** delay: ms between the peer's close and ours. */
  slow_close: { delay: 0 },
  /** timeout: ms of holding every byte before closing; 0 holds them until the toxic is removed. */
  timeout: { timeout: 0 },
  /** timeout: ms before the connection is reset. */
  reset_peer: { timeout: 0 },
  /** average_size, size_variation: bytes; delay: µs between the slices. */
  slicer: { average_size: 0, size_variation: 0, delay: 0 },
  /** bytes: how many bytes pass before the connection is closed. */
  limit_data: { bytes: 0 },
  noop: {},
} as const);

/** ToxicType is one of Toxiproxy's toxic names (`latency`, `bandwidth`, ...). */
export type ToxicType = keyof typeof TOXIC_ATTRIBUTES;

/** ToxicStream: `upstream` is client → target, `downstream` (the default) target → client. */
export type ToxicStream = 'upstream' | 'downstream';

/** Toxic is one toxic as the API shows it; frozen, replaced as a whole when it changes. */
export interface Toxic {
  readonly name: string;
  readonly type: ToxicType;
  readonly stream: ToxicStream;
  /** toxicity: the probability (0 to 1) that a new connection gets this toxic. */
  readonly toxicity: number;
  /** attributes: every attribute of `type`, as whole numbers (see TOXIC_ATTRIBUTES). */
  readonly attributes: Readonly<Record<string, number>>;
}

/** ToxicError is a refused toxic request: Toxiproxy's message and HTTP status. */
export class ToxicError extends Error {
  readonly status: 400 | 404 | 409;
  constructor(status: 400 | 404 | 409, message: string) {
    super(message);
    this.status = status;
  }
}

/** The errors of Toxiproxy's api.go that concern toxics, with their texts. */
export const toxicErrors = {
  badBody: (why: string) => new ToxicError(400, `bad request body: ${why}`),
  invalidStream: () =>
    new ToxicError(400, 'stream was invalid, can be either upstream or downstream'),
  invalidType: () => new ToxicError(400, 'invalid toxic type'),
  exists: () => new ToxicError(409, 'toxic already exists'),
  notFound: () => new ToxicError(404, 'toxic not found'),
};

/**
 * ToxicStore holds the toxics of one listener (a Toxiproxy "proxy"). The admin API
 * writes through it; the data path implements it (or wraps `MemoryToxicStore`) to
 * apply each change to open connections at once. Every method returns at once.
 */
export interface ToxicStore {
  /** list: the upstream toxics, then the downstream ones, each in the order added (Toxiproxy's order). */
  list(): readonly Toxic[];
  /** get: the toxic of that name, or undefined. */
  get(name: string): Toxic | undefined;
  /** add appends a toxic to its stream; throws ToxicError 409 when the name is taken. */
  add(toxic: Toxic): void;
  /** update replaces the toxic of the same name in place; throws ToxicError 404 if there is none. */
  update(toxic: Toxic): void;
  /** remove takes a toxic away; throws ToxicError 404 if there is none. */
  remove(name: string): void;
  /** reset removes every toxic. */
  reset(): void;
}

/** MemoryToxicStore keeps the toxics of one listener in memory, in Toxiproxy's order. */
export class MemoryToxicStore implements ToxicStore {
  readonly #upstream: Toxic[] = [];
  readonly #downstream: Toxic[] = [];

  list(): readonly Toxic[] {
    return [...this.#upstream, ...this.#downstream];
  }

  get(name: string): Toxic | undefined {
    return (
      this.#upstream.find((t) => t.name === name) ?? this.#downstream.find((t) => t.name === name)
    );
  }

  add(toxic: Toxic): void {
    if (this.get(toxic.name) !== undefined) throw toxicErrors.exists();
    this.#chain(toxic.stream).push(toxic);
  }

  update(toxic: Toxic): void {
    const old = this.get(toxic.name);
    if (old === undefined) throw toxicErrors.notFound();
    const chain = this.#chain(old.stream);
    // The stream never changes on update (Toxiproxy ignores it), so the place is kept.
    chain[chain.indexOf(old)] = toxic;
  }

  remove(name: string): void {
    const old = this.get(name);
    if (old === undefined) throw toxicErrors.notFound();
    const chain = this.#chain(old.stream);
    chain.splice(chain.indexOf(old), 1);
  }

  reset(): void {
    this.#upstream.length = 0;
    this.#downstream.length = 0;
  }

  #chain(stream: ToxicStream): Toxic[] {
    return stream === 'upstream' ? this.#upstream : this.#downstream;
  }
}

/**
 * parseToxic reads the body of `POST /proxies/{name}/toxics` (parsed JSON) into a
 * toxic, with Toxiproxy's defaults: `stream` downstream, `toxicity` 1, `name`
 * `<type>_<stream>`, attributes 0. `taken` says whether a name is in use (409 comes
 * before any error in the attributes, as in Toxiproxy). Throws ToxicError.
 */
export function parseToxic(body: unknown, taken: (name: string) => boolean): Toxic {
  const fields = objectBody(body, 'toxic');
  const name = optionalString(fields, 'name') ?? '';
  const type = optionalString(fields, 'type') ?? '';
  const streamText = optionalString(fields, 'stream') ?? 'downstream';
  const toxicity = toxicityOf(fields['toxicity'], 1);
  const stream = streamText.toLowerCase();
  if (stream !== 'upstream' && stream !== 'downstream') throw toxicErrors.invalidStream();
  if (!Object.hasOwn(TOXIC_ATTRIBUTES, type)) throw toxicErrors.invalidType();
  const toxicType = type as ToxicType;
  const toxicName = name === '' ? `${type}_${stream}` : name;
  if (taken(toxicName)) throw toxicErrors.exists();
  const attributes = attributesOf(toxicType, fields['attributes'], TOXIC_ATTRIBUTES[toxicType]);
  return Object.freeze({ name: toxicName, type: toxicType, stream, toxicity, attributes });
}

/**
 * updateToxic reads the body of `PATCH /proxies/{name}/toxics/{toxic}`: the
 * attributes given replace those of `old`, the others stay; `toxicity` replaces the
 * old one if given. Name, type and stream never change. Throws ToxicError 400.
 */
export function updateToxic(old: Toxic, body: unknown): Toxic {
  const fields = objectBody(body, 'toxic');
  const toxicity = toxicityOf(fields['toxicity'], old.toxicity);
  const attributes = attributesOf(old.type, fields['attributes'], old.attributes);
  return Object.freeze({ ...old, toxicity, attributes });
}

/** toxicJson is a toxic as Toxiproxy writes it, keys in its order. */
export function toxicJson(toxic: Toxic): Record<string, unknown> {
  return {
    attributes: toxic.attributes,
    name: toxic.name,
    type: toxic.type,
    stream: toxic.stream,
    toxicity: toxic.toxicity,
  };
}

function objectBody(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw toxicErrors.badBody(`expected a JSON object (a ${what}), got ${jsonKind(body)}`);
  }
  return body as Record<string, unknown>;
}

function optionalString(fields: Record<string, unknown>, key: string): string | undefined {
  const value = fields[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw toxicErrors.badBody(`${key}: expected a string, got ${jsonKind(value)}`);
  return value;
}

function toxicityOf(value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw toxicErrors.badBody(
      `toxicity: expected a number from 0 to 1, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function attributesOf(
  type: ToxicType,
  value: unknown,
  base: Readonly<Record<string, number>>,
): Readonly<Record<string, number>> {
  if (value === undefined || value === null) return Object.freeze({ ...base });
  const given = objectBody(value, `${type} attributes`);
  const result: Record<string, number> = { ...base };
  // Unknown attributes are ignored, as Go's decoder ignores unknown fields.
  for (const key of Object.keys(TOXIC_ATTRIBUTES[type])) {
    const n = given[key];
    if (n === undefined || n === null) continue;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw toxicErrors.badBody(
        `attributes.${key}: expected a whole number ≥ 0, got ${JSON.stringify(n)}`,
      );
    }
    result[key] = n;
  }
  return Object.freeze(result);
}

/** jsonKind names the JSON type of a value, for messages. */
export function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
