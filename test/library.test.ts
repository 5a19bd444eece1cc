/**
 * The library's edges: what `address()` promises before and after `listen()`.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createProxy } from '../src/index.js';

test('address() is the bound TCP address after listen(), and throws PROXY_ERR_NOT_LISTENING before and after', async (t) => {
  const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000'] });
  assert.throws(() => proxy.address(), {
    code: 'PROXY_ERR_NOT_LISTENING',
    message: 'address: proxy is idle, not listening on TCP',
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  // The type says it too: no null check is needed after listen().
  const address: AddressInfo = proxy.address();
  assert.equal(address.address, '127.0.0.1');
  assert.ok(address.port > 0);
  await proxy.close({ graceful: false });
  assert.throws(() => proxy.address(), { code: 'PROXY_ERR_NOT_LISTENING' });
});

test('address() throws for a Unix domain socket listener; addresses() has null for it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'proxy-library-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const proxy = createProxy({
    name: 'local',
    listen: `unix:${join(dir, 'proxy.sock')}`,
    targets: ['127.0.0.1:9000'],
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  assert.throws(() => proxy.address(), {
    code: 'PROXY_ERR_NOT_LISTENING',
    message: 'address: listener local is a Unix domain socket, not listening on TCP',
  });
  assert.deepEqual(proxy.addresses(), { local: null });
});

test('TcpProxy is what users may call: the Supervisor behind it keeps its internals', () => {
  const proxy = createProxy({ listen: '127.0.0.1:0', targets: ['127.0.0.1:9000'] });
  // Compile-time checks (npm run typecheck): these are not part of the public type.
  // @ts-expect-error the logger is internal
  void proxy.log;
  // @ts-expect-error the timer set is internal
  void proxy.timers;
  // @ts-expect-error the configuration in force is internal
  void proxy.config;
  assert.equal(typeof proxy.reload, 'function');
  assert.equal(typeof proxy.on, 'function');
});

test('Symbol.asyncDispose closes the proxy at once, open connections included', async (t) => {
  const upstream = createServer((socket) => socket.on('error', () => {}));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  t.after(() => upstream.close());
  const target = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const proxy = createProxy({ listen: '127.0.0.1:0', targets: [target] });
  t.after(() => proxy.close({ graceful: false }));
  await proxy.listen();
  const client = connect(proxy.address().port, '127.0.0.1');
  client.on('error', () => {});
  await once(proxy, 'connectionConnect');
  const closed = once(client, 'close');
  await proxy[Symbol.asyncDispose]();
  assert.deepEqual(proxy.connections(), []);
  await closed;
  assert.throws(() => proxy.address(), { code: 'PROXY_ERR_NOT_LISTENING' });
});
