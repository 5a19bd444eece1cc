/**
 * connectTo: dialing without a proxy context (as a health probe will), on real
 * sockets: a listening server, a refused port, a blackhole with a short timeout, an
 * abort; and no socket or timer left behind by any of them.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { connectTo, type DialAddress, DialError } from '../src/upstream/dial.js';
import { blackholeAddress, echo, refusedTarget, startUpstream, waitFor } from './helpers/net.js';
import { deadline } from './helpers/time.js';

function parse(address: string): DialAddress {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

/** timers counts the process's pending timers (a connect timeout left behind would show). */
function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** opened collects every client socket the process opens, from Node's own diagnostics channel. */
const opened: Socket[] = [];
diagnostics.subscribe('net.client.socket', (message) => {
  opened.push((message as { socket: Socket }).socket);
});

/** leftOpen is how many sockets opened since `from` are not closed yet. */
function leftOpen(from: number): number {
  return opened.slice(from).filter((s) => !s.closed).length;
}

async function failure(promise: Promise<unknown>): Promise<DialError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DialError, `a DialError, not ${String(err)}`);
    return err;
  }
  assert.fail('connectTo resolved');
}

test('connectTo resolves with a connected socket the caller owns', async (t) => {
  const upstream = await startUpstream(t, echo);
  const socket = await connectTo(parse(upstream.address), { timeoutMs: 5000 });
  t.after(() => socket.destroy());
  assert.equal(socket.remotePort, parse(upstream.address).port);
  assert.equal(socket.listenerCount('error'), 0, 'no listener of ours is left on it');
  socket.write('ping');
  const [chunk] = (await new Promise((r) => socket.once('data', (d) => r([d])))) as [Buffer];
  assert.equal(String(chunk), 'ping');
});

test('connectTo rejects a refused port as refused, promptly, and leaves nothing open', async () => {
  const address = parse(await refusedTarget()); // before counting: it connects once to check
  const before = timers();
  const first = opened.length;
  const started = Date.now();
  // A long timeout: a timer left behind would still be pending when the check gives up.
  const err = await failure(connectTo(address, { timeoutMs: 60_000 }));
  assert.equal(err.code, 'ECONNREFUSED');
  assert.equal(err.dialCase, 'refused');
  assert.ok(Date.now() - started < deadline(2000));
  assert.equal(opened.length, first + 1, 'one socket per attempt');
  await waitFor(
    () => leftOpen(first) === 0 && timers() <= before,
    5000,
    'the socket and timer released',
  );
});

test('connectTo gives up on a blackhole after its timeout, as timeout, and leaves nothing open', async (t) => {
  const address = parse(await blackholeAddress(t));
  const before = timers();
  const first = opened.length;
  const started = Date.now();
  const err = await failure(connectTo(address, { timeoutMs: 150 }));
  assert.equal(err.code, 'ETIMEDOUT');
  assert.equal(err.dialCase, 'timeout');
  assert.ok(Date.now() - started >= 140, 'not before the timeout');
  assert.equal(opened.length, first + 1, 'one socket per attempt');
  await waitFor(
    () => leftOpen(first) === 0 && timers() <= before,
    5000,
    'the socket and timer released',
  );
});

test('connectTo stops at an abort, as aborted, and leaves nothing open', async (t) => {
  const address = parse(await blackholeAddress(t));
  const before = timers();
  const first = opened.length;
  const controller = new AbortController();
  const attempt = connectTo(address, { timeoutMs: 60_000, signal: controller.signal });
  // Abort once the SYN is out (the connect starts on the next tick), not before.
  await waitFor(
    () =>
      process.getActiveResourcesInfo().includes('TCPConnectWrap') ||
      process.getActiveResourcesInfo().includes('ConnectWrap'),
    5000,
    'the connect under way',
  );
  controller.abort();
  const err = await failure(attempt);
  assert.equal(err.code, 'ABORT_ERR');
  assert.equal(err.dialCase, 'aborted');
  assert.equal(opened.length, first + 1, 'one socket per attempt');
  await waitFor(
    () => leftOpen(first) === 0 && timers() <= before,
    5000,
    'the socket and timer released',
  );
  // Already aborted: no socket is opened at all.
  const again = await failure(connectTo(address, { timeoutMs: 1000, signal: controller.signal }));
  assert.equal(again.dialCase, 'aborted');
  assert.equal(opened.length, first + 1, 'no socket for an attempt aborted before it began');
});
