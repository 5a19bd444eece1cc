/**
 * The option table (src/config/options.ts) against every place derived from it. The
 * tests walk the table, so a listener setting added there is checked everywhere at
 * once: its flag in --help and in parseArgv, its key in `defaults`, in a listener and
 * in the shipped schema, its default in DEFAULTS, the library's check, `l4proxy
 * check`'s line, /api/listeners (a real proxy and admin server on 127.0.0.1) and the
 * status page. A place that stopped deriving from the table, or a kind without a
 * sample value below, fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { SCHEMA_FILE, schemaText } from '../scripts/schema-validator.js';
import { STATUS_PAGE } from '../src/admin/status-page.js';
import { parseArgv, USAGE } from '../src/config/args.js';
import { DEFAULTS, resolveConfig } from '../src/config/config.js';
import { parseConfigText } from '../src/config/file.js';
import { buildSchema } from '../src/config/json-schema.js';
import {
  duration,
  healthProbe,
  limit,
  list,
  OptionValueError,
} from '../src/config/option-kinds.js';
import {
  configKey,
  jsonKey,
  OPTIONS,
  type OptionSpec,
  SETTING_NAMES,
  type SettingName,
  type SettingSpec,
  setting,
} from '../src/config/options.js';
import { summarizeConfig } from '../src/config/summary.js';
import { AdminServer, createProxy } from '../src/index.js';
import { BALANCE_POLICIES } from '../src/upstream/balance.js';

/** Sample is a value other than the default, as written (flag and file) and as held. */
interface Sample {
  text: string;
  file: unknown;
  value: unknown;
}

/** sampleOf gives each kind of setting a sample; a new kind must add its own here. */
function sampleOf(spec: SettingSpec): Sample {
  if (spec.kind === duration) return { text: '1500ms', file: '1500ms', value: 1500 };
  if (spec.kind === limit) return { text: '7', file: 7, value: 7 };
  if (spec.kind === healthProbe) {
    const probe = { send: 'PING', expect: 'PONG' };
    return { text: '', file: probe, value: probe };
  }
  if ('values' in spec.kind && Array.isArray(spec.kind.values)) {
    const word = String(spec.kind.values.find((v) => v !== spec.default));
    return { text: word, file: word, value: word };
  }
  throw new Error(`no sample value for the kind of ${spec.flag ?? configKey(spec)}: add one`);
}

const ALL = Object.entries(OPTIONS) as [string, OptionSpec][];
const BASE = ['--listen', '127.0.0.1:8080', '--target', '127.0.0.1:9000'];

function schemaProperties(schema: unknown, ...path: string[]): Record<string, unknown> {
  let node = schema as Record<string, unknown>;
  for (const part of path) node = node[part] as Record<string, unknown>;
  return node['properties'] as Record<string, unknown>;
}

describe('the option table', () => {
  test('every flag and config key is unique, and a key is the flag in snake_case unless named', () => {
    const flags = new Set<string>();
    for (const [name, spec] of ALL) {
      if (spec.flag !== undefined) {
        assert.ok(!flags.has(spec.flag), `--${spec.flag} twice`);
        flags.add(spec.flag);
        assert.ok(spec.help !== undefined, `--${spec.flag} has a help line`);
        if (spec.key === undefined) assert.equal(configKey(spec), spec.flag.replace(/-/g, '_'));
      } else {
        assert.ok(!spec.places.includes('cli'), `${name} is on the command line without a flag`);
        assert.ok(spec.key !== undefined, `${name} has neither flag nor key`);
      }
    }
    for (const place of ['defaults', 'listener', 'top', 'admin'] as const) {
      const keys = ALL.filter(([, s]) => s.places.includes(place)).map(([, s]) => configKey(s));
      assert.equal(new Set(keys).size, keys.length, `a key twice in ${place}`);
    }
  });

  test('a listener setting may be written in defaults and in a listener, and has a label and a default', () => {
    assert.ok(SETTING_NAMES.length >= 5, 'the settings of today are listed');
    for (const name of SETTING_NAMES) {
      const spec = setting(name);
      assert.ok(spec.places.includes('defaults') && spec.places.includes('listener'), name);
      assert.ok(spec.label !== '' && spec.brief !== '', `${name} has a label and a brief`);
      assert.ok('default' in spec, `${name} has a default`);
      if (spec.flag !== undefined) assert.ok(spec.kind.parseFlag, `--${spec.flag} can be read`);
    }
  });

  test('--help lists every flag, with its placeholder, in table order', () => {
    let from = 0;
    for (const [, spec] of ALL) {
      if (spec.flag === undefined) continue;
      const metavar = spec.metavar ?? spec.kind.metavar;
      const line = `--${spec.flag}${metavar === '' ? '' : ` ${metavar}`} `;
      const at = USAGE.indexOf(line, from);
      assert.ok(at > 0, `--help lists ${line.trim()} after the flags before it`);
      assert.ok(USAGE.includes((spec.help ?? '').split('\n')[0] ?? ''), `its help: ${spec.flag}`);
      if (spec.short !== undefined) assert.ok(USAGE.includes(`-${spec.short}, --${spec.flag}`));
      from = at;
    }
  });

  test('the shipped schema is the one the table builds, with every key where the table puts it', () => {
    assert.ok(
      readFileSync(SCHEMA_FILE, 'utf8') === schemaText(),
      'schema/proxy.schema.json is stale: run `npm run generate`',
    );
    const schema = buildSchema();
    const where = {
      defaults: schemaProperties(schema, 'properties', 'defaults'),
      listener: schemaProperties(schema, 'definitions', 'listener'),
      top: schemaProperties(schema),
      admin: schemaProperties(schema, 'properties', 'admin'),
    };
    const sections = ['defaults', 'listeners', 'admin'];
    for (const [place, properties] of Object.entries(where)) {
      const keys = ALL.filter(([, spec]) => spec.places.includes(place as keyof typeof where));
      assert.deepEqual(
        Object.keys(properties).filter((key) => place !== 'top' || !sections.includes(key)),
        keys.map(([, spec]) => configKey(spec)),
        `the keys of ${place}, in table order`,
      );
      for (const [name, spec] of keys) {
        const { description } = properties[configKey(spec)] as { description?: string };
        const says = description?.endsWith('A reload does not change it.') === true;
        assert.equal(says, !spec.reload, `${name}'s description says whether a reload changes it`);
      }
    }
  });
});

