/**
 * The access record: exactly one JSON line per closed connection, with the contract's
 * field names, for every close cause, each provoked on real sockets.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type TestContext, test } from 'node:test';
import type { ProxyOptions } from '../src/index.js';
import {
  blackholeAddress,
  connectClient,
  echo,
  refusedTarget,
  startProxy,
  startUpstream,
  waitFor,
} from './helpers/net.js';
import { deadline } from './helpers/time.js';

type Record = { [key: string]: unknown; msg: string };

async function loggedProxy(
  t: TestContext,
  options: Partial<ProxyOptions> & { targets: readonly string[] },
) {
  const lines: string[] = [];
  const started = await startProxy(t, {
    ...options,
    log: { level: 'info', format: 'json', write: (line) => lines.push(line) },
  });
  const records = (): Record[] => lines.map((l) => JSON.parse(l) as Record);
  const closed = (): Record[] => records().filter((r) => r.msg === 'connection closed');
  const nextClosed = async (n = 1): Promise<Record> => {
    await waitFor(() => closed().length >= n, 5000, `${n} access record(s)`);
    return closed()[n - 1] as Record;
  };
  return { ...started, records, closed, nextClosed };
}

const FIELDS = [
  'time',
  'level',
  'msg',
  'id',
  'listener',
  'client',
  'upstream',
  'duration_ms',
  'bytes_to_upstream',
  'bytes_to_client',
  'cause',
];

function assertRecord(record: Record, cause: string, expect: Partial<Record> = {}): void {
  for (const field of FIELDS)
    assert.ok(field in record, `field ${field} in ${JSON.stringify(record)}`);
  assert.equal(record['level'], 'info');
  assert.equal(record['cause'], cause);
  assert.match(String(record['client']), /^127\.0\.0\.1:\d+$/);
  for (const [key, value] of Object.entries(expect)) assert.deepEqual(record[key], value, key);
}

test('client_fin: bytes each way, connect_ms, first_close client', async (t) => {
  const upstream = await startUpstream(t, (s) => {
    s.on('data', () => {});
    s.on('end', () => s.end('goodbye'));
  });
  const proxy = await loggedProxy(t, { targets: [upstream.address] });
  const client = connectClient(proxy.port);
  client.socket.end('hello');
  await client.ended;
  const record = await proxy.nextClosed();
  assertRecord(record, 'client_fin', {
    upstream: upstream.address,
    bytes_to_upstream: 5,
    bytes_to_client: 7,
    first_close: 'client',
    listener: '127.0.0.1:0',
  });
  assert.equal(typeof record['connect_ms'], 'number');
  assert.equal(proxy.closed().length, 1, 'exactly one record per connection');
});

test('upstream_fin', async (t) => {
  const upstream = await startUpstream(t, (s) => s.end('bye'));
  const proxy = await loggedProxy(t, { targets: [upstream.address] });
  const client = connectClient(proxy.port);
  await client.ended;
  client.socket.end();
  assertRecord(await proxy.nextClosed(), 'upstream_fin', {
    first_close: 'upstream',
    bytes_to_client: 3,
  });
});

test('client_reset and upstream_reset', async (t) => {
  const upstream = await startUpstream(t, echo);
  const proxy = await loggedProxy(t, { targets: [upstream.address] });
  const a = connectClient(proxy.port);
  await waitFor(() => proxy.proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  a.socket.resetAndDestroy();
  assertRecord(await proxy.nextClosed(1), 'client_reset', {
    error: 'ECONNRESET',
    first_close: 'client',
  });
  const b = connectClient(proxy.port);
  const upstreamSocket = await upstream.accepted(1);
  await waitFor(() => proxy.proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  upstreamSocket.resetAndDestroy();
  await b.closed;
  assertRecord(await proxy.nextClosed(2), 'upstream_reset', { first_close: 'upstream' });
});

test('idle_timeout and half_close_timeout', async (t) => {
  const upstream = await startUpstream(t);
  const proxy = await loggedProxy(t, {
    targets: [upstream.address],
    idleTimeoutMs: 150,
    halfCloseTimeoutMs: 100,
  });
  connectClient(proxy.port);
  assertRecord(await proxy.nextClosed(1), 'idle_timeout');
  const half = connectClient(proxy.port);
  await upstream.accepted(1);
  half.socket.end();
  assertRecord(await proxy.nextClosed(2), 'half_close_timeout', { first_close: 'client' });
});

test('connect_refused, connect_timeout and connect_error: upstream is null, no connect_ms', async (t) => {
  const refused = await loggedProxy(t, { targets: [await refusedTarget()] });
  connectClient(refused.port);
  const r = await refused.nextClosed();
  assertRecord(r, 'connect_refused', { upstream: null, error: 'ECONNREFUSED' });
  assert.ok(!('connect_ms' in r));

  const silent = await loggedProxy(t, {
    targets: [await blackholeAddress(t)],
    connectTimeoutMs: 100,
  });
  connectClient(silent.port);
  assertRecord(await silent.nextClosed(), 'connect_timeout', {
    upstream: null,
    error: 'ETIMEDOUT',
  });

  // A name that cannot resolve (.invalid is reserved): the lookup fails before any connect.
  const unresolvable = await loggedProxy(t, { targets: ['no-such-host.invalid:80'] });
  connectClient(unresolvable.port);
  const e = await unresolvable.nextClosed();
  assertRecord(e, 'connect_error', { upstream: null });
  assert.match(String(e['error']), /^(ENOTFOUND|EAI_AGAIN)$/);
});

test('no_target: every target drained', async (t) => {
  const upstream = await startUpstream(t, echo);
  const proxy = await loggedProxy(t, { name: 'web', targets: [upstream.address] });
  proxy.proxy.setTargetDrained('web', upstream.address, true);
  const client = connectClient(proxy.port);
  await client.ended;
  assertRecord(await proxy.nextClosed(), 'no_target', { upstream: null, listener: 'web' });
  assert.equal(upstream.sockets.length, 0);
});

test('max_connections', async (t) => {
  const upstream = await startUpstream(t, echo);
  const proxy = await loggedProxy(t, { targets: [upstream.address], maxConnections: 1 });
  connectClient(proxy.port);
  await waitFor(() => proxy.proxy.connections().length === 1, 5000, 'first connection');
  const second = connectClient(proxy.port);
  await second.ended;
  assertRecord(await proxy.nextClosed(), 'max_connections', { upstream: null });
});

test('shutdown and admin_kill', async (t) => {
  const upstream = await startUpstream(t, echo);
  const proxy = await loggedProxy(t, { targets: [upstream.address], shutdownTimeoutMs: 50 });
  const killed = connectClient(proxy.port);
  await waitFor(() => proxy.proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  const id = proxy.proxy.connections()[0]?.id ?? '';
  assert.equal(proxy.proxy.closeConnection(id), true);
  await killed.ended;
  assertRecord(await proxy.nextClosed(1), 'admin_kill', { upstream: upstream.address });
  connectClient(proxy.port);
  await waitFor(() => proxy.proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  await proxy.proxy.close();
  assertRecord(await proxy.nextClosed(2), 'shutdown');
});

test('the text format carries the same fields as key=value', async (t) => {
  const lines: string[] = [];
  const upstream = await startUpstream(t, (s) => s.end('x'));
  const { port } = await startProxy(t, {
    targets: [upstream.address],
    log: { level: 'info', format: 'text', write: (line) => lines.push(line) },
  });
  const client = connectClient(port);
  await client.ended;
  client.socket.end();
  await waitFor(() => lines.some((l) => l.includes('connection closed')), 5000, 'text record');
  const line = lines.find((l) => l.includes('connection closed')) ?? '';
  assert.match(
    line,
    / INFO connection closed id=\d+ listener=127\.0\.0\.1:0 client=127\.0\.0\.1:\d+ upstream=127\.0\.0\.1:\d+ connect_ms=\d+ duration_ms=\d+ bytes_to_upstream=0 bytes_to_client=1 cause=upstream_fin first_close=upstream$/,
  );
});

test('a TCP client that reset before it was accepted is logged as client=unknown, not unix', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { port, nextClosed } = await loggedProxy(t, { targets: [upstream.address] });
  // The proxy runs in this process: while spawnSync blocks our event loop, a child
  // connects (the kernel completes the handshake from the listen backlog) and resets.
  // The proxy accepts a connection that is already gone, whose address cannot be read.
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').connect(${port}, '127.0.0.1');
       s.on('connect', () => { s.resetAndDestroy(); });
       s.on('close', () => process.exit(0));
       s.on('error', () => {});`,
    ],
    { timeout: deadline(10_000) },
  );
  assert.equal(child.status, 0, String(child.stderr));
  const record = await nextClosed();
  assert.equal(record['client'], 'unknown');
  assert.equal(record['cause'], 'client_reset');
});
