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
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SCHEMA_FILE, schemaText } from '../scripts/schema-validator.js';
import { STATUS_PAGE } from '../src/admin/status-page.js';
import { parseArgv, USAGE } from '../src/config/args.js';
import { DEFAULTS, type ListenerOptions, resolveConfig } from '../src/config/config.js';
import { parseConfigText } from '../src/config/file.js';
import { buildSchema } from '../src/config/json-schema.js';
import {
  cidr,
  duration,
  healthProbe,
  limit,
  list,
  OptionValueError,
  rate,
  switchSetting,
  tlsFiles,
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
import { routesKind } from '../src/config/routes-kind.js';
import { summarizeConfig } from '../src/config/summary.js';
import { toxicsKind } from '../src/config/toxics-kind.js';
import { AdminServer, createProxy } from '../src/index.js';
import { BALANCE_POLICIES } from '../src/upstream/balance.js';

/**
 * Sample is a value other than the default, as written (flag and file) and as held;
 * a switch's `text` is '' (its flag takes no value).
 */
interface Sample {
  text: string;
  file: unknown;
  value: unknown;
  /** with: other settings this one needs to be valid (a key needs its certificate). */
  with?: Record<string, unknown>;
}

// A real certificate and key (TLS settings name files, which the library reads).
const dir = mkdtempSync(join(tmpdir(), 'l4proxy-options-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CERT = join(dir, 'a.crt');
const KEY = join(dir, 'a.key');
execFileSync(
  'openssl',
  ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
    '-keyout',
    KEY,
    '-out',
    CERT,
    '-days',
    '2',
    '-subj',
    '/CN=a.example.com',
  ]),
  { stdio: 'ignore' },
);

/** TLS_SAMPLES: a file for each TLS setting, and the settings it needs beside it. */
const TLS_SAMPLES: Record<string, { value: unknown; with?: Record<string, unknown> }> = {
  tlsCert: { value: CERT, with: { tlsKey: KEY } },
  tlsKey: { value: KEY, with: { tlsCert: CERT } },
  tlsClientCa: { value: CERT, with: { tlsCert: CERT, tlsKey: KEY } },
  targetCa: { value: CERT, with: { targetTls: true } },
  targetServername: { value: 'db.example.com', with: { targetTls: true } },
  targetInsecure: { value: true, with: { targetTls: true } },
};

/** sampleOf gives each kind of setting a sample; a new kind must add its own here. */
function sampleOf(spec: SettingSpec, name: string): Sample {
  const tls = TLS_SAMPLES[name];
  if (tls !== undefined) {
    const text = tls.value === true ? '' : String(tls.value);
    return { text, file: tls.value, value: tls.value, ...(tls.with ? { with: tls.with } : {}) };
  }
  if (spec.kind === tlsFiles) {
    const value = { certs: [{ cert: CERT, key: KEY }] };
    return { text: '', file: value, value };
  }
  if (spec.kind === duration) return { text: '1500ms', file: '1500ms', value: 1500 };
  if (spec.kind === limit) return { text: '7', file: 7, value: 7 };
  if (spec.kind === switchSetting) return { text: '', file: true, value: true };
  if (spec.kind === rate) {
    return { text: '20/1s', file: '20/1s', value: { count: 20, periodMs: 1000 } };
  }
  if ('repeatable' in spec.kind && spec.kind.schema['items'] === cidr.schema) {
    return { text: '10.1.2.0/24', file: ['10.1.2.0/24'], value: ['10.1.2.0/24'] };
  }
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
    const sample = sampleOf(spec, name);

    test(`${name}: its flag is read into the listener, or overrides the file's defaults`, (t) => {
      if (spec.flag === undefined) return t.skip('config only');
      // A switch is the flag alone.
      const given = spec.kind.flagType === 'boolean' ? [] : [sample.text];
      const run = parseArgv([...BASE, `--${spec.flag}`, ...given]);
      assert.equal(run.kind, 'run');
      if (run.kind === 'run') assert.deepEqual(run.listener[name], sample.value);
      const written = given.length === 0 ? `--${spec.flag}` : `--${spec.flag}=${sample.text}`;
      const config = parseArgv(['--config', 'x.yaml', written]);
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
        { listen: 8080, targets: ['a:1'], ...sample.with, [name]: sample.value },
        { listen: 8081, targets: ['a:1'] },
      ]);
      assert.deepEqual(config.listeners[0]?.[name], sample.value);
      assert.deepEqual(config.listeners[1]?.[name], spec.default);
      assert.throws(
        () => resolveConfig([{ listen: 8080, targets: ['a:1'], [name]: { wrong: true } }]),
        // A list names its wrong item: `allow[0]: expected ...`.
        (err: Error) => new RegExp(`^${name}(\\[0\\])?: expected `).test(err.message),
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
    const given = Object.fromEntries(SETTING_NAMES.map((n) => [n, sampleOf(setting(n), n).value]));
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

/** StructuredSample is a config-only structured value: as written, its check lines, its JSON. */
interface StructuredSample {
  file: unknown;
  shown: string[];
  /** bad is a wrong value and the start of the library's message for it (its place inside). */
  bad: unknown;
  badMessage: string;
  /** with: the other keys a listener needs beside it (none for routes, which replace targets). */
  with?: Record<string, unknown>;
}

/** structuredSampleOf gives each structured kind a sample; a new kind must add its own here. */
function structuredSampleOf(spec: OptionSpec): StructuredSample {
  if (spec.kind === routesKind) {
    return {
      file: [{ sni: '*.example.com', targets: ['127.0.0.1:1'] }, { targets: ['127.0.0.1:2'] }],
      shown: ['sni *.example.com -> 127.0.0.1:1', 'default -> 127.0.0.1:2'],
      bad: [{ sni: 'a.*.com', targets: ['127.0.0.1:1'] }, { targets: ['127.0.0.1:2'] }],
      badMessage: 'routes[0].sni: "a.*.com": a wildcard',
    };
  }
  if (spec.kind === toxicsKind) {
    return {
      file: [{ name: 'slow', type: 'latency', attributes: { latency: 100 } }, { type: 'noop' }],
      shown: [
        'toxic slow: latency downstream (latency 100, jitter 0)',
        'toxic noop_downstream: noop downstream',
      ],
      bad: [{ type: 'latency', attributes: { latency: 1, lag: 2 } }],
      badMessage: 'toxics[0].attributes.lag: latency has no attribute "lag"',
      with: { targets: ['127.0.0.1:1'] },
    };
  }
  throw new Error(`no sample value for the kind of ${configKey(spec)}: add one`);
}

/** STRUCTURED: the config-only structured keys of a listener (a kind with fromFile, no flag). */
const STRUCTURED = ALL.filter(
  ([, spec]) => spec.flag === undefined && 'fromFile' in spec.kind && !('label' in spec),
);

describe('each config-only structured key of a listener', () => {
  test('there is one at least (routes)', () => {
    assert.ok(STRUCTURED.some(([name]) => name === 'routes'));
  });

  for (const [name, spec] of STRUCTURED) {
    const key = configKey(spec);
    const sample = structuredSampleOf(spec);
    const listener = { name: 'x', listen: 8080, ...sample.with, [key]: sample.file };

    test(`${name}: a listener's key in the schema (with its definitions), nowhere else`, () => {
      const schema = buildSchema() as { definitions: Record<string, unknown> };
      assert.ok(key in schemaProperties(schema, 'definitions', 'listener'));
      assert.ok(!(key in schemaProperties(schema, 'properties', 'defaults')));
      for (const definition of Object.keys(spec.kind.definitions ?? {}))
        assert.ok(definition in schema.definitions, `the definition ${definition}`);
      assert.ok(!USAGE.includes(`--${key.replace(/_/g, '-')} `), 'no flag');
    });

    test(`${name}: read from a listener in the file, refused in defaults`, () => {
      const settings = parseConfigText(JSON.stringify({ listeners: [listener] }), 'x.json');
      assert.deepEqual(
        (settings.listeners[0] as unknown as Record<string, unknown>)[name],
        sample.file,
      );
      assert.throws(
        () =>
          parseConfigText(
            JSON.stringify({ defaults: { [key]: sample.file }, listeners: [listener] }),
            'x.json',
          ),
        { message: /^x\.json:1:\d+ defaults\.\w+: unknown field/ },
      );
    });

    test(`${name}: the library checks it, naming the place inside; l4proxy check shows it`, () => {
      const config = resolveConfig([listener as ListenerOptions]);
      const lines = summarizeConfig('x.json', config).split('\n');
      for (const line of sample.shown) assert.ok(lines.includes(`    ${line}`), lines.join('\n'));
      assert.throws(
        () => resolveConfig([{ ...listener, [key]: sample.bad } as ListenerOptions]),
        (err: Error) => err.message.startsWith(sample.badMessage),
      );
    });
  }

  test('routes: GET /api/listeners gives each route with its targets, state and connections', async (t) => {
    const proxy = createProxy({
      listen: '127.0.0.1:0',
      routes: [
        { sni: 'a.example.com', targets: ['127.0.0.1:9', '127.0.0.1:10'] },
        { targets: ['127.0.0.1:10'] },
      ],
    });
    await proxy.listen();
    t.after(() => proxy.close({ graceful: false }));
    const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
    await admin.listen();
    t.after(() => admin.close());
    const base = `http://127.0.0.1:${admin.address()?.port}`;
    const drained = await fetch(`${base}/api/listeners/127.0.0.1:0/targets/127.0.0.1:10/drain`, {
      method: 'POST',
    });
    assert.equal(drained.status, 200);
    const [listener] = (await (await fetch(`${base}/api/listeners`)).json()) as {
      targets: { address: string; state: string }[];
      routes: { sni: string | null; targets: { address: string; state: string }[] }[];
    }[];
    const brief = (targets: { address: string; state: string }[]) =>
      targets.map((x) => `${x.address} ${x.state}`);
    assert.deepEqual(brief(listener?.targets ?? []), ['127.0.0.1:9 up', '127.0.0.1:10 drained']);
    assert.deepEqual(
      listener?.routes.map((r) => [r.sni, brief(r.targets)]),
      [
        ['a.example.com', ['127.0.0.1:9 up', '127.0.0.1:10 drained']],
        [null, ['127.0.0.1:10 drained']],
      ],
      'a drained target is drained in every route',
    );
  });
});
