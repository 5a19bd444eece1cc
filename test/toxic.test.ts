/**
 * Toxic definitions (src/faults/toxic.ts) and the registry's list and toxicity
 * (src/faults/registry.ts), without sockets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { seededRandom } from '../src/faults/env.js';
import { ToxicRegistry } from '../src/faults/registry.js';
import {
  apiText,
  parseToxic,
  TOXIC_TYPES,
  ToxicError,
  toxicJson,
  updateToxic,
} from '../src/faults/toxic.js';

test('defaults are Toxiproxy’s: stream downstream, name <type>_<stream>, toxicity 1, attributes 0', () => {
  assert.deepEqual(parseToxic({ type: 'latency' }), {
    name: 'latency_downstream',
    type: 'latency',
    stream: 'downstream',
    toxicity: 1,
    attributes: { latency: 0, jitter: 0 },
  });
  assert.deepEqual(parseToxic({ type: 'bandwidth', stream: 'UPSTREAM', attributes: { rate: 5 } }), {
    name: 'bandwidth_upstream',
    type: 'bandwidth',
    stream: 'upstream',
    toxicity: 1,
    attributes: { rate: 5 },
  });
  assert.deepEqual(parseToxic({ type: 'slicer', name: '', attributes: { average_size: 10 } }), {
    name: 'slicer_downstream',
    type: 'slicer',
    stream: 'downstream',
    toxicity: 1,
    attributes: { average_size: 10, size_variation: 0, delay: 0 },
  });
  for (const type of TOXIC_TYPES) {
    if (type === 'slicer') continue;
    const toxic = parseToxic({ type, toxicity: 0.25 });
    assert.equal(toxic.toxicity, 0.25);
    assert.ok(Object.values(toxic.attributes).every((v) => v === 0));
    assert.ok(Object.isFrozen(toxic));
  }
  // Unknown attributes are ignored, as Toxiproxy does; strict (config files) refuses them.
  assert.deepEqual(parseToxic({ type: 'noop', attributes: { x: 1 } }).attributes, {});
  assert.throws(
    () => parseToxic({ type: 'latency', attributes: { latenci: 1 } }, { strict: true }),
    /latency has no attribute "latenci" \(expected latency, jitter\)/,
  );
});

test('a bad toxic gets a one-line error naming the field or attribute, and Toxiproxy’s error and status', () => {
  const cases: [unknown, RegExp, string][] = [
    [null, /: toxic: expected an object/, 'bad request body'],
    [
      { type: 'latency', stream: 'sideways' },
      /stream must be upstream or downstream, got "sideways"/,
      'stream was invalid, can be either upstream or downstream',
    ],
    [
      { type: 'lag' },
      /toxic "lag_downstream": type must be one of latency, bandwidth, .*got "lag"/,
      'invalid toxic type',
    ],
    [{}, /type must be one of .*got nothing/, 'invalid toxic type'],
    [
      { type: 'latency', attributes: { latency: -1 } },
      /toxic "latency_downstream": attribute latency must be a whole number of milliseconds, at least 0, got -1/,
      'bad request body',
    ],
    [
      { type: 'latency', attributes: { jitter: '5' } },
      /attribute jitter must be a whole number of milliseconds, at least 0, got "5"/,
      'bad request body',
    ],
    [
      { type: 'bandwidth', attributes: { rate: 1.5 } },
      /attribute rate must be a whole number of KB\/s/,
      'bad request body',
    ],
    [
      { type: 'slicer' },
      /attribute average_size must be a whole number of bytes, at least 1, got 0/,
      'bad request body',
    ],
    [
      { type: 'slicer', attributes: { average_size: 10, size_variation: 10 } },
      /size_variation must be smaller than average_size \(10\), got 10/,
      'bad request body',
    ],
    [
      { type: 'slicer', attributes: { average_size: 10, delay: -3 } },
      /attribute delay must be a whole number of microseconds/,
      'bad request body',
    ],
    [
      { type: 'limit_data', attributes: { bytes: null, x: 1 }, toxicity: 2 },
      /toxicity must be a number from 0 to 1, got 2/,
      'bad request body',
    ],
    [{ type: 'noop', name: 5 }, /name must be a string, got 5/, 'bad request body'],
    [
      { type: 'noop', attributes: [1] },
      /attributes must be an object, got \[1\]/,
      'bad request body',
    ],
  ];
  for (const [input, message, toxiproxyError] of cases) {
    assert.throws(
      () => parseToxic(input, { where: 'proxy.yaml: listeners[0].toxics[0]' }),
      (err: unknown) => {
        assert.ok(err instanceof ToxicError);
        assert.equal(err.code, 'PROXY_ERR_TOXIC_INVALID');
        assert.equal(err.status, 400);
        assert.match(err.message, message);
        assert.ok(err.message.startsWith('proxy.yaml: listeners[0].toxics[0]: toxic'), err.message);
        assert.ok(!err.message.includes('\n'));
        assert.equal(err.toxiproxyError, toxiproxyError);
        return true;
      },
    );
  }
});

test('any JSON value gives a toxic or a ToxicError, never another exception', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue(),
        fc.record(
          {
            type: fc.constantFrom(...TOXIC_TYPES, 'x'),
            name: fc.oneof(fc.string(), fc.integer()),
            stream: fc.constantFrom('upstream', 'downstream', 'x'),
            toxicity: fc.double(),
            attributes: fc.dictionary(
              fc.constantFrom(
                'latency',
                'jitter',
                'rate',
                'average_size',
                'size_variation',
                'bytes',
              ),
              fc.oneof(fc.integer(), fc.double(), fc.string()),
            ),
          },
          { requiredKeys: [] },
        ),
      ),
      (input) => {
        try {
          parseToxic(input);
        } catch (err) {
          assert.ok(err instanceof ToxicError, String(err));
          assert.ok(!err.message.includes('\n'));
        }
      },
    ),
  );
});

test('checks run in Toxiproxy’s order (stream, type, name taken, attributes); apiText is Toxiproxy’s text', () => {
  const refusal = (body: unknown, taken = (_: string) => false): [number, string] => {
    try {
      parseToxic(body, { taken });
      return [200, ''];
    } catch (err) {
      assert.ok(err instanceof ToxicError);
      return [err.status, apiText(err)];
    }
  };
  assert.deepEqual(refusal({ type: 'nope', stream: 'x' }), [
    400,
    'stream was invalid, can be either upstream or downstream',
  ]);
  assert.deepEqual(refusal({ type: 'nope' }), [400, 'invalid toxic type']);
  // A name in use is a 409 even when the attributes are bad too, as in Toxiproxy.
  const bad = { type: 'latency', attributes: { latency: 'x' } };
  assert.deepEqual(
    refusal(bad, (name) => name === 'latency_downstream'),
    [409, 'toxic already exists'],
  );
  const [status, text] = refusal(bad);
  assert.equal(status, 400);
  assert.match(text, /^bad request body: toxic "latency_downstream": attribute latency must be/);
  assert.deepEqual(refusal({ type: 'latency', attributes: { latency: 10, unknown: 'x' } }), [
    200,
    '',
  ]);
});

test('an update changes toxicity and the attributes given, and keeps the rest', () => {
  const toxic = parseToxic({ type: 'latency', attributes: { latency: 100, jitter: 5 } });
  const updated = updateToxic(toxic, {
    attributes: { jitter: 7 },
    stream: 'upstream', // ignored, as in Toxiproxy
  });
  assert.deepEqual(updated, { ...toxic, attributes: { latency: 100, jitter: 7 } });
  assert.equal(updateToxic(toxic, { toxicity: 0.5 }).toxicity, 0.5);
  assert.throws(() => updateToxic(toxic, { attributes: { latency: -5 } }), /attribute latency/);
  // Name, type and stream never change; toxicJson writes Toxiproxy's keys in its order.
  const renamed = updateToxic(toxic, { name: 'other', type: 'noop', attributes: { latency: 1 } });
  assert.deepEqual(Object.entries(toxicJson(renamed)), [
    ['attributes', { latency: 1, jitter: 5 }],
    ['name', 'latency_downstream'],
    ['type', 'latency'],
    ['stream', 'downstream'],
    ['toxicity', 1],
  ]);
});

test('the registry lists upstream toxics first, each stream in the order added; names are unique', () => {
  const registry = new ToxicRegistry();
  registry.add({ type: 'latency' });
  registry.add({ type: 'noop', stream: 'upstream', name: 'a' });
  registry.add({ type: 'timeout', stream: 'upstream' });
  assert.deepEqual(
    registry.list().map((t) => t.name),
    ['a', 'timeout_upstream', 'latency_downstream'],
  );
  assert.throws(
    () => registry.add({ type: 'noop', name: 'a' }),
    (err: unknown) =>
      err instanceof ToxicError && err.code === 'PROXY_ERR_TOXIC_EXISTS' && err.status === 409,
  );
  assert.throws(
    () => registry.remove('nope'),
    (err: unknown) =>
      err instanceof ToxicError && err.code === 'PROXY_ERR_TOXIC_NOT_FOUND' && err.status === 404,
  );
  assert.throws(() => registry.update('nope', {}), /toxic "nope" not found/);
  assert.equal(registry.update('a', { toxicity: 0.5 }).toxicity, 0.5);
  assert.deepEqual(
    registry.list().map((t) => [t.name, t.toxicity]),
    [
      ['a', 0.5],
      ['timeout_upstream', 1],
      ['latency_downstream', 1],
    ],
    'an update keeps the place',
  );
  assert.equal(registry.remove('timeout_upstream').type, 'timeout');
  registry.reset();
  assert.equal(registry.size, 0);
});

test('toxicity: 0 is never drawn, 1 always, and a fraction as often as the seeded source says', () => {
  const registry = new ToxicRegistry({ random: seededRandom(42) });
  registry.add({ type: 'noop', name: 'never', toxicity: 0 });
  registry.add({ type: 'noop', name: 'always', toxicity: 1, stream: 'upstream' });
  registry.add({ type: 'noop', name: 'half', toxicity: 0.5, stream: 'upstream' });
  let half = 0;
  for (let i = 0; i < 1000; i++) {
    const stages = registry.stagesFor();
    assert.equal(stages.downstream, null, 'toxicity 0: no stage at all');
    const names = stages.upstream?.names() ?? [];
    assert.equal(names[0], 'always');
    if (names.includes('half')) half += 1;
  }
  assert.ok(half > 400 && half < 600, `${half} of 1000 drew the toxicity 0.5 toxic`);
  // The same seed draws the same connections.
  const again = new ToxicRegistry({ random: seededRandom(42) });
  again.add({ type: 'noop', name: 'half', toxicity: 0.5 });
  const a = new ToxicRegistry({ random: seededRandom(42) });
  a.add({ type: 'noop', name: 'half', toxicity: 0.5 });
  for (let i = 0; i < 50; i++)
    assert.equal(again.stagesFor().downstream === null, a.stagesFor().downstream === null);
});
