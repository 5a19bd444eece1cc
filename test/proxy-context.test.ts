/**
 * The proxy context end to end: a real upstream, the proxy from the library, a real
 * client, bytes checked at both ends.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Socket } from 'node:net';
import { test } from 'node:test';
import type { ConnectionInfo } from '../src/index.js';
import { LARGE_BYTES } from '../src/read-buffer.js';
import {
  blackholeAddress,
  connectClient,
  echo,
  patternBytes,
  startProxy,
  startUpstream,
  waitFor,
} from './helpers/net.js';
import { deadline } from './helpers/time.js';

function nextClose(proxy: { once(e: 'connectionClose', f: (c: ConnectionInfo) => void): unknown }) {
  return new Promise<ConnectionInfo>((resolve) => proxy.once('connectionClose', resolve));
}

function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

test('passes large random payloads unchanged in both directions at once', async (t) => {
  const toUpstream = patternBytes(8 * 1024 * 1024, 7);
  const toClient = patternBytes(8 * 1024 * 1024, 11);
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
    socket.end(toClient);
  });
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  client.socket.end(toUpstream);
  await client.ended;
  await upstream.accepted();
  const got = await upstreamGot;
  assert.ok(got.equals(toUpstream), 'upstream received the client bytes unchanged');
  assert.ok(client.received().equals(toClient), 'client received the upstream bytes unchanged');
  const info = await closed;
  assert.equal(info.bytesToUpstream, toUpstream.length);
  assert.equal(info.bytesToClient, toClient.length);
  assert.match(info.cause ?? '', /^(client|upstream)_fin$/);
});

test('delivers bytes the client sent before the upstream connection was up', async (t) => {
  // The first target never answers; the proxy gives up on it after 300 ms and fails
  // over to the echo upstream. Bytes (and the FIN) sent meanwhile must all arrive there.
  const silent = await blackholeAddress(t);
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, {
    targets: [silent, upstream.address],
    connectTimeoutMs: 300,
  });
  const client = connectClient(port);
  const early = patternBytes(100 * 1024, 5);
  client.socket.end(early);
  await waitFor(() => proxy.connections()[0]?.state === 'connecting', 2000, 'connecting');
  await client.ended;
  assert.ok(client.received().equals(early), 'every early byte came back through the echo');
  assert.deepEqual(proxy.stats().connectFailures, { ETIMEDOUT: 1 });
});

test('lets the upstream speak first (server greeting before any client byte)', async (t) => {
  const upstream = await startUpstream(t, (socket) => socket.write('220 hello\r\n'));
  const { port } = await startProxy(t, { targets: [upstream.address] });
  const client = connectClient(port);
  await waitFor(() => client.received().length > 0, 5000, 'greeting');
  assert.equal(client.received().toString(), '220 hello\r\n');
  client.socket.destroy();
});

test("forwards the client's FIN after buffered bytes; the upstream can still answer", async (t) => {
  const upstream = await startUpstream(t, (socket) => {
    // Answer only after the client has finished: a half-closed request/response.
    collect(socket).then((request) => socket.end(`got ${request.length} bytes`));
  });
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  client.socket.end(patternBytes(1024 * 1024));
  await client.ended;
  assert.equal(client.received().toString(), `got ${1024 * 1024} bytes`);
  const info = await closed;
  assert.equal(info.cause, 'client_fin');
  assert.equal(info.firstClose, 'client');
});

test("forwards the upstream's FIN; the client can still send afterwards", async (t) => {
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot = collect(socket);
    socket.end('bye'); // upstream finishes sending at once
  });
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  await client.ended;
  assert.equal(client.received().toString(), 'bye');
  // The other direction keeps flowing after the upstream's FIN.
  client.socket.end('still talking');
  await upstream.accepted();
  assert.equal((await upstreamGot).toString(), 'still talking');
  const info = await closed;
  assert.equal(info.cause, 'upstream_fin');
  assert.equal(info.firstClose, 'upstream');
});

test('closes the client when the upstream closes (both directions finish)', async (t) => {
  const upstream = await startUpstream(t, (socket) => {
    socket.on('end', () => socket.end());
    socket.end(); // upstream closes; after the client's FIN comes back it is gone
  });
  const { port } = await startProxy(t, { targets: [upstream.address] });
  const client = connectClient(port);
  await client.ended;
  client.socket.end();
  assert.equal(await client.closed, null);
});

test('closes the upstream when the client closes', async (t) => {
  const upstream = await startUpstream(t, (socket) => socket.on('end', () => socket.end()));
  const { port } = await startProxy(t, { targets: [upstream.address] });
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  const upstreamClosed = once(upstreamSocket, 'close');
  client.socket.end();
  await upstreamClosed;
  await client.closed;
});

test('passes a client reset on to the upstream as a reset', async (t) => {
  const upstream = await startUpstream(t);
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  const upstreamError = new Promise<string>((resolve) =>
    upstreamSocket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? '')),
  );
  await waitFor(() => proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  client.socket.resetAndDestroy();
  assert.equal(await upstreamError, 'ECONNRESET');
  const info = await closed;
  assert.equal(info.cause, 'client_reset');
  assert.equal(info.error, 'ECONNRESET');
});

test('passes an upstream reset on to the client as a reset', async (t) => {
  const upstream = await startUpstream(t);
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  const upstreamSocket = await upstream.accepted();
  await waitFor(() => proxy.connections()[0]?.state === 'relaying', 5000, 'relaying');
  upstreamSocket.resetAndDestroy();
  assert.equal(await client.closed, 'ECONNRESET');
  assert.equal((await closed).cause, 'upstream_reset');
});

test('closes an idle connection after the idle timeout and spares an active one', async (t) => {
  const upstream = await startUpstream(t, echo);
  const { proxy, port } = await startProxy(t, { targets: [upstream.address], idleTimeoutMs: 300 });
  const idle = connectClient(port);
  const active = connectClient(port);
  const started = Date.now();
  // Keep `active` busy, one small write every 50 ms: a sixth of the idle timeout, so a
  // busy machine may delay a write by up to 250 ms before the proxy could call it idle.
  const ticker = setInterval(() => active.socket.write('x'), 50);
  t.after(() => clearInterval(ticker));
  await idle.ended; // the proxy closed it: our FIN arrives
  const elapsed = Date.now() - started;
  assert.ok(
    elapsed >= 280 && elapsed < deadline(2000),
    `idle connection closed after ${elapsed} ms`,
  );
  // Then more than two further idle periods of activity, counted in echoed writes
  // (14 at one per 50 ms is at least 700 ms), not measured with a sleep.
  const echoedAtIdleClose = active.received().length;
  await waitFor(
    () => active.received().length >= echoedAtIdleClose + 14 || active.sawEnd,
    2000,
    'fourteen more echoes on the active connection',
  );
  assert.equal(active.sawEnd, false, 'active connection not closed by the proxy');
  assert.equal(active.socket.destroyed, false, 'active connection still open');
  assert.equal(proxy.stats().closed.idle_timeout, 1);
  clearInterval(ticker);
  await active.ended; // closed 300 ms after its last write
  assert.equal(proxy.stats().closed.idle_timeout, 2);
});

test('a long transfer is activity: it is never cut by the idle timeout', async (t) => {
  // The upstream trickles 16 KiB every 20 ms for 1.5 s, five times the idle timeout.
  // On a loaded machine the test's own timers may stall longer than the idle timeout,
  // and then the connection really was idle: such a run proves nothing and is run
  // again (at most 3 runs). A run whose writes never paused that long must pass.
  const piece = patternBytes(16 * 1024, 9);
  const pieces = 75;
  const idleTimeoutMs = 300;
  for (let run = 1; ; run++) {
    let longestGapMs = 0;
    const upstream = await startUpstream(t, (socket) => {
      let sent = 0;
      let last = Date.now();
      const timer = setInterval(() => {
        const now = Date.now();
        longestGapMs = Math.max(longestGapMs, now - last);
        last = now;
        socket.write(piece);
        if (++sent === pieces) {
          clearInterval(timer);
          socket.end();
        }
      }, 20);
      socket.on('close', () => clearInterval(timer));
    });
    const { proxy, port } = await startProxy(t, { targets: [upstream.address], idleTimeoutMs });
    const client = connectClient(port);
    const started = Date.now();
    await client.ended;
    const cut = (proxy.stats().closed.idle_timeout ?? 0) > 0;
    if (cut && longestGapMs >= idleTimeoutMs * 0.8 && run < 3) continue;
    assert.ok(Date.now() - started >= 1000, 'the transfer outlasted the idle timeout');
    assert.equal(client.received().length, piece.length * pieces, `longest gap ${longestGapMs} ms`);
    assert.equal(proxy.stats().closed.idle_timeout ?? 0, 0);
    return;
  }
});

test('closes a half-closed connection after the half-close timeout', async (t) => {
  // The upstream never answers the client's FIN: without the timeout, the connection would stay.
  const upstream = await startUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    halfCloseTimeoutMs: 200,
  });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  await upstream.accepted();
  const started = Date.now();
  client.socket.end();
  const info = await closed;
  const elapsed = Date.now() - started;
  assert.equal(info.cause, 'half_close_timeout');
  assert.equal(info.firstClose, 'client');
  assert.ok(elapsed >= 180 && elapsed < deadline(2000), `closed after ${elapsed} ms`);
});

test("a slow reader's connection holds bounded memory in the proxy", async (t) => {
  // The upstream writes as fast as it can; the client reads nothing. Backpressure
  // must stop the proxy reading the upstream: its buffers stay within the bound
  // stated in docs/design.md, however much the upstream has sent.
  // docs/design.md §7: one direction holds at most one large buffer (LARGE_BYTES) plus
  // copies under the peer socket's writable high-water mark (Node's default).
  const BOUND = LARGE_BYTES + new Socket().writableHighWaterMark;
  const chunk = patternBytes(64 * 1024);
  let upstreamSocket: Socket | undefined;
  let written = 0;
  const upstream = await startUpstream(t, (socket) => {
    upstreamSocket = socket;
    const pump = (): void => {
      while (written < 64 * 1024 * 1024 && socket.write(chunk)) written += chunk.length;
    };
    socket.on('drain', pump);
    pump();
  });
  const { proxy, port } = await startProxy(t, { targets: [upstream.address] });
  const client = connectClient(port);
  client.socket.pause();
  await upstream.accepted();
  // Wait until the upstream is blocked: its own send buffer is full and it stopped writing.
  let last = -1;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    if (written === last && (upstreamSocket?.writableLength ?? 0) > 0) break;
    last = written;
  }
  const [conn] = proxy.connections();
  assert.ok(conn !== undefined);
  const buffered = conn.buffered;
  assert.ok(
    buffered <= BOUND,
    `proxy buffers ${buffered} bytes for one slow reader (bound ${BOUND})`,
  );
  // Everything the upstream sent is in the kernel's buffers or in ours: nothing was dropped.
  client.socket.resume();
  assert.ok(written < 64 * 1024 * 1024, 'the upstream was made to wait');
  client.socket.destroy();
});
