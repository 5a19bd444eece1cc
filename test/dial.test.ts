/**
 * Dialing targets: refusal, timeout, failover and round-robin order, on real sockets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConnectionInfo } from '../src/index.js';
import {
  blackholeAddress,
  connectClient,
  echo,
  refusedTarget,
  startProxy,
  startUpstream,
} from './helpers/net.js';
import { deadline } from './helpers/time.js';

test('closes the client promptly when the only target refuses, and keeps serving', async (t) => {
  const refused = await refusedTarget();
  const { proxy, port } = await startProxy(t, { targets: [refused] });
  const closes: ConnectionInfo[] = [];
  proxy.on('connectionClose', (c) => closes.push(c));
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    const client = connectClient(port);
    await client.ended;
    assert.ok(Date.now() - started < deadline(2000), 'closed promptly');
    client.socket.destroy();
  }
  assert.deepEqual(
    closes.map((c) => [c.cause, c.error, c.upstream]),
    Array(3).fill(['connect_refused', 'ECONNREFUSED', null]),
  );
  assert.deepEqual(proxy.stats().connectFailures, { ECONNREFUSED: 3 });
});

test('gives up on a target that does not answer within the connect timeout', async (t) => {
  const silent = await blackholeAddress(t);
  const { proxy, port } = await startProxy(t, { targets: [silent], connectTimeoutMs: 200 });
  const closed = new Promise<ConnectionInfo>((r) => proxy.once('connectionClose', r));
  const started = Date.now();
  const client = connectClient(port);
  await client.ended;
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 180 && elapsed < deadline(3000), `closed after ${elapsed} ms`);
  const info = await closed;
  assert.equal(info.cause, 'connect_timeout');
  assert.deepEqual(proxy.stats().connectFailures, { ETIMEDOUT: 1 });
});

test('fails over to the next target when one refuses or times out', async (t) => {
  const refused = await refusedTarget();
  const silent = await blackholeAddress(t);
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, {
    targets: [refused, silent, upstream.address],
    connectTimeoutMs: 200,
  });
  const client = connectClient(port);
  client.socket.end('through the third target');
  await client.ended;
  assert.equal(client.received().toString(), 'through the third target');
  assert.deepEqual(proxy.stats().connectFailures, { ECONNREFUSED: 1, ETIMEDOUT: 1 });
});

// Table-driven: named upstreams; `down` ones refuse. Each row lists, for successive
// connections, which upstream served it. Round-robin starts one further each time,
// and a refused target is skipped for that connection only.
// `refusals` is how many connect attempts were refused along the way.
const ROUND_ROBIN_CASES: { name: string; down: string[]; served: string[]; refusals: number }[] = [
  { name: 'all up', down: [], served: ['A', 'B', 'C', 'A', 'B', 'C'], refusals: 0 },
  { name: 'B refuses', down: ['B'], served: ['A', 'C', 'C', 'A', 'C', 'C'], refusals: 2 },
  // starts: A (A✗ B), B, C (C✗ A✗ B), A (A✗ B)
  { name: 'A and C refuse', down: ['A', 'C'], served: ['B', 'B', 'B', 'B'], refusals: 4 },
];

for (const row of ROUND_ROBIN_CASES) {
  test(`picks upstreams in round-robin order with failover: ${row.name}`, async (t) => {
    const addresses: Record<string, string> = {};
    const names = ['A', 'B', 'C'];
    for (const name of names) {
      if (row.down.includes(name)) {
        addresses[name] = await refusedTarget();
      } else {
        const upstream = await startUpstream(t, (socket) => socket.end(name));
        addresses[name] = upstream.address;
      }
    }
    const { proxy, port } = await startProxy(t, {
      targets: names.map((n) => addresses[n] as string),
    });
    const served: string[] = [];
    for (let i = 0; i < row.served.length; i++) {
      const client = connectClient(port); // one at a time, so the order is the proxy's
      await client.ended;
      served.push(client.received().toString());
      client.socket.end();
    }
    assert.deepEqual(served, row.served);
    assert.equal(proxy.stats().connectFailures['ECONNREFUSED'] ?? 0, row.refusals);
  });
}
