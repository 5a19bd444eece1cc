/**
 * Deterministic faults from JavaScript (issue #12, docs/testing.md): `proxy.toxics()`,
 * `proxy.nextConnection()` and its handle, `proxy.refuseNext()`, `proxy.hangNext()`,
 * on real sockets on 127.0.0.1 with a real echo upstream. Each test waits for
 * conditions (bytes counted, sockets closed), never for time.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { type ConnectionInfo, createProxy, type TcpProxy } from '../src/index.js';
import { withTimeout } from './helpers/cli.js';
import {
  connectClient,
  echo,
  type RecordingClient,
  startUpstream,
  type Upstream,
  waitFor,
} from './helpers/net.js';

/** setUp: an echo upstream and a proxy in front of it (closed by the test's `await using`). */
async function setUp(
  t: TestContext,
): Promise<{ upstream: Upstream; proxy: TcpProxy; port: number }> {
  const upstream = await startUpstream(t, echo);
  const proxy = await createProxy({ listen: '127.0.0.1:0', targets: [upstream.address] }).listen();
  return { upstream, proxy, port: proxy.address().port };
}

/** echoed waits until `client` has received `n` bytes in all. */
async function echoed(client: RecordingClient, n: number, what: string): Promise<Buffer> {
  await waitFor(() => client.received().length >= n, 5000, what);
  return client.received();
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('toxics(): typed add, list, update, remove and reset act on the live path', async (t) => {
  const { upstream, proxy, port } = await setUp(t);
  await using _proxy = proxy;
  const toxics = proxy.toxics();
  const added = toxics.add({ type: 'latency', stream: 'downstream', attributes: { latency: 300 } });
  assert.equal(added.name, 'latency_downstream');
  assert.deepEqual(added.attributes, { latency: 300, jitter: 0 });
  toxics.add({ type: 'noop', name: 'n', stream: 'upstream', toxicity: 1 });
  assert.deepEqual(
    toxics.list().map((x) => x.name),
    ['n', 'latency_downstream'],
  );
  const client = connectClient(port);
  const started = Date.now();
  client.socket.write('ping');
  assert.equal((await echoed(client, 4, 'ping echoed')).toString(), 'ping');
  assert.ok(Date.now() - started >= 280, 'the latency held the echo back');
  const updated = toxics.update('latency_downstream', { attributes: { latency: 0 } });
  assert.deepEqual(updated.attributes, { latency: 0, jitter: 0 });
  toxics.remove('n');
  assert.deepEqual(
    toxics.list().map((x) => x.name),
    ['latency_downstream'],
  );
  client.socket.write('pong');
  assert.equal((await echoed(client, 8, 'pong echoed')).toString(), 'pingpong');
  toxics.reset();
  assert.deepEqual(toxics.list(), []);
  assert.throws(() => toxics.remove('nope'), { code: 'PROXY_ERR_TOXIC_NOT_FOUND' });
  assert.throws(() => toxics.add({ type: 'latency', attributes: { latency: -1 } }), {
    code: 'PROXY_ERR_TOXIC_INVALID',
  });
  assert.throws(() => proxy.toxics('nope'), { code: 'PROXY_ERR_INVALID_CONFIG' });
  assert.equal(upstream.sockets.length, 1);
  client.socket.destroy();
});

test('nextConnection: pause holds 1 MiB upstream in order, resume delivers it intact', async (t) => {
  const { upstream, proxy, port } = await setUp(t);
  await using _proxy = proxy;
  const next = proxy.nextConnection();
  const client = connectClient(port);
  const conn = await withTimeout(next, 5000, 'nextConnection');
  assert.equal(conn.info().state, 'relaying');
  conn.pause('upstream');
  // A listener toxic added and removed while the connection is held composes with it.
  proxy.toxics().add({ type: 'noop', name: 'n', stream: 'upstream' });
  const payload = randomBytes(1024 * 1024);
  client.socket.write(payload);
  await waitFor(() => conn.info().bytesFromClient >= 64 * 1024, 5000, 'the proxy read and held');
  const server = await upstream.accepted(0);
  assert.equal(server.bytesRead, 0, 'nothing reached the upstream while paused');
  proxy.toxics().remove('n');
  conn.resume('upstream');
  await withTimeout(conn.bytes('upstream', payload.length), 10000, '1 MiB upstream');
  const back = await echoed(client, payload.length, '1 MiB echoed');
  assert.equal(back.length, payload.length);
  assert.equal(sha256(back), sha256(payload));
  client.socket.end();
  const info = await withTimeout(conn.closed, 5000, 'closed');
  assert.equal(info.cause, 'client_fin');
});

test('a listener toxic there before the connection composes with its handle', async (t) => {
  const { proxy, port } = await setUp(t);
  await using _proxy = proxy;
  proxy.toxics().add({ type: 'slicer', stream: 'downstream', attributes: { average_size: 100 } });
  const next = proxy.nextConnection();
  const client = connectClient(port);
  const conn = await withTimeout(next, 5000, 'nextConnection');
  conn.pause('downstream');
  const payload = randomBytes(128 * 1024);
  client.socket.write(payload);
  await withTimeout(conn.bytes('upstream', payload.length), 10000, 'all sent upstream');
  assert.equal(client.received().length, 0, 'held behind the slicer');
  conn.resume('downstream');
  proxy.toxics().reset();
  const back = await echoed(client, payload.length, 'echo through slicer and pause');
  assert.equal(sha256(back), sha256(payload));
  client.socket.destroy();
});

test('a listener limit_data toxic acts on a held connection, before its pause', async (t) => {
  const { proxy, port } = await setUp(t);
  await using _proxy = proxy;
  proxy.toxics().add({ type: 'limit_data', stream: 'downstream', attributes: { bytes: 1000 } });
  const next = proxy.nextConnection();
  const client = connectClient(port);
  const conn = await withTimeout(next, 5000, 'nextConnection');
  conn.pause('downstream');
  client.socket.write(Buffer.alloc(5000, 'q'));
  await withTimeout(conn.bytes('upstream', 5000), 5000, 'sent upstream');
  conn.resume('downstream');
  const info = await withTimeout(conn.closed, 5000, 'closed by limit_data');
  assert.equal(info.cause, 'toxic');
  assert.equal(info.toxic, 'limit_data_downstream');
  await withTimeout(client.ended, 5000, 'client got FIN');
  assert.equal(client.received().length, 1000);
});

test('nextConnection: pause downstream holds the echo until resume', async (t) => {
  const { proxy, port } = await setUp(t);
  await using _proxy = proxy;
  const next = proxy.nextConnection();
  const client = connectClient(port);
  const conn = await withTimeout(next, 5000, 'nextConnection');
  conn.pause('downstream');
  client.socket.write('abc');
  await waitFor(() => conn.info().bytesFromUpstream === 3, 5000, 'echo read by the proxy');
  assert.equal(client.received().length, 0);
  conn.resume('downstream');
  assert.equal((await echoed(client, 3, 'echo after resume')).toString(), 'abc');
  client.socket.destroy();
});

test('cutAfter lets exactly n more bytes through, then closes with cause toxic', async (t) => {
  const { proxy, port } = await setUp(t);
  await using _proxy = proxy;
  const next = proxy.nextConnection();
  const client = connectClient(port);
  const conn = await withTimeout(next, 5000, 'nextConnection');
  client.socket.write('hello');
  await echoed(client, 5, 'hello echoed');
  conn.cutAfter('downstream', 10);
  client.socket.write(Buffer.alloc(1000, 'x'));
  const info = await withTimeout(conn.closed, 5000, 'closed');
  await withTimeout(client.ended, 5000, 'client got FIN');
  assert.equal(info.cause, 'toxic');
  assert.equal(client.received().toString(), `hello${'x'.repeat(10)}`);
  assert.equal(info.bytesToClient, 15);
  assert.equal(info.toxic, 'cut_after');
});

test('cutAfter upstream: the target gets exactly n more bytes', async (t) => {
  const { upstream, proxy, port } = await setUp(t);
  await using _proxy = proxy;
  const next = proxy.nextConnection();
  const client = connectClient(port);
  const conn = await withTimeout(next, 5000, 'nextConnection');
  conn.cutAfter('upstream', 7);
  client.socket.write(Buffer.alloc(64 * 1024, 'y'));
  const info = await withTimeout(conn.closed, 5000, 'closed');
  assert.equal(info.cause, 'toxic');
  assert.equal(info.bytesToUpstream, 7);
  const server = await upstream.accepted(0);
  await waitFor(() => server.readableEnded || server.destroyed, 5000, 'the target saw the end');
  assert.equal(server.bytesRead, 7);
  assert.throws(() => conn.cutAfter('upstream', -1), RangeError);
  client.socket.destroy();
});

test('bytes(), addToxic on one connection only, reset and close', async (t) => {
  const { proxy, port } = await setUp(t);
  await using _proxy = proxy;
  let next = proxy.nextConnection();
  const a = connectClient(port);
  const held = await withTimeout(next, 5000, 'nextConnection a');
  const toxic = held.addToxic({
    type: 'latency',
    stream: 'downstream',
    attributes: { latency: 300 },
  });
  assert.equal(toxic.name, 'latency_downstream');
  assert.deepEqual(proxy.toxics().list(), [], 'not a listener toxic');
  const started = Date.now();
  a.socket.write('12345');
  await withTimeout(held.bytes('upstream', 5), 5000, 'bytes upstream');
  await withTimeout(held.bytes('downstream', 5), 5000, 'bytes downstream');
  assert.ok(Date.now() - started >= 280, 'the connection toxic delayed the echo');
  assert.equal((await echoed(a, 5, 'a echoed')).toString(), '12345');
  assert.equal(held.removeToxic('latency_downstream'), true);
  held.reset();
  const resetInfo = await withTimeout(held.closed, 5000, 'a closed');
  assert.deepEqual([resetInfo.cause, resetInfo.toxic], ['toxic', 'reset']);
  assert.equal(await withTimeout(a.closed, 5000, 'a socket closed'), 'ECONNRESET');

  next = proxy.nextConnection();
  const b = connectClient(port);
  const graceful = await withTimeout(next, 5000, 'nextConnection b');
  b.socket.write('z');
  await echoed(b, 1, 'b echoed');
  graceful.close();
  const info: ConnectionInfo = await withTimeout(graceful.closed, 5000, 'b closed');
  assert.deepEqual([info.cause, info.toxic], ['toxic', 'close']);
  await withTimeout(b.ended, 5000, 'b got FIN');
  assert.equal(b.errorCode, null);
});

test('refuseNext: the next n clients are reset and nothing is dialled', async (t) => {
  const { upstream, proxy, port } = await setUp(t);
  await using _proxy = proxy;
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info) => closes.push(info));
  proxy.refuseNext(2);
  for (const i of [1, 2]) {
    const refused = connectClient(port);
    refused.socket.write('hi');
    await withTimeout(refused.closed, 5000, `refused ${i} closed`);
    assert.equal(refused.received().length, 0);
    assert.ok(refused.errorCode === 'ECONNRESET' || refused.sawEnd, 'reset or closed at once');
  }
  assert.equal(upstream.sockets.length, 0, 'the upstream saw no connection');
  await waitFor(() => closes.length === 2, 5000, 'two close records');
  assert.deepEqual(
    closes.map((c) => [c.cause, c.toxic, c.attempts]),
    [
      ['toxic', 'refuse_next', 0],
      ['toxic', 'refuse_next', 0],
    ],
  );
  const ok = connectClient(port);
  ok.socket.write('ok');
  assert.equal((await echoed(ok, 2, 'third relays')).toString(), 'ok');
  assert.equal(upstream.sockets.length, 1);
  ok.socket.destroy();
  assert.throws(() => proxy.refuseNext(-1), { code: 'PROXY_ERR_INVALID_CONFIG' });
});

