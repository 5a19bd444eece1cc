/**
 * The supervisor (what createProxy returns): graceful and immediate shutdown,
 * several listeners, all-or-nothing start.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { type ConnectionInfo, createProxy } from '../src/index.js';
import { connectClient, echo, startProxy, startUpstream, waitFor } from './helpers/net.js';
import { deadline } from './helpers/time.js';

test('graceful close stops accepting at once and lets a transfer in flight finish', async (t) => {
  // The upstream trickles 40 pieces, one every 15 ms, then ends.
  const upstream = await startUpstream(t, (socket) => {
    let sent = 0;
    const timer = setInterval(() => {
      socket.write('x'.repeat(1024));
      if (++sent === 40) {
        clearInterval(timer);
        socket.end();
      }
    }, 15);
    socket.on('close', () => clearInterval(timer));
  });
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    shutdownTimeoutMs: 10_000,
  });
  const client = connectClient(port);
  await waitFor(() => client.received().length > 0, 5000, 'transfer started');
  const closing = proxy.close();
  // New clients are refused at once.
  const late = connectClient(port);
  assert.equal(await late.closed, 'ECONNREFUSED');
  await client.ended;
  client.socket.end();
  await closing;
  assert.equal(client.received().length, 40 * 1024);
  assert.equal(proxy.stats().closed.shutdown ?? 0, 0);
});

test('graceful close ends connections that outlive the shutdown timeout with cause shutdown', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    shutdownTimeoutMs: 300,
  });
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (c) => closes.push(c));
  const client = connectClient(port);
  await waitFor(() => proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  const started = Date.now();
  await proxy.close();
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 280 && elapsed < deadline(3000), `closed after ${elapsed} ms`);
  await client.ended;
  assert.deepEqual(
    closes.map((c) => c.cause),
    ['shutdown'],
  );
});

test('close({ graceful: false }) during a graceful close closes the rest at once', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    shutdownTimeoutMs: 30_000,
  });
  const client = connectClient(port);
  await waitFor(() => proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  const graceful = proxy.close();
  const started = Date.now();
  await proxy.close({ graceful: false });
  await graceful;
  assert.ok(Date.now() - started < deadline(1000), 'at once, not after the 30 s shutdown timeout');
  await client.ended;
  assert.equal(proxy.connections().length, 0);
});

test('serves several listeners, each with its own targets and name', async (t) => {
  const a = await startUpstream(t, (s) => s.end('from A'));
  const b = await startUpstream(t, (s) => s.end('from B'));
  const proxy = createProxy({
    listeners: [
      { name: 'a', listen: '127.0.0.1:0', targets: [a.address] },
      { name: 'b', listen: '127.0.0.1:0', targets: [b.address] },
    ],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const addresses = proxy.addresses();
  for (const name of ['a', 'b']) {
    const client = connectClient(addresses[name]?.port ?? 0);
    await client.ended;
    assert.equal(client.received().toString(), `from ${name.toUpperCase()}`);
    client.socket.end();
  }
  await waitFor(() => proxy.connections().length === 0, 5000, 'closed');
  const stats = proxy.stats();
  assert.equal(stats.accepted, 2);
  assert.equal(stats.listeners['a']?.accepted, 1);
  assert.equal(stats.listeners['b']?.bytesToClient, 6);
});

test('starts all listeners or none: one address in use closes the others again', async (t) => {
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const takenPort = (taken.address() as { port: number }).port;
  const free = createServer();
  free.listen(0, '127.0.0.1');
  await once(free, 'listening');
  const freePort = (free.address() as { port: number }).port;
  await new Promise((r) => free.close(r));
  const proxy = createProxy({
    listeners: [
      { name: 'ok', listen: `127.0.0.1:${freePort}`, targets: ['127.0.0.1:1'] },
      { name: 'taken', listen: `127.0.0.1:${takenPort}`, targets: ['127.0.0.1:1'] },
    ],
  });
  await assert.rejects(proxy.listen(), { code: 'PROXY_ERR_LISTEN' });
  // The listener that did bind was closed again: its port is free.
  const again = createServer();
  again.listen(freePort, '127.0.0.1');
  await once(again, 'listening');
  again.close();
});

test('emits connectionOpen and connectionClose once per connection', async (t) => {
  const upstream = await startUpstream(t, (s) => s.end('hi'));
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const events: string[] = [];
  proxy.on('connectionOpen', (c) => events.push(`open ${c.id} ${c.state}`));
  proxy.on('connectionClose', (c) => events.push(`close ${c.id} ${c.cause}`));
  const client = connectClient(port);
  await client.ended;
  client.socket.end();
  await waitFor(() => events.length === 2, 5000, 'two events');
  const id = /open (\d+)/.exec(events[0] ?? '')?.[1];
  assert.deepEqual(events, [`open ${id} connecting`, `close ${id} upstream_fin`]);
});

test('reload() adds, removes and changes listeners; open connections keep flowing', async (t) => {
  const first = await startUpstream(t, echo);
  const second = await startUpstream(t, (s) => s.end('second'));
  const proxy = createProxy({
    listeners: [
      { name: 'a', listen: '127.0.0.1:0', targets: [first.address] },
      { name: 'b', listen: '127.0.0.1:0', targets: [first.address] },
    ],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const before = proxy.addresses();
  const portA = before['a']?.port ?? 0;
  const portB = before['b']?.port ?? 0;
  const open = connectClient(portA);
  open.socket.write('before ');
  await waitFor(() => open.received().length === 7, 5000, 'echo before reload');

  const result = await proxy.reload({
    listeners: [
      { name: 'a', listen: '127.0.0.1:0', targets: [second.address] },
      { name: 'c', listen: '127.0.0.1:0', targets: [second.address] },
    ],
  });
  assert.deepEqual(result, { added: ['c'], removed: ['b'], changed: ['a'] });
  // The open connection still goes to its first upstream.
  open.socket.end('after');
  await open.ended;
  assert.equal(open.received().toString(), 'before after');
  // New connections to a go to the new target; c works; b is gone.
  const viaA = connectClient(portA);
  await viaA.ended;
  assert.equal(viaA.received().toString(), 'second');
  const viaC = connectClient(proxy.addresses()['c']?.port ?? 0);
  await viaC.ended;
  assert.equal(viaC.received().toString(), 'second');
  assert.equal(await connectClient(portB).closed, 'ECONNREFUSED');
});

test('a reload that cannot bind changes nothing', async (t) => {
  const upstream = await startUpstream(t, (s) => s.end('up'));
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const takenPort = (taken.address() as { port: number }).port;
  const proxy = createProxy({ name: 'a', listen: '127.0.0.1:0', targets: [upstream.address] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const port = proxy.address()?.port ?? 0;
  await assert.rejects(
    proxy.reload({
      listeners: [{ name: 'b', listen: `127.0.0.1:${takenPort}`, targets: [upstream.address] }],
    }),
    { code: 'PROXY_ERR_LISTEN' },
  );
  assert.deepEqual(Object.keys(proxy.addresses()), ['a']);
  const client = connectClient(port);
  await client.ended;
  assert.equal(client.received().toString(), 'up');
  await assert.rejects(proxy.reload({ listen: 'nonsense', targets: [] }), {
    code: 'PROXY_ERR_INVALID_CONFIG',
  });
});

test('close() during a reload: the listeners the reload was binding do not stay open', async (t) => {
  const upstream = await startUpstream(t, echo);
  const spare = createServer();
  spare.listen(0, '127.0.0.1');
  await once(spare, 'listening');
  const sparePort = (spare.address() as { port: number }).port;
  await new Promise((resolve) => spare.close(resolve));
  const proxy = createProxy({ name: 'a', listen: '127.0.0.1:0', targets: [upstream.address] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  // Reloads run one at a time, each from a microtask: one turn of the microtask queue
  // lets this one start binding "b"; close() then runs while the bind is pending.
  const reloading = proxy.reload({
    listeners: [{ name: 'b', listen: `127.0.0.1:${sparePort}`, targets: [upstream.address] }],
  });
  await Promise.resolve();
  const closing = proxy.close({ graceful: false });
  await assert.rejects(reloading, { code: 'PROXY_ERR_CLOSED' });
  await closing;
  const client = connectClient(sparePort);
  assert.equal(await client.closed, 'ECONNREFUSED', 'nothing listens on b');
});
