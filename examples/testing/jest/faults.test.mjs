// Network faults in a Jest suite: a plain socket and a Redis client (ioredis) against
// a real redis-server, through l4proxy (docs/testing.md). Jest runs ES modules with
// `node --experimental-vm-modules node_modules/jest/bin/jest.js` (package.json).
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { Redis } from 'ioredis';
import { createProxy } from 'l4proxy';
import { startRedisServer } from '../redis-server.mjs';

let redisServer;
beforeAll(async () => {
  redisServer = await startRedisServer();
});
afterAll(() => redisServer.stop());

test('a refused connection while the service is up', async () => {
  const echo = createServer((socket) => socket.pipe(socket)).listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const proxy = await createProxy({
    listen: '127.0.0.1:0',
    targets: [`127.0.0.1:${echo.address().port}`],
  }).listen();
  try {
    proxy.refuseNext(1); // the next client is reset as soon as it is accepted
    const socket = connect(proxy.address().port, '127.0.0.1');
    const [err] = await once(socket, 'error');
    expect(err.code).toBe('ECONNRESET');
  } finally {
    await proxy.close({ graceful: false });
    echo.close();
  }
});

test('a Redis reply cut in the middle fails the command', async () => {
  const proxy = await createProxy({
    listen: '127.0.0.1:0',
    targets: [`127.0.0.1:${redisServer.port}`],
  }).listen();
  const redis = new Redis({
    port: proxy.address().port,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null, // no reconnect: the failure shows in the command
  });
  try {
    const next = proxy.nextConnection(); // before the client connects
    await redis.connect();
    const conn = await next;
    await redis.set('big', 'x'.repeat(100_000));
    conn.cutAfter('downstream', 1000); // 1000 bytes of the next reply, then a FIN both ways
    await expect(redis.get('big')).rejects.toThrow('Connection is closed.');
    expect((await conn.closed).cause).toBe('toxic');
  } finally {
    if (redis.status !== 'end') redis.disconnect(); // (after a close, ioredis would wait 2 s)
    await proxy.close({ graceful: false });
  }
});