test('hangNext: the client is accepted but never dialled until it leaves or the proxy closes', async (t) => {
  const { upstream, proxy, port } = await setUp(t);
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info) => closes.push(info));
  try {
    proxy.hangNext(2);
    const first = connectClient(port);
    await once(first.socket, 'connect');
    first.socket.write('anyone?');
    await waitFor(
      () => proxy.connections()[0]?.bytesFromClient === 7,
      5000,
      'the proxy read the hung client',
    );
    assert.equal(upstream.sockets.length, 0, 'nothing dialled');
    assert.equal(proxy.connections()[0]?.attempts, 0);
    first.socket.end();
    await waitFor(() => closes.length === 1, 5000, 'the hung client left');
    assert.equal(closes[0]?.cause, 'client_fin');
    assert.equal(first.received().length, 0);

    const second = connectClient(port);
    await once(second.socket, 'connect');
    await waitFor(() => proxy.connections().length === 1, 5000, 'second hangs');
    await proxy.close({ graceful: false });
    await withTimeout(second.ended, 5000, 'second closed by the proxy');
    assert.equal(closes[1]?.cause, 'shutdown');
    assert.equal(upstream.sockets.length, 0, 'the upstream saw no connection');
  } finally {
    await proxy.close({ graceful: false });
  }
});

