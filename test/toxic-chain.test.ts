/**
 * ToxicChain (src/faults/chain.ts) without sockets: a hand-moved clock drives the
 * toxics' timers, a recording output stands for the far socket. fast-check runs any
 * sequence of writes, adds, updates, removals and waits, and checks that the toxics
 * that never drop a byte deliver exactly the input, in order, then one FIN.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ToxicChain } from '../src/faults/chain.js';
import { seededRandom, type ToxicEnv } from '../src/faults/env.js';
import { parseToxic, type Toxic } from '../src/faults/toxic.js';
import { createToxicStage } from '../src/faults/toxic-stage.js';
import { TimerSet } from '../src/timer-set.js';
import { patternBytes } from './helpers/net.js';
import { ManualClock, RecordingOutput } from './helpers/toxics.js';

function setup(seed = 1) {
  const clock = new ManualClock();
  const env: ToxicEnv = { timers: new TimerSet(clock), random: seededRandom(seed) };
  const output = new RecordingOutput(clock);
  const chain = new ToxicChain();
  chain.start(output);
  return { clock, env, output, chain };
}

/** A toxic that never drops a byte (timeout 0 holds them until it is removed). */
const keepingToxic = fc.oneof(
  fc.record({ type: fc.constant('noop'), attributes: fc.constant({}) }),
  fc.record({
    type: fc.constant('latency'),
    attributes: fc.record({ latency: fc.nat(200), jitter: fc.nat(50) }),
  }),
  fc.record({ type: fc.constant('bandwidth'), attributes: fc.record({ rate: fc.nat(100) }) }),
  fc.record({
    type: fc.constant('slicer'),
    attributes: fc
      .tuple(fc.integer({ min: 1, max: 500 }), fc.nat(499), fc.nat(3000))
      .map(([average_size, v, delay]) => ({
        average_size,
        size_variation: v % average_size,
        delay,
      })),
  }),
  fc.record({ type: fc.constant('slow_close'), attributes: fc.record({ delay: fc.nat(300) }) }),
  fc.record({ type: fc.constant('timeout'), attributes: fc.constant({ timeout: 0 }) }),
);

