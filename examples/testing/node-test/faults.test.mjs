// Network faults in a node:test suite: a plain socket and a Redis client (ioredis)
// against a real redis-server, through l4proxy (docs/testing.md).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { createProxy } from 'l4proxy';
import { startRedisServer } from '../redis-server.mjs';

let redisServer;
before(async () => {
  redisServer = await startRedisServer();
});
after(() => redisServer.stop());
const timeout = 5000; // node:test has no default: a test waiting for a fault that never comes fails

test('a reply cut after exactly 3 bytes', { timeout }, async (t) => {
  const echo = createServer((socket) => socket.pipe(socket)).listen(0, '127.0.0.1');
  await once(echo, 'listening');
  t.after(() => echo.close());
  const proxy = await createProxy({
    listen: '127.0.0.1:0',
    targets: [`127.0.0.1:${echo.address().port}`],
  }).listen();
  t.after(() => proxy.close({ graceful: false }));

  const next = proxy.nextConnection(); // before the client connects
  const socket = connect(proxy.address().port, '127.0.0.1');
  const conn = await next;
  conn.cutAfter('downstream', 3); // 3 more bytes to the client, then a FIN both ways
  let got = '';
  socket.setEncoding('utf8').on('data', (chunk) => {
    got += chunk;
  });
  socket.write('hello');
  await once(socket, 'close');
  assert.equal(got, 'hel');
  assert.equal((await conn.closed).cause, 'toxic');
});

test('a slow Redis makes the command time out, and recovers', { timeout }, async (t) => {
  const proxy = await createProxy({
    listen: '127.0.0.1:0',
    targets: [`127.0.0.1:${redisServer.port}`],
  }).listen();
  t.after(() => proxy.close({ graceful: false }));
  const redis = new Redis({
    port: proxy.address().port,
    host: '127.0.0.1',
    lazyConnect: true,
    commandTimeout: 500,
  });
  t.after(() => redis.disconnect());
  await redis.connect();
  assert.equal(await redis.ping(), 'PONG');

  // Every reply now waits 1000 ms in the proxy: longer than the client's 500 ms.
  proxy.toxics().add({ type: 'latency', attributes: { latency: 1000 } });
  await assert.rejects(redis.ping(), /Command timed out/);

  proxy.toxics().reset(); // the network is fine again (held replies go on at once)
  assert.equal(await redis.ping(), 'PONG');
});
