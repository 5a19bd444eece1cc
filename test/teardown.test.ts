/**
 * Teardown on real sockets: resets where one side is a Unix domain socket (which has
 * no RST), a reset while our FIN is still pending, and writes to a peer that is gone.
 * Each test checks that nothing is left behind: the process's open descriptors
 * (/proc/self/fd) are back to what they were before the connection, and every large
 * read buffer is back in the pool.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type ConnectionInfo, createProxy, type TcpProxy } from '../src/index.js';
import { largeBuffersLent } from '../src/read-buffer.js';
import { waitFor } from './helpers/net.js';

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/** socketDir makes a directory for Unix socket files, removed after the test. */
function socketDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-teardown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** PeerLog is what a test's own socket saw: a FIN, an error code, its close. */
interface PeerLog {
  socket: Socket;
  sawEnd: boolean;
  errorCode: string | null;
  closed: Promise<void>;
}

function record(socket: Socket): PeerLog {
  const log: PeerLog = {
    socket,
    sawEnd: false,
    errorCode: null,
    // Not events.once: it would reject on the 'error' that comes before 'close'.
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
  socket.on('end', () => {
    log.sawEnd = true;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    log.errorCode = err.code ?? 'UNKNOWN';
  });
  return log;
}

/** Upstream: a server (TCP on 127.0.0.1, or a Unix socket) whose sockets the test sees. */
interface Upstream {
  server: Server;
  target: string;
  accepted: Promise<PeerLog>;
}

async function startUpstream(
  t: TestContext,
  path: string | undefined,
  onSocket: (socket: Socket) => void = () => {},
): Promise<Upstream> {
  const sockets: Socket[] = [];
  let resolveAccepted: (log: PeerLog) => void = () => {};
  const accepted = new Promise<PeerLog>((resolve) => {
    resolveAccepted = resolve;
  });
  // Not half-open: a socket that gets a FIN ends its side too, and closes.
  const server = createServer((socket) => {
    sockets.push(socket);
    const log = record(socket);
    onSocket(socket);
    resolveAccepted(log);
  });
  if (path === undefined) server.listen(0, '127.0.0.1');
  else server.listen(path);
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const address = server.address();
  const target =
    path !== undefined
      ? `unix:${path}`
      : typeof address === 'object' && address !== null
        ? `127.0.0.1:${address.port}`
        : '';
  return { server, target, accepted };
}

async function startProxy(t: TestContext, listen: string, target: string): Promise<TcpProxy> {
  const proxy = createProxy({ listen, targets: [target] });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  return proxy;
}

function proxyPort(proxy: TcpProxy): number {
  const address = proxy.address();
  if (address === null) throw new Error('proxy has no address');
  return address.port;
}

function nextClose(proxy: TcpProxy): Promise<ConnectionInfo> {
  return new Promise((resolve) => proxy.once('connectionClose', resolve));
}

/** leavesNothingBehind waits until descriptors and large buffers are back to `before`. */
async function leavesNothingBehind(before: number): Promise<void> {
  await waitFor(() => largeBuffersLent() === 0, 5000, 'every large read buffer given back');
  await waitFor(
    () => openDescriptors() <= before,
    5000,
    `open descriptors back to ${before} (now ${openDescriptors()})`,
  );
}

test('a client reset on a TCP listener to a unix: target closes the connection, no crash', {
  timeout: 20000,
}, async (t) => {
  const dir = socketDir(t);
  const upstream = await startUpstream(t, join(dir, 'up.sock'));
  const proxy = await startProxy(t, '127.0.0.1:0', upstream.target);
  const before = openDescriptors();
  const connected = once(proxy, 'connectionConnect');
  const client = record(netConnect({ port: proxyPort(proxy), host: '127.0.0.1' }));
  await connected;
  const up = await upstream.accepted;
  const closed = nextClose(proxy);
  client.socket.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'client_reset');
  // A Unix domain socket has no RST: the upstream sees a plain close.
  await up.closed;
  assert.equal(proxy.connections().length, 0);
  await client.closed;
  await leavesNothingBehind(before);
});

test('an upstream reset on a unix: listener from a TCP target closes the connection, no crash', {
  timeout: 20000,
}, async (t) => {
  const dir = socketDir(t);
  const upstream = await startUpstream(t, undefined);
  const listenPath = join(dir, 'proxy.sock');
  const proxy = await startProxy(t, `unix:${listenPath}`, upstream.target);
  const before = openDescriptors();
  const connected = once(proxy, 'connectionConnect');
  const client = record(netConnect({ path: listenPath }));
  await connected;
  const up = await upstream.accepted;
  const closed = nextClose(proxy);
  up.socket.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'upstream_reset');
  await client.closed;
  assert.equal(client.errorCode, null, 'a Unix socket client sees a plain close');
  assert.equal(proxy.connections().length, 0);
  await leavesNothingBehind(before);
});

