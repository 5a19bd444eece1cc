/**
 * The queue in front of --max-connections (src/connection-queue.ts): first in, first
 * out, one timer for the whole queue (unit tests with an injected clock), and a
 * listener whose waiting client is dialled only once a slot is free, or closed with
 * `max_connections` when its wait is over (real sockets). `queue.timeoutMs` is set as
 * the `--queue-timeout` wiring will set it.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { resolveListener } from '../src/config/config.js';
import type { ConnectionInfo } from '../src/connection-info.js';
import { ConnectionQueue } from '../src/connection-queue.js';
import { Listener } from '../src/listener.js';
import { Logger } from '../src/log.js';
import { type Clock, TimerSet } from '../src/timer-set.js';
import { connectClient, echo, startUpstream, waitFor } from './helpers/net.js';

/** manualClock: time moves only when the test says; `run` fires what is due. */
function manualClock(): { clock: Clock; advance: (ms: number) => void } {
  let now = 0;
  let pending: { callback: () => void; at: number } | null = null;
  const clock: Clock = {
    now: () => now,
    setTimer: (callback, delayMs) => {
      pending = { callback, at: now + delayMs };
      return pending;
    },
    clearTimer: (handle) => {
      if (pending === handle) pending = null;
    },
  };
  const advance = (ms: number): void => {
    now += ms;
    for (let i = 0; i < 100 && pending !== null && pending.at <= now; i++) {
      const { callback } = pending;
      pending = null;
      callback();
    }
  };
  return { clock, advance };
}

describe('ConnectionQueue', () => {
  function queue(timeoutMs: number) {
    const { clock, advance } = manualClock();
    const timers = new TimerSet(clock);
    const expired: string[] = [];
    const q = new ConnectionQueue<{ name: string; acceptedAtMs: number }>(timers, (c) =>
      expired.push(c.name),
    );
    q.timeoutMs = timeoutMs;
    const add = (name: string) => q.add({ name, acceptedAtMs: timers.now() });
    return { q, timers, expired, advance, add };
  }

  test('gives clients out first in, first out', () => {
    const { q, add } = queue(1000);
    add('a');
    add('b');
    add('c');
    assert.deepEqual(
      [q.shift()?.name, q.shift()?.name, q.shift()?.name, q.shift()],
      ['a', 'b', 'c', undefined],
    );
  });

  test('times clients out in arrival order, each after its own wait, with one timer', () => {
    const { q, timers, expired, advance, add } = queue(1000);
    add('a');
    advance(300);
    add('b');
    add('c');
    assert.equal(timers.size, 1, 'one timer for the queue');
    advance(699);
    assert.deepEqual(expired, []);
    advance(1);
    assert.deepEqual(expired, ['a']);
    advance(299);
    assert.deepEqual(expired, ['a']);
    advance(1);
    assert.deepEqual(expired, ['a', 'b', 'c']);
    assert.equal(q.size, 0);
  });

  test('a client taken out (it left, or got a slot) never times out', () => {
    const { q, timers, expired, advance, add } = queue(1000);
    add('a');
    add('b');
    assert.equal(q.shift()?.name, 'a');
    const left = { name: 'x', acceptedAtMs: timers.now() };
    q.add(left);
    assert.equal(q.delete(left), true);
    assert.equal(q.delete(left), false);
    advance(1000);
    assert.deepEqual(expired, ['b']);
    assert.deepEqual(q.clear(), []);
    assert.equal(timers.size, 0);
  });
});

async function startListener(
  t: TestContext,
  target: string,
  queueTimeoutMs: number,
): Promise<{ listener: Listener; port: number; closed: ConnectionInfo[] }> {
  const closed: ConnectionInfo[] = [];
  const config = resolveListener(
    { name: 'web', listen: '127.0.0.1:0', targets: [target], maxConnections: 1 },
    '',
  );
  const listener = new Listener(config, new TimerSet(), new Logger({ level: 'silent' }), {
    connectionOpen: () => {},
    connectionConnect: () => {},
    connectionClose: (info) => closed.push(info),
  });
  listener.queue.timeoutMs = queueTimeoutMs;
  await listener.listen();
  t.after(() => {
    listener.stopAccepting();
    listener.closeAll('shutdown');
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined);
  return { listener, port, closed };
}

test('a client over the limit waits, undialled, and gets the slot the first client frees', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { listener, port, closed } = await startListener(t, upstream.address, 10_000);
  const first = connectClient(port);
  await upstream.accepted(0);
  const second = connectClient(port);
  const third = connectClient(port);
  await waitFor(() => listener.queue.size === 2, 2000, 'two clients waiting');
  second.socket.write('second');
  third.socket.write('third');
  assert.equal(upstream.sockets.length, 1, 'nobody dialled for a waiting client');

  first.socket.end();
  await first.closed;
  await waitFor(() => second.received().toString() === 'second', 2000, 'the second echoed');
  assert.equal(listener.queue.size, 1, 'the third still waits: first in, first out');
  assert.equal(third.received().length, 0);
  second.socket.end();
  await waitFor(() => third.received().toString() === 'third', 2000, 'the third echoed');
  assert.equal(upstream.sockets.length, 3);
  third.socket.end();
  await waitFor(() => closed.length === 3, 2000, 'three access records');
  assert.ok(closed.every((info) => info.cause !== 'max_connections'));
});

test('a client still waiting after the queue timeout is closed with max_connections', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { listener, port, closed } = await startListener(t, upstream.address, 50);
  const first = connectClient(port);
  await upstream.accepted(0);
  const second = connectClient(port);
  await second.ended;
  await waitFor(() => closed.length === 1, 2000, 'the access record');
  assert.equal(closed[0]?.cause, 'max_connections');
  assert.equal(closed[0]?.upstream, null);
  assert.ok((closed[0]?.ageMs ?? 0) >= 49, `waited ${closed[0]?.ageMs} ms`);
  assert.equal(upstream.sockets.length, 1);
  assert.equal(listener.queue.size, 0);
  first.socket.destroy();
});

test('without a queue timeout, a client over the limit is closed at once, as before', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { listener, port, closed } = await startListener(t, upstream.address, 0);
  connectClient(port);
  await upstream.accepted(0);
  const second = connectClient(port);
  await second.ended;
  await waitFor(() => closed.length === 1, 2000, 'the access record');
  assert.equal(closed[0]?.cause, 'max_connections');
  assert.equal(listener.queue.size, 0);
});

test('stopping the listener closes the waiting clients at once', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { listener, port, closed } = await startListener(t, upstream.address, 10_000);
  connectClient(port);
  await upstream.accepted(0);
  const waiting = connectClient(port);
  await waitFor(() => listener.queue.size === 1, 2000, 'a client waiting');
  listener.stopAccepting();
  await waiting.ended;
  await waitFor(() => closed.length === 1, 2000, 'the access record');
  assert.equal(closed[0]?.cause, 'shutdown');
  assert.equal(upstream.sockets.length, 1);
});

test('a reload that raises the limit lets waiting clients in at once', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { listener, port } = await startListener(t, upstream.address, 10_000);
  const first = connectClient(port);
  await upstream.accepted(0);
  const second = connectClient(port);
  await waitFor(() => listener.queue.size === 1, 2000, 'a client waiting');
  listener.update({ ...listener.config, maxConnections: 2 });
  second.socket.write('in');
  await waitFor(() => second.received().toString() === 'in', 2000, 'the waiting client echoed');
  assert.equal(listener.queue.size, 0);
  first.socket.destroy();
  second.socket.destroy();
});