test('a reload that moves the listener keeps its pending refuseNext, hangNext and nextConnection', async (t) => {
  const upstream = await startUpstream(t, echo);
  const listener = { name: 'app', listen: '127.0.0.1:0', targets: [upstream.address] };
  await using proxy = await createProxy({ listeners: [listener] }).listen();
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (info) => closes.push(info));
  proxy.refuseNext(1);
  proxy.hangNext(1);
  const next = proxy.nextConnection();
  const result = await proxy.reload({ listeners: [{ ...listener, listen: '[::1]:0' }] });
  assert.deepEqual(result.changed, ['app']);
  const port = proxy.address().port;
  assert.equal(proxy.address().address, '::1', 'the listener moved');

  const refused = connectClient(port, '::1');
  await withTimeout(refused.closed, 5000, 'the refused client closed');
  await waitFor(() => closes.length === 1, 5000, 'the refusal recorded');
  assert.deepEqual([closes[0]?.cause, closes[0]?.toxic], ['toxic', 'refuse_next']);

  const hung = connectClient(port, '::1');
  t.after(() => hung.socket.destroy());
  await once(hung.socket, 'connect');
  await waitFor(() => proxy.connections().length === 1, 5000, 'the hung client accepted');
  assert.equal(proxy.connections()[0]?.attempts, 0, 'the hung client is never dialled');

  const held = connectClient(port, '::1');
  t.after(() => held.socket.destroy());
  const conn = await withTimeout(next, 5000, 'nextConnection after the move');
  held.socket.write('moved');
  assert.equal((await echoed(held, 5, 'the held connection relays')).toString(), 'moved');
  await conn.close();
  await withTimeout(conn.closed, 5000, 'the held connection closed');
  assert.equal(upstream.sockets.length, 1, 'only the held connection was dialled');
});
