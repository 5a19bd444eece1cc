/**
 * HealthChecker (upstream/health-check.ts) against real servers on 127.0.0.1: a
 * listening target passes, a closed one goes down after `fall` failed probes and
 * comes back on the same port after `rise` passed ones, `send`/`expect`, a target
 * that never answers, and `stop` leaving no timer and no socket. The tests wait for
 * the checker's own events, never for a fixed time; intervals are 20 ms.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { TimerSet } from '../src/timer-set.js';
import {
  HealthChecker,
  type HealthCheckOptions,
  type ProbeResult,
} from '../src/upstream/health-check.js';
import { type HealthChange, TargetHealth } from '../src/upstream/target-health.js';
import { stateOf, TargetPool } from '../src/upstream/target-pool.js';
import { withTimeout } from './helpers/cli.js';
import { blackholeAddress, waitFor } from './helpers/net.js';

interface TestTarget {
  readonly address: string;
  readonly host: string;
  readonly port: number;
}

function targetAt(port: number): TestTarget {
  return { address: `127.0.0.1:${port}`, host: '127.0.0.1', port };
}

/** Recorder keeps every event in order and lets a test wait for the next one that matches. */
class Recorder {
  readonly events: (ProbeResult | HealthChange | 'none up')[] = [];
  readonly #waiters: { match: (e: Recorder['events'][number]) => boolean; resolve: () => void }[] =
    [];

  push(event: Recorder['events'][number]): void {
    this.events.push(event);
    for (const waiter of [...this.#waiters]) {
      if (!waiter.match(event)) continue;
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  /** next resolves at the next event (after now) that matches, within a deadline. */
  next(match: (e: Recorder['events'][number]) => boolean, what: string): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve) => this.#waiters.push({ match, resolve })),
      3000,
      what,
    );
  }

  /** probes are the probe results of `address` from index `from` on. */
  probes(address: string, from = 0): ProbeResult[] {
    return this.events
      .slice(from)
      .filter((e): e is ProbeResult => typeof e === 'object' && 'ok' in e && e.address === address);
  }
}

const isChange = (state: 'up' | 'down') => (e: Recorder['events'][number]) =>
  typeof e === 'object' && 'state' in e && e.state === state;
const isProbe = (ok: boolean) => (e: Recorder['events'][number]) =>
  typeof e === 'object' && 'ok' in e && e.ok === ok;

function checker(
  t: TestContext,
  targets: readonly TestTarget[],
  options: Partial<HealthCheckOptions> = {},
  counts = { rise: 2, fall: 3 },
): {
  pool: TargetPool<TestTarget>;
  recorder: Recorder;
  checker: HealthChecker<TestTarget>;
  timers: TimerSet;
} {
  const pool = new TargetPool(targets, { addressOf: (target) => target.address });
  const recorder = new Recorder();
  const health = new TargetHealth(pool, counts, {
    stateChanged: (change) => recorder.push(change),
    noHealthyTarget: () => recorder.push('none up'),
  });
  const timers = new TimerSet();
  const running = new HealthChecker(
    pool,
    health,
    timers,
    { intervalMs: 20, timeoutMs: 200, ...options },
    { probed: (result) => recorder.push(result) },
  );
  running.start();
  t.after(() => running.stop());
  return { pool, recorder, checker: running, timers };
}

async function listen(server: Server, port = 0): Promise<number> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** serve starts a server that hands each socket to `onSocket`, closed after the test. */
async function serve(
  t: TestContext,
  onSocket: (socket: Socket) => void = () => {},
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  const port = await listen(server);
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { server, port, sockets };
}

