/**
 * A Listener built from settings (`acceptProxy`, the access rules, `sendProxy`) gives its
 * connections the admission hooks (admission.ts `ListenerAdmission`): source hashing
 * plans with the PROXY header's source IP, its one AccessControl outlives a reload
 * (`update`), and a plain listener gets no hooks. Real sockets on 127.0.0.x.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type ListenerOptions, resolveListener } from '../src/config/config.js';
import type { ConnectionInfo } from '../src/connection-info.js';
import { AdminServer, createProxy } from '../src/index.js';
import { Listener } from '../src/listener.js';
import { Logger } from '../src/log.js';
import { TimerSet } from '../src/timer-set.js';
import { sourceHash } from '../src/upstream/balance.js';
import { startUpstream, type Upstream, waitFor } from './helpers/net.js';

async function startListener(t: TestContext, options: Omit<ListenerOptions, 'listen'>) {
  const closed: ConnectionInfo[] = [];
  const config = resolveListener({ listen: '127.0.0.1:0', ...options }, '');
  const listener = new Listener(config, new TimerSet(), new Logger({ level: 'silent' }), {
    connectionOpen: () => {},
    connectionConnect: () => {},
    connectionClose: (info) => closed.push(info),
  });
  await listener.listen();
  t.after(() => {
    listener.stopAccepting();
    listener.closeAll('shutdown');
  });
  return { listener, port: listener.address()?.port as number, closed };
}

async function clientFrom(port: number, from = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

test('a plain listener gives its connections no hooks', async (t) => {
  const upstream = await startUpstream(t);
  const { listener } = await startListener(t, { targets: [upstream.address] });
  assert.equal(listener.contextConfig, listener.config);
  assert.equal(listener.contextConfig.hooks, undefined);
});

test('source hashing plans with the PROXY header source IP, not the socket address', async (t) => {
  const upstreams: Upstream[] = [];
  const endWhenEnded = (socket: Socket) => {
    socket.resume();
    socket.on('end', () => socket.end());
  };
  for (let i = 0; i < 2; i++) upstreams.push(await startUpstream(t, endWhenEnded));
  const { listener, port, closed } = await startListener(t, {
    targets: upstreams.map((u) => u.address),
    acceptProxy: true,
  });
  listener.pool.strategy = sourceHash;
  // The targets' ports are the kernel's choice, so which source hashes where differs
  // from run to run: take four sources and then one that hashes elsewhere than the first
  // (among 64 candidates, so two targets are both hit).
  const targetOf = (ip: string) => sourceHash(listener.pool, ip).targets[0]?.target.address;
  const candidates = Array.from({ length: 64 }, (_, i) => `192.0.2.${i + 1}`);
  const first = candidates.slice(0, 4);
  const other = candidates.slice(4).find((ip) => targetOf(ip) !== targetOf(first[0] ?? ''));
  const sources = [...first, other ?? '203.0.113.5'];
  const expected = sources.map(targetOf);
  assert.ok(new Set(expected).size > 1, 'the sources hash to more than one target');
  for (const [i, ip] of sources.entries()) {
    const client = await clientFrom(port);
    client.resume();
    client.end(`PROXY TCP4 ${ip} 127.0.0.1 4000 80\r\n`);
    await waitFor(() => closed.length > i, 5000, `connection ${i} to close`);
    assert.equal(closed[i]?.client, `${ip}:4000`);
    assert.equal(closed[i]?.upstream, expected[i], `the target of ${ip}`);
  }
});

test("a reload keeps the listener's AccessControl: open connections stay counted, new rules apply", async (t) => {
  const upstream = await startUpstream(t);
  const base = { name: 'edge', targets: [upstream.address], maxConnectionsPerIp: 1 };
  const { listener, port, closed } = await startListener(t, base);
  const open = await clientFrom(port, '127.0.0.2');
  await upstream.accepted(0);
  listener.update(resolveListener({ ...base, listen: '127.0.0.1:0', deny: ['127.0.0.3'] }, ''));
  const second = await clientFrom(port, '127.0.0.2');
  await waitFor(() => closed.length === 1, 5000, 'the second client to be refused');
  assert.equal(closed[0]?.cause, 'rate_limited', 'the open connection still counts');
  const denied = await clientFrom(port, '127.0.0.3');
  await waitFor(() => closed.length === 2, 5000, 'the denied client');
  assert.equal(closed[1]?.cause, 'denied', 'the new deny list applies');
  assert.equal(upstream.sockets.length, 1);
  for (const socket of [open, second, denied]) socket.destroy();
});

test('/api/connections shows the PROXY header source as the client of an open connection', async (t) => {
  const upstream = await startUpstream(t, (socket) => socket.resume());
  const proxy = createProxy({
    listen: '127.0.0.1:0',
    targets: [upstream.address],
    acceptProxy: true,
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const admin = new AdminServer(proxy, { listen: { host: '127.0.0.1', port: 0 } });
  await admin.listen();
  t.after(() => admin.close());
  const client = await clientFrom(proxy.address()?.port as number, '127.0.0.2');
  t.after(() => client.destroy());
  client.write('PROXY TCP4 192.0.2.7 127.0.0.1 5000 80\r\nhello');
  await upstream.accepted(0);
  const response = await fetch(`http://127.0.0.1:${admin.address()?.port}/api/connections`);
  const connections = (await response.json()) as { client: string }[];
  assert.deepEqual(
    connections.map((c) => c.client),
    ['192.0.2.7:5000'],
  );
});
