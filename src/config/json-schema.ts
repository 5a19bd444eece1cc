/**
 * The JSON Schema of the config file, built from the option table (config/options.ts).
 * Used at build time only: scripts/schema-validator.ts writes it to
 * schema/proxy.schema.json (shipped, for editors) and compiles it into
 * config/schema-validator.ts, which file.ts runs. Nothing imports this at run time.
 *
 * An option's place in the table decides where its key is allowed (`defaults`, each
 * listener, the top level, the `admin` section); its kind gives the value's schema,
 * and `description` what editors show. The sections themselves are described here.
 */
import type { JsonSchema } from './option-kinds.js';
import { configKey, OPTIONS, type OptionSpec, optionsIn, type Place } from './options.js';

/** buildSchema returns the config file's JSON Schema (draft-07). */
export function buildSchema(): JsonSchema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://proxy.invalid/schema/proxy.schema.json',
    title: 'proxy configuration file',
    description:
      'Listeners and their targets for the `proxy` command (`proxy --config FILE`). Keys are the long command-line flag names in snake_case; durations and addresses are written as on the command line.',
    type: 'object',
    additionalProperties: false,
    required: ['listeners'],
    properties: {
      defaults: section(
        'defaults',
        'Options that apply to every listener that does not set its own. Command-line flags override these.',
      ),
      listeners: {
        description: 'One entry per listening address.',
        type: 'array',
        minItems: 1,
        items: { $ref: '#/definitions/listener' },
      },
      ...properties('top'),
      admin: section(
        'admin',
        'The admin HTTP server (JSON API, Prometheus metrics at /metrics, status page at /). Off unless set. The --admin and --admin-token-file flags override it; --admin-host adds to its hosts.',
      ),
    },
    definitions: { ...definitions(), listener: section('listener') },
  };
}

/** NO_RELOAD ends the description of an option that a reload does not change. */
const NO_RELOAD = 'A reload does not change it.';

/** section is the schema of a mapping holding the options of `place`. */
function section(place: Place, description?: string): JsonSchema {
  const required = optionsIn(place)
    .filter(([, spec]) => spec.required === true)
    .map(([, spec]) => configKey(spec));
  // A key required unless another is there: `if` the other is there, fine, `else` it is
  // required. (Each names its key in `properties` too, as ajv's strictRequired asks.)
  const unless = optionsIn(place).flatMap(([, spec]) => {
    if (typeof spec.required !== 'object') return [];
    const [other, key] = [spec.required.unless, configKey(spec)];
    return [
      {
        if: { properties: { [other]: true }, required: [other] },
        else: { properties: { [key]: true }, required: [key] },
      },
    ];
  });
  return {
    ...(description === undefined ? {} : { description }),
    type: 'object',
    additionalProperties: false,
    ...(required.length === 0 ? {} : { required }),
    properties: properties(place),
    ...(unless.length === 0 ? {} : unless.length === 1 ? unless[0] : { allOf: unless }),
  };
}

function properties(place: Place): Record<string, JsonSchema> {
  return Object.fromEntries(
    optionsIn(place).map(([, spec]) => [configKey(spec), optionSchema(spec)]),
  );
}

/** optionSchema is its kind's schema, with its description (saying if a reload leaves it). */
function optionSchema(spec: OptionSpec): JsonSchema {
  const text = spec.reload ? spec.description : `${spec.description ?? ''} ${NO_RELOAD}`.trim();
  return { ...(text === undefined ? {} : { description: text }), ...spec.kind.schema };
}

/** definitions gathers the shared definitions the kinds in the table refer to. */
function definitions(): Record<string, JsonSchema> {
  const all: Record<string, JsonSchema> = {};
  for (const spec of Object.values(OPTIONS) as OptionSpec[])
    Object.assign(all, spec.kind.definitions);
  return all;
}

/**
 * formatSchema writes `schema` as Biome formats JSON: two spaces, every object
 * expanded, a list of plain values on one line when it fits in 100 columns.
 */
export function formatSchema(schema: JsonSchema): string {
  return `${formatValue(schema, '', 0)}\n`;
}

/** formatValue writes `value` at `indent`, after `prefix` characters of its line (its key). */
function formatValue(value: unknown, indent: string, prefix: number): string {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    const items = value.map((item) => formatValue(item, inner, inner.length));
    const flat = `[${items.join(', ')}]`;
    const plain = value.every((item) => item === null || typeof item !== 'object');
    // The line as Biome counts it: the key before, a comma after.
    if (plain && prefix + flat.length + 1 <= 100) return flat;
    return `[\n${items.map((item) => `${inner}${item}`).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([key, item]) => {
      const head = `${inner}${JSON.stringify(key)}: `;
      return `${head}${formatValue(item, inner, head.length)}`;
    });
    return `{\n${entries.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}
