/**
 * The listener: many clients at once, no descriptor leak, --max-connections,
 * IPv6, and listen errors.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { type ConnectionInfo, createProxy } from '../src/index.js';
import {
  connectClient,
  echo,
  patternBytes,
  type RecordingClient,
  startProxy,
  startUpstream,
  waitFor,
} from './helpers/net.js';

async function roundTrip(port: number, payload: Buffer, host?: string): Promise<RecordingClient> {
  const client = connectClient(port, host);
  client.socket.end(payload);
  await client.ended;
  return client;
}

test('serves 1000 concurrent connections, each with its own bytes intact', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const clients: RecordingClient[] = [];
  const payloads: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    payloads.push(patternBytes(2048, i + 1));
    clients.push(connectClient(port));
  }
  // All 1000 are open at the same time before any byte is sent.
  await waitFor(() => proxy.connections().length === 1000, 20_000, '1000 open connections');
  for (const [i, c] of clients.entries()) c.socket.end(payloads[i] as Buffer);
  await Promise.all(clients.map((c) => c.ended));
  for (const [i, c] of clients.entries()) {
    assert.ok(c.received().equals(payloads[i] as Buffer), `client ${i}`);
  }
  await waitFor(() => proxy.connections().length === 0, 10_000, 'all closed');
  const stats = proxy.stats();
  assert.equal(stats.accepted, 1000);
  assert.equal(stats.bytesToUpstream, 2048 * 1000);
  assert.equal(stats.bytesToClient, 2048 * 1000);
});

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

test('leaks no file descriptors over thousands of connections', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const before = openDescriptors();
  let done = 0;
  const payload = Buffer.from('ping');
  for (let batch = 0; batch < 15; batch++) {
    const round = Array.from({ length: 200 }, () => roundTrip(port, payload));
    for (const client of await Promise.all(round)) {
      assert.equal(client.received().toString(), 'ping');
      client.socket.destroy();
      done += 1;
    }
  }
  assert.equal(done, 3000);
  await waitFor(() => proxy.connections().length === 0, 10_000, 'proxy connections closed');
  await waitFor(
    () => upstream.sockets.every((s) => s.destroyed),
    10_000,
    'upstream sockets closed',
  );
  await waitFor(() => openDescriptors() <= before + 5, 10_000, 'descriptors back to the start');
  assert.equal(proxy.stats().accepted, 3000);
});

test('accepts and closes at once the clients beyond --max-connections', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, { targets: [upstream.address], maxConnections: 2 });
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (c) => closes.push(c));
  const first = connectClient(port);
  const second = connectClient(port);
  await waitFor(() => proxy.connections().length === 2, 5000, 'two connections');
  const third = connectClient(port);
  await third.ended; // closed at once, no byte ever sent to it
  assert.equal(third.received().length, 0);
  assert.equal(closes.length, 1);
  assert.equal(closes[0]?.cause, 'max_connections');
  assert.equal(closes[0]?.upstream, null);
  // The two within the limit still work; once one leaves, a new client is served.
  first.socket.end('one');
  await first.ended;
  assert.equal(first.received().toString(), 'one');
  const fourth = await roundTrip(port, Buffer.from('four'));
  assert.equal(fourth.received().toString(), 'four');
  second.socket.destroy();
  const stats = proxy.stats();
  assert.equal(stats.accepted, 4);
  assert.equal(stats.closed.max_connections, 1);
});

test('listens and connects over IPv6', async (t) => {
  const probe = createServer();
  try {
    probe.listen(0, '::1');
    await once(probe, 'listening');
  } catch {
    t.skip('::1 is not available on this machine');
    return;
  } finally {
    probe.close();
  }
  const upstream = await startUpstream(t, echo, '::1');
  const proxy = createProxy({ listen: '[::1]:0', targets: [upstream.address] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const address = proxy.address();
  assert.equal(address?.family, 'IPv6');
  const closed = new Promise<ConnectionInfo>((r) => proxy.once('connectionClose', r));
  const client = await roundTrip(address?.port ?? 0, Buffer.from('over v6'), '::1');
  assert.equal(client.received().toString(), 'over v6');
  const info = await closed;
  assert.match(info.client, /^\[::1\]:\d+$/);
  assert.equal(info.upstream, upstream.address);
});

test('rejects listen() on an address in use with PROXY_ERR_LISTEN naming the address', async (t) => {
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  const proxy = createProxy({ listen: `127.0.0.1:${port}`, targets: ['127.0.0.1:1'] });
  await assert.rejects(proxy.listen(), {
    code: 'PROXY_ERR_LISTEN',
    message: `listen 127.0.0.1:${port}: address in use`,
  });
});

test('throws PROXY_ERR_INVALID_CONFIG naming the option for bad library options', () => {
  assert.throws(() => createProxy({ listen: '127.0.0.1:0', targets: [] }), {
    code: 'PROXY_ERR_INVALID_CONFIG',
    message: /^targets: /,
  });
  assert.throws(() => createProxy({ listen: 'nope', targets: ['127.0.0.1:1'] }), {
    code: 'PROXY_ERR_INVALID_CONFIG',
    message: /^listen: /,
  });
  assert.throws(
    () => createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:1'], idleTimeoutMs: -1 }),
    { code: 'PROXY_ERR_INVALID_CONFIG', message: /^idleTimeoutMs: / },
  );
});