describe('each listener setting', () => {
  for (const name of SETTING_NAMES) {
    const spec = setting(name);
    const key = configKey(spec);
    const sample = sampleOf(spec);

    test(`${name}: its flag is read into the listener, or overrides the file's defaults`, (t) => {
      if (spec.flag === undefined) return t.skip('config only');
      const run = parseArgv([...BASE, `--${spec.flag}`, sample.text]);
      assert.equal(run.kind, 'run');
      if (run.kind === 'run') assert.deepEqual(run.listener[name], sample.value);
      const config = parseArgv(['--config', 'x.yaml', `--${spec.flag}=${sample.text}`]);
      assert.equal(config.kind, 'config');
      if (config.kind === 'config') assert.deepEqual(config.overrides[name], sample.value);
    });

    test(`${name}: its key is read from defaults and from a listener`, () => {
      const listener = { listen: 8080, targets: ['a:1'] };
      for (const file of [
        { defaults: { [key]: sample.file }, listeners: [listener] },
        { listeners: [{ ...listener, [key]: sample.file }] },
      ]) {
        const settings = parseConfigText(JSON.stringify(file), 'x.json');
        assert.deepEqual(settings.listeners[0]?.[name], sample.value);
      }
      const unset = parseConfigText(JSON.stringify({ listeners: [listener] }), 'x.json');
      assert.equal(unset.listeners[0]?.[name], undefined);
    });

    test(`${name}: the library checks it and defaults it, and l4proxy check shows it`, () => {
      assert.deepEqual(DEFAULTS[name], spec.default);
      const config = resolveConfig([
        { listen: 8080, targets: ['a:1'], [name]: sample.value },
        { listen: 8081, targets: ['a:1'] },
      ]);
      assert.deepEqual(config.listeners[0]?.[name], sample.value);
      assert.deepEqual(config.listeners[1]?.[name], spec.default);
      assert.throws(
        () => resolveConfig([{ listen: 8080, targets: ['a:1'], [name]: { wrong: true } }]),
        (err: Error) => err.message.startsWith(`${name}: expected `),
      );
      const lines = summarizeConfig('x.json', config).split('\n');
      assert.ok(lines[2]?.includes(`${spec.brief} ${spec.kind.show(sample.value)}`), lines[2]);
      assert.ok(lines[4]?.includes(`${spec.brief} ${spec.kind.show(spec.default)}`), lines[4]);
    });

    test(`${name}: the status page shows it under its label`, () => {
      const entry = JSON.stringify({
        key: jsonKey(name),
        label: spec.label,
        format: spec.kind.page,
      });
      assert.ok(STATUS_PAGE.includes(entry), `the page's SETTINGS hold ${entry}`);
    });
  }

  test('GET /api/listeners and listenerInfo() give every setting', async (t) => {
    const given = Object.fromEntries(SETTING_NAMES.map((n) => [n, sampleOf(setting(n)).value]));
    const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9'], ...given });
    await proxy.listen();
    t.after(() => proxy.close({ graceful: false }));
    const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
    await admin.listen();
    t.after(() => admin.close());
    const response = await fetch(`http://127.0.0.1:${admin.address()?.port}/api/listeners`);
    const [listener] = (await response.json()) as Record<string, unknown>[];
    const [info] = await proxy.listenerInfo();
    for (const name of SETTING_NAMES as SettingName[]) {
      const json = setting(name).kind.toJson(given[name]);
      assert.deepEqual(listener?.[jsonKey(name)], json, `/api/listeners ${jsonKey(name)}`);
      assert.deepEqual(info?.[name], json, `listenerInfo() ${name}`);
    }
  });
});

describe('the balancing and health options', () => {
  test('--balance offers exactly the policies upstream/balance.ts implements', () => {
    assert.deepEqual(OPTIONS.balance.kind.values, BALANCE_POLICIES);
  });
});

describe('kinds for the options to come', () => {
  test('list(kind): each flag value read into a list, the file a list, the library checked item by item', () => {
    const kind = list(duration);
    assert.equal(kind.repeatable, true);
    assert.deepEqual(kind.parseFlag?.('30s'), [30_000]);
    assert.throws(() => kind.parseFlag?.('30x'), OptionValueError);
    assert.deepEqual(kind.fromFile(['1s', 5]), [1000, 5]);
    assert.deepEqual(kind.check([1, 2], []), [1, 2]);
    assert.deepEqual(kind.check(undefined, []), []);
    assert.throws(() => kind.check([1, -1], []), /milliseconds >= 0, got -1/);
    assert.equal(kind.show([1000, 60_000]), '1s 1m');
    assert.equal(kind.show([]), 'none');
    assert.deepEqual(kind.schema, { type: 'array', items: duration.schema });
    assert.deepEqual(list(duration, 1).schema, {
      type: 'array',
      minItems: 1,
      items: duration.schema,
    });
  });
});