const step = fc.oneof(
  fc.record({ op: fc.constant('write' as const), size: fc.integer({ min: 1, max: 4000 }) }),
  fc.record({ op: fc.constant('add' as const), toxic: keepingToxic }),
  fc.record({ op: fc.constant('remove' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('update' as const), pick: fc.nat(), toxic: keepingToxic }),
  fc.record({ op: fc.constant('wait' as const), ms: fc.nat(400) }),
);

type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

test('any sequence of adds, updates and removals of toxics that keep bytes delivers exactly the input, then one FIN', () => {
  fc.assert(
    fc.property(
      fc.array(step, { maxLength: 40 }),
      fc.boolean(),
      fc.array(step, { maxLength: 10 }),
      fc.integer({ min: 1, max: 1000 }),
      (before, fin, after, seed) => {
        const { clock, env, output, chain } = setup(seed);
        const input = patternBytes(200_000, seed);
        let at = 0;
        let named = 0;
        const toxics = new Map<string, Toxic>();
        const run = (s: Step) => {
          const names = [...toxics.keys()];
          if (s.op === 'write') {
            chain.write(Buffer.from(input.subarray(at, at + s.size)));
            at += s.size;
          } else if (s.op === 'add') {
            const toxic = parseToxic({ ...s.toxic, name: `t${named++}` });
            toxics.set(toxic.name, toxic);
            chain.add(toxic.name, createToxicStage(toxic, env));
          } else if (s.op === 'remove' && names.length > 0) {
            const name = names[s.pick % names.length] as string;
            toxics.delete(name);
            assert.ok(chain.remove(name) !== null);
          } else if (s.op === 'update' && names.length > 0) {
            const name = names[s.pick % names.length] as string;
            const toxic = parseToxic({ ...s.toxic, name });
            toxics.set(name, toxic);
            chain.replace(name, createToxicStage(toxic, env, chain.stageOf(name)));
          } else if (s.op === 'wait') {
            clock.advance(s.ms);
          }
        };
        for (const s of before) run(s);
        if (fin) chain.end();
        for (const s of after) if (s.op !== 'write') run(s);
        assert.deepEqual(chain.names(), [...toxics.keys()], 'the chain keeps the order added');
        // Take every toxic out, then let every timer run out.
        for (const name of [...toxics.keys()]) chain.remove(name);
        clock.advance(1_000_000);
        const got = output.bytes();
        assert.equal(got.length, Math.min(at, input.length));
        assert.ok(got.equals(input.subarray(0, got.length)), 'bytes in order, none lost');
        assert.equal(output.ended, fin ? 1 : 0, 'one FIN after the bytes, if it came');
        assert.equal(output.closed, null);
        assert.equal(chain.held, 0);
      },
    ),
    { numRuns: 300 },
  );
});

test('with the toxics left in place, waiting long enough delivers everything (no timeout toxic)', () => {
  fc.assert(
    fc.property(
      fc.array(keepingToxic, { maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }),
      (toxics, sizes) => {
        const { clock, env, output, chain } = setup(3);
        toxics
          .filter((t) => t.type !== 'timeout')
          .forEach((t, i) => {
            chain.add(`t${i}`, createToxicStage(parseToxic({ ...t, name: `t${i}` }), env));
          });
        const input = patternBytes(
          sizes.reduce((a, b) => a + b, 0),
          9,
        );
        let at = 0;
        for (const size of sizes) {
          chain.write(Buffer.from(input.subarray(at, at + size)));
          at += size;
          clock.advance(7);
        }
        chain.end();
        clock.advance(10_000_000);
        assert.ok(output.bytes().equals(input));
        assert.equal(output.ended, 1);
        assert.equal(chain.held, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('stopping a chain returns what it holds, oldest first, and it writes nothing after', () => {
  const { env, output, chain } = setup();
  chain.add('hold-last', createToxicStage(parseToxic({ type: 'timeout', name: 'b' }), env));
  chain.write(Buffer.from('first '));
  chain.insert(0, 'hold-first', createToxicStage(parseToxic({ type: 'timeout', name: 'a' }), env));
  chain.write(Buffer.from('second'));
  assert.equal(chain.held, 12);
  const rest = chain.stop();
  assert.equal(Buffer.concat(rest).toString(), 'first second');
  assert.equal(output.chunks.length, 0);
  assert.equal(chain.stopped, true);
});

test('a graceful close (limit_data) travels down the chain after the bytes it let through', () => {
  const { clock, env, output, chain } = setup();
  const limit = parseToxic({ type: 'limit_data', attributes: { bytes: 10 } });
  const latency = parseToxic({ type: 'latency', attributes: { latency: 100 } });
  chain.add(limit.name, createToxicStage(limit, env));
  chain.add(latency.name, createToxicStage(latency, env));
  chain.write(Buffer.from('0123456789abcdef'));
  chain.write(Buffer.from('more'));
  clock.advance(99);
  assert.equal(output.chunks.length, 0, 'still delayed');
  assert.equal(output.closed, null, 'the close waits behind the bytes');
  clock.advance(1);
  assert.equal(output.bytes().toString(), '0123456789');
  assert.deepEqual(output.closed, { reset: false });
  assert.equal(chain.name, 'limit_data_downstream', 'the close names the toxic');
});

test('reset_peer resets `timeout` ms after the first data; removed before, it lets everything through', () => {
  const reset = parseToxic({ type: 'reset_peer', attributes: { timeout: 50 } });
  const first = setup();
  first.chain.add(reset.name, createToxicStage(reset, first.env));
  first.chain.write(Buffer.from('a'));
  first.clock.advance(49);
  assert.equal(first.output.closed, null);
  first.clock.advance(1);
  assert.deepEqual(first.output.closed, { reset: true });
  assert.equal(first.output.chunks.length, 0);
  const second = setup();
  second.chain.add(reset.name, createToxicStage(reset, second.env));
  second.chain.write(Buffer.from('a'));
  second.chain.write(Buffer.from('b'));
  second.chain.end();
  second.clock.advance(20);
  second.chain.remove(reset.name);
  second.clock.advance(100);
  assert.equal(second.output.bytes().toString(), 'ab');
  assert.equal(second.output.ended, 1);
  assert.equal(second.output.closed, null);
});

test('latency with jitter keeps chunks in order; bandwidth paces at rate KB/s', () => {
  const { clock, env, output, chain } = setup(5);
  const latency = parseToxic({ type: 'latency', attributes: { latency: 100, jitter: 90 } });
  chain.add(latency.name, createToxicStage(latency, env));
  for (let i = 0; i < 50; i++) {
    chain.write(Buffer.from([i]));
    clock.advance(1);
  }
  clock.advance(1000);
  assert.deepEqual([...output.bytes()], [...Array(50).keys()]);
  assert.ok(
    output.at.every((t, i) => t >= i + 10),
    'never less than latency - jitter',
  );
  const paced = setup();
  const bandwidth = parseToxic({ type: 'bandwidth', attributes: { rate: 10 } });
  paced.chain.add(bandwidth.name, createToxicStage(bandwidth, paced.env));
  paced.chain.write(Buffer.alloc(5000)); // 5000 bytes at 10 KB/s: 500 ms, in pieces of 1000
  paced.clock.advance(499);
  assert.equal(paced.output.bytes().length, 4000);
  paced.clock.advance(1);
  assert.equal(paced.output.bytes().length, 5000);
  assert.deepEqual(paced.output.at, [100, 200, 300, 400, 500]);
});

test('slicer pieces stay at least `delay` apart even when a timer fires late', () => {
  const { clock, env, output, chain } = setup();
  const slicer = parseToxic({
    type: 'slicer',
    attributes: { average_size: 10, size_variation: 0, delay: 5000 },
  });
  chain.add(slicer.name, createToxicStage(slicer, env));
  chain.write(Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789ABCD')); // 40 bytes: 4 pieces
  assert.equal(output.chunks.length, 1, 'the first piece goes at once');
  clock.skip(100); // the timer is 95 ms late
  clock.advance(0);
  assert.equal(output.chunks.length, 2, 'one piece per delay, not all that were due');
  clock.advance(10);
  assert.equal(output.bytes().toString(), 'abcdefghijklmnopqrstuvwxyz0123456789ABCD');
  assert.deepEqual(
    output.chunks.map((c) => c.length),
    [10, 10, 10, 10],
  );
  assert.deepEqual(output.at, [0, 100, 105, 110]);
});
