/**
 * The toxic model (src/toxic-store.ts): Toxiproxy's defaults, the order of its
 * checks, partial updates, and the store's order (upstream toxics first, each stream
 * in the order added; an update keeps the place).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MemoryToxicStore,
  parseToxic,
  TOXIC_ATTRIBUTES,
  type Toxic,
  ToxicError,
  toxicJson,
  updateToxic,
} from '../src/toxic-store.js';

const free = (): boolean => false;

test('a toxic gets Toxiproxy defaults: downstream, toxicity 1, name <type>_<stream>, every attribute 0', () => {
  for (const type of Object.keys(TOXIC_ATTRIBUTES)) {
    const toxic = parseToxic({ type }, free);
    assert.equal(toxic.name, `${type}_downstream`);
    assert.equal(toxic.stream, 'downstream');
    assert.equal(toxic.toxicity, 1);
    assert.ok(Object.values(toxic.attributes).every((v) => v === 0));
  }
  assert.deepEqual(parseToxic({ type: 'slicer', stream: 'UPSTREAM' }, free).attributes, {
    average_size: 0,
    size_variation: 0,
    delay: 0,
  });
  assert.equal(parseToxic({ type: 'noop', stream: 'Upstream' }, free).name, 'noop_upstream');
});

test('checks run in Toxiproxy order: body, stream, type, name taken, attributes', () => {
  const status = (body: unknown, taken = free): number => {
    try {
      parseToxic(body, taken);
      return 200;
    } catch (err) {
      assert.ok(err instanceof ToxicError);
      return err.status;
    }
  };
  assert.equal(status({ type: 'nope', stream: 'x' }), 400);
  assert.equal(
    status({ type: 'latency', attributes: { latency: 'x' } }, () => true),
    409,
  );
  assert.equal(status({ type: 'latency', attributes: { latency: 'x' } }), 400);
  assert.equal(status({ type: 'latency', attributes: { latency: 10, unknown: 'ignored' } }), 200);
  assert.throws(() => parseToxic({ type: 'x', stream: 'x' }, free), /stream was invalid/);
});

test('an update changes the attributes and toxicity it names; name, type and stream stay', () => {
  const old = parseToxic(
    { name: 'l', type: 'latency', stream: 'upstream', toxicity: 0.5, attributes: { latency: 100 } },
    free,
  );
  const next = updateToxic(old, {
    name: 'other',
    type: 'noop',
    stream: 'downstream',
    attributes: { jitter: 7 },
  });
  assert.deepEqual(toxicJson(next), {
    attributes: { latency: 100, jitter: 7 },
    name: 'l',
    type: 'latency',
    stream: 'upstream',
    toxicity: 0.5,
  });
  assert.equal(updateToxic(old, { toxicity: 0 }).toxicity, 0);
});

test('the store lists upstream toxics first, each stream in the order added; an update keeps the place', () => {
  const store = new MemoryToxicStore();
  const make = (name: string, stream: string): Toxic =>
    parseToxic({ name, type: 'noop', stream }, free);
  store.add(make('d1', 'downstream'));
  store.add(make('u1', 'upstream'));
  store.add(make('d2', 'downstream'));
  store.add(make('u2', 'upstream'));
  assert.deepEqual(
    store.list().map((t) => t.name),
    ['u1', 'u2', 'd1', 'd2'],
  );
  assert.throws(() => store.add(make('u1', 'downstream')), { status: 409 });
  store.update({ ...make('d1', 'downstream'), toxicity: 0.25 });
  assert.deepEqual(
    store.list().map((t) => [t.name, t.toxicity]),
    [
      ['u1', 1],
      ['u2', 1],
      ['d1', 0.25],
      ['d2', 1],
    ],
  );
  store.remove('u1');
  assert.throws(() => store.remove('u1'), { status: 404 });
  assert.throws(() => store.update(make('u1', 'upstream')), { status: 404 });
  assert.deepEqual(
    store.list().map((t) => t.name),
    ['u2', 'd1', 'd2'],
  );
  store.reset();
  assert.deepEqual(store.list(), []);
});
