/**
 * The kind of a listener's `toxics` (fault injection, docs/faults.md): a list of
 * toxics as Toxiproxy's API takes them, `[{ name?, type, stream?, toxicity?,
 * attributes? }]`, that act from the start. Its schema, the checks of a config file's
 * and a library caller's value (strict: an attribute the type does not have is an
 * error; every message with its place in the list: `[1].attributes.latency`), and its
 * lines in `l4proxy check`. The rules of one toxic are faults/toxic.ts's. Pure.
 */
import {
  parseToxic,
  TOXIC_TYPES,
  type Toxic,
  type ToxicDefinition,
  ToxicError,
} from '../faults/toxic.js';
import { type JsonSchema, OptionValueError, type StructuredKind } from './option-kinds.js';

export type { Toxic, ToxicDefinition } from '../faults/toxic.js';

const FIELDS = ['name', 'type', 'stream', 'toxicity', 'attributes'];

const TOXIC_SCHEMA: JsonSchema = {
  description:
    "A toxic, as Toxiproxy's API takes it: it acts on the listener's connections from the start.",
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    name: { description: 'Unique in the listener. Default: <type>_<stream>.', type: 'string' },
    type: { type: 'string', enum: [...TOXIC_TYPES] },
    stream: {
      description: 'upstream (client to target) or downstream (target to client; the default).',
      type: 'string',
    },
    toxicity: {
      description: 'The probability (0 to 1) that a connection gets the toxic. Default 1.',
      type: 'number',
      minimum: 0,
      maximum: 1,
    },
    attributes: {
      description: "The type's attributes (docs/faults.md), whole numbers; one not given is 0.",
      type: 'object',
      additionalProperties: { type: 'integer', minimum: 0 },
    },
  },
};

/** toxicsKind: a listener's `toxics`, config only (see the module comment). */
export const toxicsKind: StructuredKind<ToxicDefinition[], Toxic[]> = {
  metavar: 'TOXICS',
  flagType: 'string',
  schema: { type: 'array', items: { $ref: '#/definitions/toxic' } },
  definitions: { toxic: TOXIC_SCHEMA },
  fromFile(value) {
    toxicsKind.check(value);
    return value as ToxicDefinition[];
  },
  check(value) {
    if (!Array.isArray(value))
      throw new OptionValueError('expected a list of toxics like [{ type: latency, ... }]');
    const names = new Map<string, number>();
    return value.map((given: unknown, i) => {
      const toxic = checkToxic(given, i);
      const first = names.get(toxic.name);
      if (first !== undefined)
        throw new OptionValueError(
          `duplicate toxic name ${JSON.stringify(toxic.name)} (also toxics[${first}])`,
          [i, 'name'],
        );
      names.set(toxic.name, i);
      return toxic;
    });
  },
  show: (toxics) => toxics.map(showToxic),
};

/** showToxic writes a toxic as `l4proxy check` does: `toxic slow: latency downstream (latency 100, jitter 0)`. */
export function showToxic(toxic: Toxic): string {
  const attributes = Object.entries(toxic.attributes).map(([key, n]) => `${key} ${n}`);
  const toxicity = toxic.toxicity === 1 ? [] : [`toxicity ${toxic.toxicity}`];
  const details = [...attributes, ...toxicity];
  const more = details.length === 0 ? '' : ` (${details.join(', ')})`;
  return `toxic ${toxic.name}: ${toxic.type} ${toxic.stream}${more}`;
}

/** checkToxic validates one toxic strictly; an error names its place inside the list. */
function checkToxic(value: unknown, i: number): Toxic {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new OptionValueError('expected a toxic like { type: latency, attributes: {...} }', [i]);
  const given = value as { readonly [key: string]: unknown };
  for (const key of Object.keys(given))
    if (!FIELDS.includes(key))
      throw new OptionValueError(`unknown field ${key} (a toxic has ${FIELDS.join(', ')})`, [i]);
  try {
    return parseToxic(given, { strict: true });
  } catch (err) {
    if (!(err instanceof ToxicError)) throw err;
    throw new OptionValueError(whatOf(err.message), [i, ...placeOf(err.message, given)]);
  }
}

/** whatOf drops parseToxic's `toxic "NAME": ` prefix: the place says which toxic. */
function whatOf(message: string): string {
  return message.replace(/^toxic( "(?:[^"\\]|\\.)*")?: /, '');
}

/** placeOf finds the field a parseToxic message is about (`attributes.latency`, `stream`, ...). */
function placeOf(message: string, given: { readonly [key: string]: unknown }): string[] {
  const attribute =
    /attribute "?(\w+)"? /.exec(message)?.[1] ?? /has no attribute "(\w+)"/.exec(message)?.[1];
  if (attribute !== undefined) return ['attributes', attribute];
  for (const field of ['stream', 'type', 'name', 'toxicity', 'attributes'])
    if (new RegExp(`: ${field} must`).test(message) && field in given) return [field];
  return [];
}
