/**
 * The config file parser: good files become listener options; every kind of bad
 * file is refused with one line naming file:line:column and the field path.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { resolveConfig } from '../src/config/config.js';
import { parseConfigText, readConfigFile } from '../src/config/file.js';
import { ProxyError } from '../src/errors.js';

const fixture = (name: string): string =>
  fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));
const example = fileURLToPath(new URL('../examples/proxy.yaml', import.meta.url));

function configError(text: string, overrides = {}): string {
  try {
    parseConfigText(text, 'proxy.yaml', overrides);
  } catch (err) {
    assert.ok(err instanceof ProxyError, `a ProxyError, got ${String(err)}`);
    assert.equal(err.code, 'PROXY_ERR_INVALID_CONFIG');
    assert.ok(!err.message.includes('\n'), `one line: ${JSON.stringify(err.message)}`);
    return err.message;
  }
  assert.fail('expected the config to be refused');
}

describe('a good config file', () => {
  test('the example in examples/ is valid and resolves', () => {
    const settings = readConfigFile(example);
    const config = resolveConfig(settings.listeners);
    assert.deepEqual(
      config.listeners.map((l) => l.name),
      ['web', 'db', 'local-api'],
    );
    const web = config.listeners[0];
    assert.equal(web?.idleTimeoutMs, 30_000);
    assert.equal(web?.connectTimeoutMs, 5000, 'from defaults');
    assert.equal(web?.maxConnections, 1000);
    assert.deepEqual(
      web?.targets.map((t) => [t.address, t.weight]),
      [
        ['127.0.0.1:9000', 1],
        ['127.0.0.1:9001', 2],
      ],
    );
    assert.equal(config.listeners[2]?.listen.path, '/tmp/proxy-example-api.sock');
    assert.equal(settings.logLevel, 'info');
    assert.equal(settings.logFormat, 'text');
  });

  test('a listener is named after its listen string by default; bare numbers are milliseconds', () => {
    const settings = parseConfigText(
      'listeners:\n  - listen: 8080\n    targets: [a.example:1]\n    idle_timeout: 1500\n',
      'p.yaml',
    );
    assert.equal(settings.listeners[0]?.name, '8080');
    assert.equal(settings.listeners[0]?.idleTimeoutMs, 1500);
  });

  test('JSON is accepted, being YAML', () => {
    const settings = parseConfigText(
      JSON.stringify({ listeners: [{ listen: '127.0.0.1:1', targets: ['127.0.0.1:2'] }] }),
      'p.json',
    );
    assert.equal(settings.listeners.length, 1);
  });

  test('command-line flags override defaults but not a listener’s own values', () => {
    const text = `defaults:
  idle_timeout: 0
  connect_timeout: 5s
listeners:
  - name: own
    listen: 127.0.0.1:1
    targets: [127.0.0.1:2]
    idle_timeout: 30s
  - name: inherits
    listen: 127.0.0.1:3
    targets: [127.0.0.1:4]
`;
    const settings = parseConfigText(text, 'p.yaml', { idleTimeoutMs: 200 });
    const [own, inherits] = settings.listeners;
    assert.equal(own?.idleTimeoutMs, 30_000);
    assert.equal(inherits?.idleTimeoutMs, 200);
    assert.equal(inherits?.connectTimeoutMs, 5000);
  });
});

// Each bad file and the exact one-line message it must produce.
const BAD: [what: string, text: string, message: string][] = [
  [
    'an unknown field, at its key',
    'listeners:\n  - listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9000]\n    idel_timeout: 30s\n',
    'proxy.yaml:4:5 listeners[0].idel_timeout: unknown field',
  ],
  [
    'an unknown top-level field',
    'listener:\n  - listen: 1\n',
    'proxy.yaml:1:1 listener: unknown field',
  ],
  [
    'a wrong type',
    'listeners:\n  - listen: 127.0.0.1:8080\n    targets: 127.0.0.1:9000\n',
    'proxy.yaml:3:14 listeners[0].targets: expected a list, got "127.0.0.1:9000"',
  ],
  [
    'a malformed duration',
    'defaults:\n  connect_timeout: 5x\nlisteners:\n  - listen: 1\n    targets: [a:1]\n',
    'proxy.yaml:2:20 defaults.connect_timeout: expected a duration like 30s, 1500ms or 0, got "5x"',
  ],
  [
    'a malformed address',
    'listeners:\n  - listen: 127.0.0.1:8080\n    targets:\n      - 127.0.0.1:9000\n      - 127.0.0.1:70000\n',
    'proxy.yaml:5:9 listeners[0].targets[1]: port must be 1 to 65535, got 70000',
  ],
  [
    'an IPv6 target without brackets, inside an object',
    'listeners:\n  - listen: 1\n    targets:\n      - address: ::1:80\n        weight: 2\n',
    'proxy.yaml:4:18 listeners[0].targets[0].address: an IPv6 address needs brackets, like [::1]:8080, got "::1:80"',
  ],
  [
    'an empty target list',
    'listeners:\n  - listen: 8080\n    targets: []\n',
    'proxy.yaml:3:14 listeners[0].targets: expected at least one entry',
  ],
  [
    'a missing field',
    'listeners:\n  - listen: 8080\n',
    'proxy.yaml:2:5 listeners[0]: missing field "targets"',
  ],
  [
    'two listeners on the same address',
    'listeners:\n  - listen: 8080\n    targets: [a:1]\n  - name: two\n    listen: 8080\n    targets: [a:1]\n',
    'proxy.yaml:5:13 listeners[1].listen: address 8080 is already used by listeners[0]',
  ],
  [
    'two listeners with the same name',
    'listeners:\n  - name: x\n    listen: 1\n    targets: [a:1]\n  - name: x\n    listen: 2\n    targets: [a:1]\n',
    'proxy.yaml:5:11 listeners[1].name: duplicate listener name "x" (also listeners[0])',
  ],
  [
    'a weight of zero',
    'listeners:\n  - listen: 1\n    targets:\n      - address: a:1\n        weight: 0\n',
    'proxy.yaml:5:17 listeners[0].targets[0].weight: expected a whole number >= 1, got 0',
  ],
  [
    'a bad log level',
    'defaults:\n  log_level: loud\nlisteners:\n  - listen: 1\n    targets: [a:1]\n',
    'proxy.yaml:2:14 defaults.log_level: expected one of error, warn, info, debug, trace, got "loud"',
  ],
  [
    'a duplicate key',
    'listeners:\n  - listen: 1\n    listen: 2\n    targets: [a:1]\n',
    'proxy.yaml:3:5: Map keys must be unique',
  ],
  [
    'broken YAML',
    'listeners: [\n',
    'proxy.yaml:2:1: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ],
  ['an empty file', '', 'proxy.yaml:1:1: the file is empty; expected listeners'],
];

describe('a bad config file', () => {
  for (const [what, text, message] of BAD) {
    test(`refuses ${what} with file:line:column and the field path`, () => {
      assert.equal(configError(text), message);
    });
  }

  test('names the file as given, for fixtures read from disk', () => {
    const file = fixture('unknown-field.yaml');
    assert.throws(() => readConfigFile(file), {
      code: 'PROXY_ERR_INVALID_CONFIG',
      message: `${file}:4:5 listeners[0].idel_timeout: unknown field`,
    });
    const other = fixture('bad-port.yaml');
    assert.throws(() => readConfigFile(other), {
      message: `${other}:8:9 listeners[0].targets[1]: port must be 1 to 65535, got 70000`,
    });
  });

  test('a missing file is an error naming the file', () => {
    assert.throws(() => readConfigFile('/nonexistent/proxy.yaml'), {
      code: 'PROXY_ERR_INVALID_CONFIG',
      message: '/nonexistent/proxy.yaml: cannot read the config file: no such file',
    });
  });
});

describe('properties', () => {
  const VALID = `defaults:
  connect_timeout: 5s
  idle_timeout: 0
listeners:
  - name: web
    listen: 127.0.0.1:8080
    targets:
      - 127.0.0.1:9000
      - address: 127.0.0.1:9001
        weight: 2
    idle_timeout: 30s
    max_connections: 1000
`;

  test('random edits of a valid file either parse or fail with a positioned one-line error', () => {
    const position = /^proxy\.yaml:\d+:\d+[ :]/;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: VALID.length }),
        fc.integer({ min: 0, max: 8 }),
        fc.string({ maxLength: 8 }),
        (at, cut, insert) => {
          const text = VALID.slice(0, at) + insert + VALID.slice(Math.min(VALID.length, at + cut));
          try {
            const settings = parseConfigText(text, 'proxy.yaml');
            // What parses must also resolve into a Config, or fail with a ProxyError.
            try {
              resolveConfig(settings.listeners);
            } catch (err) {
              assert.ok(err instanceof ProxyError);
            }
          } catch (err) {
            assert.ok(err instanceof ProxyError, `not a ProxyError: ${String(err)}`);
            assert.match(err.message, position);
            assert.ok(!err.message.includes('\n'), JSON.stringify(err.message));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('any text at all either parses or fails with a ProxyError, never a crash', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (text) => {
        try {
          parseConfigText(text, 'p.yaml');
        } catch (err) {
          assert.ok(err instanceof ProxyError, `not a ProxyError: ${String(err)}`);
        }
      }),
      { numRuns: 200 },
    );
  });
});