describe('HealthChecker', () => {
  test('a target that listens passes every probe and stays up', async (t) => {
    const { port } = await serve(t);
    const { pool, recorder } = checker(t, [targetAt(port)]);
    await recorder.next(isProbe(true), 'a first passed probe');
    await recorder.next(isProbe(true), 'a second passed probe');
    assert.equal(stateOf(pool.entries[0] as never), 'up');
    assert.ok(recorder.events.every((e) => typeof e === 'object' && 'ok' in e && e.ok));
  });

  test('closed: down after `fall` failed probes; reopened on the same port: up after `rise` passed ones', async (t) => {
    const target = await serve(t);
    const address = `127.0.0.1:${target.port}`;
    const { pool, recorder } = checker(t, [targetAt(target.port)], {}, { rise: 2, fall: 3 });
    await recorder.next(isProbe(true), 'a passed probe while it listens');

    const wentDown = recorder.next(isChange('down'), 'target down');
    const closedAt = recorder.events.length;
    target.server.close();
    await wentDown;
    const entry = pool.get(address);
    assert.ok(entry);
    assert.equal(stateOf(entry), 'down');
    // Exactly `fall` failures marked it down: the last probes before the change.
    const downAt = recorder.events.findIndex(isChange('down'));
    const before = recorder
      .probes(address, closedAt)
      .filter((p) => recorder.events.indexOf(p) < downAt);
    const failures = before.slice(before.findLastIndex((p) => p.ok) + 1);
    assert.equal(failures.length, 3, JSON.stringify(before));
    assert.match(failures[2]?.reason ?? '', /connect: ECONNREFUSED/);
    assert.ok(recorder.events.includes('none up'), 'its only target is down: said once');

    const cameUp = recorder.next(isChange('up'), 'target up');
    const reopenedAt = recorder.events.length;
    const again = createServer((socket) => socket.destroy());
    await listen(again, target.port);
    t.after(() => again.close());
    await cameUp;
    assert.equal(stateOf(entry), 'up');
    const upAt = recorder.events.findIndex(isChange('up'));
    const after = recorder
      .probes(address, reopenedAt)
      .filter((p) => recorder.events.indexOf(p) < upAt);
    const passes = after.slice(after.findLastIndex((p) => !p.ok) + 1);
    assert.equal(passes.length, 2, JSON.stringify(after));
    assert.equal(recorder.events.filter(isChange('down')).length, 1, 'down reported once');
    assert.equal(recorder.events.filter((e) => e === 'none up').length, 1);
  });

  test('send and expect: passes when the answer contains `expect`, fails when it does not', async (t) => {
    const pong = await serve(t, (socket) => {
      socket.once('data', (data) => {
        socket.end(String(data) === 'PING\n' ? 'status: PONG\n' : 'what?\n');
      });
    });
    const { recorder } = checker(
      t,
      [targetAt(pong.port)],
      { send: 'PING\n', expect: 'PONG' },
      { rise: 1, fall: 1 },
    );
    await recorder.next(isProbe(true), 'a probe that got PONG');

    const wrong = await serve(t, (socket) => socket.end('NOPE\n'));
    const other = checker(
      t,
      [targetAt(wrong.port)],
      { send: 'PING\n', expect: 'PONG' },
      { rise: 1, fall: 1 },
    );
    await other.recorder.next(isChange('down'), 'down for a wrong answer');
    const failed = other.recorder.probes(`127.0.0.1:${wrong.port}`).find((p) => !p.ok);
    assert.equal(failed?.reason, 'answer ended without "PONG"');
  });

  test('a target that accepts but never answers fails by timeout', async (t) => {
    const silent = await serve(t); // holds every socket open, writes nothing
    const { recorder } = checker(
      t,
      [targetAt(silent.port)],
      { expect: 'READY', timeoutMs: 50 },
      { rise: 1, fall: 1 },
    );
    await recorder.next(isChange('down'), 'down by timeout');
    const failed = recorder.probes(`127.0.0.1:${silent.port}`).find((p) => !p.ok);
    assert.equal(failed?.reason, 'no answer within 50 ms');
    assert.ok((failed?.ms ?? 0) >= 49, `took ${failed?.ms} ms`);
    // The timed-out probe's socket was closed: the server does not keep collecting them.
    await waitFor(() => silent.sockets.size <= 1, 2000, 'timed-out probe sockets closed');
  });

  test('a target whose connect never completes (SYNs dropped) fails by timeout', async (t) => {
    const [host, port] = (await blackholeAddress(t)).split(':');
    const target = { address: `${host}:${port}`, host: host ?? '', port: Number(port) };
    const { recorder } = checker(t, [target], { timeoutMs: 50 }, { rise: 1, fall: 1 });
    await recorder.next(isChange('down'), 'down by connect timeout');
    const failed = recorder.probes(target.address).find((p) => !p.ok);
    assert.equal(failed?.reason, 'connect: no answer within 50 ms');
  });

  test('stop in the middle of a probe leaves no timer and no socket', async (t) => {
    const silent = await serve(t);
    const { checker: running, timers } = checker(t, [targetAt(silent.port)], {
      expect: 'READY',
      timeoutMs: 10_000,
    });
    await waitFor(
      () => silent.sockets.size === 1 && running.probing === 1,
      2000,
      'a probe waiting',
    );
    running.stop();
    assert.equal(timers.size, 0, 'no timer left');
    assert.equal(running.probing, 0);
    await waitFor(() => silent.sockets.size === 0, 2000, 'the probe socket closed');
  });

  test('follows a reload: a new target is probed, a removed one no longer is', async (t) => {
    const a = await serve(t);
    const b = await serve(t);
    const { pool, recorder, checker: running } = checker(t, [targetAt(a.port)]);
    await recorder.next(isProbe(true), 'A probed');
    pool.update([targetAt(b.port)]);
    running.sync();
    const bAddress = `127.0.0.1:${b.port}`;
    await recorder.next(
      (e) => typeof e === 'object' && 'ok' in e && e.address === bAddress,
      'B probed',
    );
    const from = recorder.events.length;
    await recorder.next(isProbe(true), 'another probe');
    await recorder.next(isProbe(true), 'and another');
    assert.deepEqual(recorder.probes(`127.0.0.1:${a.port}`, from), [], 'A is no longer probed');
  });

  test('spreads the first probes of several targets over the interval', async (t) => {
    const servers = await Promise.all([serve(t), serve(t), serve(t), serve(t)]);
    const startedAt = performance.now(); // the TimerSet's clock
    const { recorder } = checker(
      t,
      servers.map((s) => targetAt(s.port)),
      { intervalMs: 400 },
    );
    await waitFor(
      () => servers.every((s) => recorder.probes(`127.0.0.1:${s.port}`).length > 0),
      3000,
      'a probe of every target',
    );
    // Target i of 4 is first probed no sooner than i * 100 ms after start.
    servers.forEach((s, i) => {
      const first = recorder.probes(`127.0.0.1:${s.port}`)[0];
      assert.ok(first !== undefined);
      assert.ok(
        first.startedAtMs - startedAt >= i * 100 - 1,
        `target ${i} at ${first.startedAtMs - startedAt} ms`,
      );
    });
  });
});
