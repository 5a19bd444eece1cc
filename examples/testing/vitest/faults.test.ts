// Network faults in a Vitest suite (TypeScript): a plain socket and a Redis client
// (ioredis) against a real redis-server, through l4proxy (docs/testing.md).
import { once } from 'node:events';
import { type AddressInfo, connect, createServer } from 'node:net';
import { Redis } from 'ioredis';
import { createProxy } from 'l4proxy';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type RedisServer, startRedisServer } from '../redis-server.mjs';

let redisServer: RedisServer;
beforeAll(async () => {
  redisServer = await startRedisServer();
});
afterAll(() => redisServer.stop());

test('a connect that hangs until the client times out', async () => {
  const echo = createServer((socket) => socket.pipe(socket)).listen(0, '127.0.0.1');
  await once(echo, 'listening');
  // `await using` closes the proxy (at once) when the test ends, however it ends.
  await using proxy = await createProxy({
    listen: '127.0.0.1:0',
    targets: [`127.0.0.1:${(echo.address() as AddressInfo).port}`],
  }).listen();
  proxy.hangNext(1); // accepted, never dialled: no byte and no close
  const socket = connect({ port: proxy.address().port, host: '127.0.0.1', timeout: 200 });
  socket.write('hello?');
  await once(socket, 'timeout'); // no reply ever comes
  const closed = once(proxy, 'connectionClose');
  socket.destroy();
  const [info] = await closed;
  expect(info.cause).toBe('client_fin'); // the client gave up; the service saw nothing
  expect(info.attempts).toBe(0);
  echo.close();
});

test('a Redis connection reset fails the pending command', async () => {
  await using proxy = await createProxy({
    listen: '127.0.0.1:0',
    targets: [`127.0.0.1:${redisServer.port}`],
  }).listen();
  const redis = new Redis({
    port: proxy.address().port,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null, // no reconnect: the failure shows in the command
  });
  const next = proxy.nextConnection(); // before the client connects
  await redis.connect();
  const conn = await next;
  conn.pause('downstream'); // hold the reply, so the command is still pending
  const reply = redis.get('key');
  const [[error]] = await Promise.all([once(redis, 'error'), conn.reset()]);
  expect(error.code).toBe('ECONNRESET');
  await expect(reply).rejects.toThrow('Connection is closed.');
  expect(redis.status).toBe('end'); // closed: nothing to disconnect
});