test('closeConnection with reset on Unix sockets closes both sides and forgets the connection', {
  timeout: 20000,
}, async (t) => {
  const dir = socketDir(t);
  const upstream = await startUpstream(t, join(dir, 'up.sock'));
  const listenPath = join(dir, 'proxy.sock');
  const proxy = await startProxy(t, `unix:${listenPath}`, upstream.target);
  const before = openDescriptors();
  const connected = once(proxy, 'connectionConnect');
  const client = record(netConnect({ path: listenPath }));
  await connected;
  const up = await upstream.accepted;
  const [open] = proxy.connections();
  assert.ok(open !== undefined);
  const closed = nextClose(proxy);
  assert.equal(proxy.closeConnection(open.id, { reset: true }), true);
  assert.equal((await closed).cause, 'admin_kill');
  assert.equal(proxy.connections().length, 0);
  await Promise.all([client.closed, up.closed]);
  await leavesNothingBehind(before);
});

test('closeConnection with reset on a TCP listener to a unix: target resets the client', {
  timeout: 20000,
}, async (t) => {
  const dir = socketDir(t);
  const upstream = await startUpstream(t, join(dir, 'up.sock'));
  const proxy = await startProxy(t, '127.0.0.1:0', upstream.target);
  const before = openDescriptors();
  const connected = once(proxy, 'connectionConnect');
  const client = record(netConnect({ port: proxyPort(proxy), host: '127.0.0.1' }));
  await connected;
  const up = await upstream.accepted;
  const [open] = proxy.connections();
  assert.ok(open !== undefined);
  assert.equal(proxy.closeConnection(open.id, { reset: true }), true);
  await Promise.all([client.closed, up.closed]);
  assert.equal(client.errorCode, 'ECONNRESET', 'the TCP client gets the reset');
  assert.equal(proxy.connections().length, 0);
  await leavesNothingBehind(before);
});

/**
 * pump writes 64 KiB chunks to `socket` for as long as the kernel takes them, again
 * on every 'drain', until the socket is gone.
 */
function pump(socket: Socket): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const more = (): void => {
    while (!socket.destroyed && socket.write(chunk));
  };
  socket.on('drain', more);
  more();
}

test('a client FIN then RST while our FIN to the upstream is pending leaks nothing', {
  timeout: 20000,
}, async (t) => {
  // The client stops reading and the upstream sends without pause, so the proxy holds
  // bytes for the client and stops reading the upstream. Then the client sends FIN and
  // right after it RST. The proxy reads the FIN and passes it on with end(): the
  // upstream socket's shutdown is now pending, and stays so at least until the next
  // turn of the event loop. In the same turn, the write to the client fails (EPIPE or
  // ECONNRESET), and the context is torn down with a reset while that shutdown pends.
  const upstream = await startUpstream(t, undefined, pump);
  const proxy = await startProxy(t, '127.0.0.1:0', upstream.target);
  const before = openDescriptors();
  const connected = once(proxy, 'connectionConnect');
  const client = record(
    netConnect({ port: proxyPort(proxy), host: '127.0.0.1', allowHalfOpen: true }),
  );
  client.socket.pause();
  await connected;
  const up = await upstream.accepted;
  await waitFor(
    () => (proxy.connections()[0]?.buffered ?? 0) > 0,
    10000,
    'the proxy holding bytes the client does not read',
  );
  const closed = nextClose(proxy);
  client.socket.end();
  await once(client.socket, 'finish'); // our FIN is out
  client.socket.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'client_reset');
  assert.ok(info.error === 'EPIPE' || info.error === 'ECONNRESET', `error ${info.error}`);
  // The proxy closed its upstream socket with bytes from the upstream still unread,
  // so the kernel sends the upstream an RST.
  await up.closed;
  assert.ok(
    up.errorCode === 'ECONNRESET' || up.errorCode === 'EPIPE',
    `upstream saw ${up.errorCode}`,
  );
  await leavesNothingBehind(before);
});

test('a write to a client that reset tears the context down with client_reset', {
  timeout: 20000,
}, async (t) => {
  const upstream = await startUpstream(t, undefined, pump);
  const proxy = await startProxy(t, '127.0.0.1:0', upstream.target);
  const before = openDescriptors();
  const connected = once(proxy, 'connectionConnect');
  const client = record(
    netConnect({ port: proxyPort(proxy), host: '127.0.0.1', allowHalfOpen: true }),
  );
  client.socket.pause();
  await connected;
  const up = await upstream.accepted;
  await waitFor(
    () => (proxy.connections()[0]?.buffered ?? 0) > 0,
    10000,
    'the proxy holding bytes the client does not read',
  );
  assert.ok(largeBuffersLent() > 0, 'the upstream reads in bulk');
  const closed = nextClose(proxy);
  client.socket.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'client_reset');
  assert.ok(info.error === 'EPIPE' || info.error === 'ECONNRESET', `error ${info.error}`);
  assert.equal(info.firstClose, 'client');
  // A failure of the client is passed on to the upstream as a reset.
  await up.closed;
  assert.ok(
    up.errorCode === 'ECONNRESET' || up.errorCode === 'EPIPE',
    `upstream saw ${up.errorCode}`,
  );
  assert.equal(proxy.connections().length, 0);
  await leavesNothingBehind(before);
});
