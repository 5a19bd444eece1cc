/**
 * A listener's target health (Listener.useHealth, upstream/pool-health.ts) with
 * real clients and targets on 127.0.0.1: a target the checks find down gets no
 * client, not even an attempt; every target down closes clients with
 * `no_healthy_target`, said once in the log; passive marking with checks off, and
 * one client trying a down target after the retry time; stopping leaves no timer.
 * The options are not flags yet: the test calls useHealth as the wiring will.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { type TestContext, test } from 'node:test';
import { resolveListener } from '../src/config/config.js';
import type { ConnectionInfo } from '../src/connection-info.js';
import { Listener } from '../src/listener.js';
import { Logger } from '../src/log.js';
import { type Clock, TimerSet } from '../src/timer-set.js';
import { PASSIVE_RETRY_MS } from '../src/upstream/target-health.js';
import { stateOf } from '../src/upstream/target-pool.js';
import { connectClient, echo, startUpstream, waitFor } from './helpers/net.js';

interface Setup {
  listener: Listener;
  port: number;
  timers: TimerSet;
  logs: Record<string, unknown>[];
  closed: ConnectionInfo[];
  /** skipMs moves the clock on (the passive retry waits 10 s). */
  skipMs(ms: number): void;
}

async function startListener(t: TestContext, targets: readonly string[]): Promise<Setup> {
  let offsetMs = 0;
  const clock: Clock = {
    now: () => performance.now() + offsetMs,
    setTimer: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
    clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
  const timers = new TimerSet(clock);
  const logs: Record<string, unknown>[] = [];
  const log = new Logger({
    level: 'info',
    format: 'json',
    write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
  });
  const closed: ConnectionInfo[] = [];
  const config = resolveListener(
    { name: 'web', listen: '127.0.0.1:0', targets, connectTimeoutMs: 2000 },
    '',
  );
  const listener = new Listener(config, timers, log, {
    connectionOpen: () => {},
    connectionConnect: () => {},
    connectionClose: (info) => closed.push(info),
  });
  await listener.listen();
  t.after(() => {
    listener.stopAccepting();
    listener.closeAll('shutdown');
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined);
  return { listener, port, timers, logs, closed, skipMs: (ms) => (offsetMs += ms) };
}

/** connectOnce connects one client, sends a line, and waits until the proxy closed it (or it echoed). */
async function clientRoundTrip(setup: Setup): Promise<ConnectionInfo> {
  const before = setup.closed.length;
  const client = connectClient(setup.port);
  client.socket.end('ping');
  await client.closed;
  await waitFor(() => setup.closed.length > before, 3000, 'the access record');
  return setup.closed[before] as ConnectionInfo;
}

function logged(setup: Setup, msg: string): Record<string, unknown>[] {
  return setup.logs.filter((line) => line['msg'] === msg);
}

async function listenOn(server: Server, port: number): Promise<void> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
}

test('a target the checks find down gets no client, not even an attempt', async (t) => {
  const a = await startUpstream(t, echo);
  const b = await startUpstream(t, echo);
  const setup = await startListener(t, [a.address, b.address]);
  setup.listener.useHealth({ intervalMs: 20, timeoutMs: 200, rise: 2, fall: 2 });
  for (const socket of b.sockets) socket.destroy();
  b.server.close();
  await waitFor(() => logged(setup, 'target down').length === 1, 3000, 'target down');
  assert.deepEqual(
    { ...logged(setup, 'target down')[0], time: undefined, level: undefined },
    {
      time: undefined,
      level: undefined,
      msg: 'target down',
      listener: 'web',
      target: b.address,
      reason: '2 failures in a row, last: check: connect: ECONNREFUSED',
    },
  );
  for (let i = 0; i < 6; i++) {
    const info = await clientRoundTrip(setup);
    assert.equal(info.upstream, a.address);
    assert.equal(info.attempts, 1);
    assert.deepEqual(info.connectFailures, []);
  }
});

test('every target down: clients are closed with no_healthy_target, and the log says so once', async (t) => {
  const a = await startUpstream(t, echo);
  const setup = await startListener(t, [a.address]);
  setup.listener.useHealth({ intervalMs: 20, timeoutMs: 200, rise: 1, fall: 1 });
  a.server.close();
  await waitFor(() => logged(setup, 'target down').length === 1, 3000, 'target down');
  for (let i = 0; i < 3; i++) {
    const info = await clientRoundTrip(setup);
    assert.equal(info.cause, 'no_healthy_target');
    assert.equal(info.upstream, null);
    assert.equal(info.attempts, 0);
  }
  assert.equal(logged(setup, 'no healthy target: every target is down').length, 1);
  assert.equal(logged(setup, 'no target reachable').length, 0, 'nothing per client');

  // Back on the same port: up after `rise` checks, and clients get through again.
  const again = createServer(echo);
  await listenOn(again, a.port);
  t.after(() => again.close());
  await waitFor(() => logged(setup, 'target up').length === 1, 3000, 'target up');
  assert.equal(logged(setup, 'target up')[0]?.['reason'], 'a check passed');
  const info = await clientRoundTrip(setup);
  assert.equal(info.upstream, a.address);
});

test('checks off: failed connects mark a target down; after the retry time one client tries it', async (t) => {
  const a = await startUpstream(t, echo);
  const b = await startUpstream(t, echo);
  const bPort = b.port;
  for (const socket of b.sockets) socket.destroy();
  b.server.close();
  await once(b.server, 'close');
  const setup = await startListener(t, [a.address, b.address]);
  setup.listener.useHealth({ intervalMs: 0, timeoutMs: 2000, rise: 2, fall: 2 });
  // Round-robin: every second client starts at B, is refused, and fails over to A.
  const infos = [];
  for (let i = 0; i < 2; i++) infos.push(await clientRoundTrip(setup));
  assert.equal(logged(setup, 'target down').length, 0, 'one failure is not yet fall (2)');
  for (let i = 0; i < 2; i++) infos.push(await clientRoundTrip(setup));
  assert.deepEqual(
    infos.map((info) => info.attempts),
    [1, 2, 1, 2],
  );
  const down = logged(setup, 'target down');
  assert.equal(down.length, 1);
  assert.equal(down[0]?.['reason'], '2 failures in a row, last: connect: ECONNREFUSED');
  const entry = setup.listener.pool.get(b.address);
  assert.ok(entry);
  assert.equal(stateOf(entry), 'down');
  for (let i = 0; i < 4; i++) assert.equal((await clientRoundTrip(setup)).attempts, 1);

  // B is back, and the retry time has passed: the next client tries B first.
  const again = createServer(echo);
  await listenOn(again, bPort);
  t.after(() => again.close());
  setup.skipMs(PASSIVE_RETRY_MS);
  const trial = await clientRoundTrip(setup);
  assert.equal(trial.upstream, b.address);
  assert.equal(stateOf(entry), 'up');
  assert.equal(logged(setup, 'target up')[0]?.['reason'], 'a client connected');
});

test('stopping the listener stops the checks: no timer is left', async (t) => {
  const a = await startUpstream(t, echo);
  const setup = await startListener(t, [a.address]);
  setup.listener.useHealth({ intervalMs: 20, timeoutMs: 200, rise: 1, fall: 1 });
  await waitFor(() => a.sockets.length >= 2, 3000, 'two probes');
  setup.listener.stopAccepting();
  assert.equal(setup.timers.size, 0);
  await waitFor(() => a.sockets.every((s) => s.destroyed), 3000, 'probe sockets closed');
});

test('useHealth again: the same options keep it running, others keep the states, null puts targets back up', async (t) => {
  const a = await startUpstream(t, echo);
  const b = await startUpstream(t, echo);
  const setup = await startListener(t, [a.address, b.address]);
  const options = { intervalMs: 20, timeoutMs: 200, rise: 1, fall: 1 };
  setup.listener.useHealth(options);
  b.server.close();
  await waitFor(() => logged(setup, 'target down').length === 1, 3000, 'target down');
  const entry = setup.listener.pool.get(b.address);
  assert.ok(entry);
  setup.listener.useHealth({ ...options });
  setup.listener.useHealth({ ...options, intervalMs: 25 });
  assert.equal(stateOf(entry), 'down', 'new options: the state stays');
  await waitFor(() => a.sockets.length >= 4, 3000, 'A probed on');
  assert.equal(logged(setup, 'target down').length, 1, 'not reported again');
  setup.listener.useHealth(null);
  assert.equal(stateOf(entry), 'up', 'health off: nothing would bring it back, so it is up');
  assert.equal(setup.timers.size, 0);
});
