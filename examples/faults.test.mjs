// Deterministic network faults in a node:test suite, with l4proxy as a library
// (docs/testing.md). Run it with `node --test examples/faults.test.mjs` after
// `npm run build`; in your own project, `import { createProxy } from 'l4proxy'`
// works the same way.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { test } from 'node:test';
import { createProxy } from 'l4proxy';

/** An echo server on 127.0.0.1, standing in for the service your code talks to. */
async function startEcho() {
  const sockets = new Set();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${server.address().port}`,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Sends `text` and resolves with the first `text.length` bytes that come back. */
function roundTrip(socket, text) {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (chunk) => {
      got += chunk;
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.setEncoding('utf8');
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(text);
  });
}

test('a latency toxic slows every reply', async (t) => {
  const echo = await startEcho();
  t.after(echo.close);
  // (Node 24+ or TypeScript: `await using proxy = ...` closes it at the end of the test.)
  const proxy = await createProxy({ listen: '127.0.0.1:0', targets: [echo.address] }).listen();
  t.after(() => proxy.close({ graceful: false }));
  proxy.toxics().add({ type: 'latency', attributes: { latency: 200 } });
  const socket = connect(proxy.address().port, '127.0.0.1');
  t.after(() => socket.destroy());
  const started = Date.now();
  assert.equal(await roundTrip(socket, 'ping'), 'ping');
  assert.ok(Date.now() - started >= 190);
});

test('a connection cut after exactly 3 bytes of the reply', async (t) => {
  const echo = await startEcho();
  t.after(echo.close);
  // (Node 24+ or TypeScript: `await using proxy = ...` closes it at the end of the test.)
  const proxy = await createProxy({ listen: '127.0.0.1:0', targets: [echo.address] }).listen();
  t.after(() => proxy.close({ graceful: false }));
  const next = proxy.nextConnection();
  const socket = connect(proxy.address().port, '127.0.0.1');
  const conn = await next;
  conn.cutAfter('downstream', 3);
  let got = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    got += chunk;
  });
  socket.write('hello');
  const info = await conn.closed;
  await once(socket, 'close');
  assert.equal(got, 'hel');
  assert.equal(info.cause, 'toxic');
});

test('connection refused while the service is up', async (t) => {
  const echo = await startEcho();
  t.after(echo.close);
  // (Node 24+ or TypeScript: `await using proxy = ...` closes it at the end of the test.)
  const proxy = await createProxy({ listen: '127.0.0.1:0', targets: [echo.address] }).listen();
  t.after(() => proxy.close({ graceful: false }));
  proxy.refuseNext(1);
  const socket = connect(proxy.address().port, '127.0.0.1');
  const [err] = await once(socket, 'error').catch((e) => [e]);
  assert.equal(err.code, 'ECONNRESET');
  assert.equal(echo.sockets.size, 0);
});

test('a connect that hangs until the client gives up', async (t) => {
  const echo = await startEcho();
  t.after(echo.close);
  // (Node 24+ or TypeScript: `await using proxy = ...` closes it at the end of the test.)
  const proxy = await createProxy({ listen: '127.0.0.1:0', targets: [echo.address] }).listen();
  t.after(() => proxy.close({ graceful: false }));
  proxy.hangNext(1);
  const socket = connect(proxy.address().port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('hello?');
  // Your client's own timeout would fire here; the proxy never dials the service.
  const [info] = await Promise.all([once(proxy, 'connectionClose'), socket.end()]);
  assert.equal(info[0].cause, 'client_fin');
  assert.equal(echo.sockets.size, 0);
});
