/**
 * The relay of sockets read without `onread` (a TLS socket, any Duplex): TLS
 * termination (the handshake wraps the accepted socket in a tls.TLSSocket) and TLS
 * origination (the upstream wrapper: tls.connect on the dialled socket), through
 * test-only hooks given with `kConnectionHooks`. Real TLS on loopback with a
 * self-signed certificate made for the test run by `openssl req -x509`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createServer as createTlsServer, TLSSocket, connect as tlsConnect } from 'node:tls';
import { type ConnectionHooks, type Handshake, kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo } from '../src/index.js';
import { patternBytes, startProxy, waitFor } from './helpers/net.js';

// A throwaway self-signed certificate for 127.0.0.1 / localhost, for this test run only.
const dir = mkdtempSync(join(tmpdir(), 'l4proxy-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ],
  { stdio: 'ignore' },
);
const key = readFileSync(join(dir, 'key.pem'));
const cert = readFileSync(join(dir, 'cert.pem'));

/** terminate: the handshake wraps the accepted socket in a TLS server socket; dial once it is secure. */
const terminate: Handshake = {
  name: 'tls',
  timeoutMs: 5000,
  timeoutCause: 'tls_handshake_failed',
  maxBytes: 16 * 1024,
  step(_bytes, client) {
    const secure = new TLSSocket(client.socket, { isServer: true, key, cert });
    return new Promise((resolve) => {
      secure.once('secure', () => resolve({ allow: true, consumed: 0, socket: secure }));
      secure.once('error', (err) =>
        resolve({ allow: false, cause: 'tls_handshake_failed', reason: err.message }),
      );
    });
  },
};

/** originate: speak TLS to the upstream, verified against the test certificate. */
const hooks: ConnectionHooks = {
  handshake: terminate,
  wrapUpstream: (socket) => {
    const secure = tlsConnect({ socket, ca: cert, servername: 'localhost' });
    return new Promise((resolve, reject) => {
      secure.once('secureConnect', () => resolve(secure));
      secure.once('error', reject);
    });
  },
};

interface TlsUpstream {
  address: string;
  sockets: TLSSocket[];
  accepted(): Promise<TLSSocket>;
}

/** startTlsUpstream: a TLS server on 127.0.0.1:0 (half-open capable) handing each socket to `onSocket`. */
async function startTlsUpstream(
  t: Parameters<typeof startProxy>[0],
  onSocket: (socket: TLSSocket) => void = () => {},
): Promise<TlsUpstream> {
  const sockets: TLSSocket[] = [];
  const waiters: ((s: TLSSocket) => void)[] = [];
  const server = createTlsServer({ key, cert, allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onSocket(socket);
    for (const w of waiters.splice(0)) w(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    address: `127.0.0.1:${addr.port}`,
    sockets,
    accepted: () =>
      sockets[0] !== undefined
        ? Promise.resolve(sockets[0])
        : new Promise((resolve) => waiters.push(resolve)),
  };
}

/** A TLS client over a TCP socket of its own (`raw`, so the test can reset it). */
function tlsClient(port: number): { secure: TLSSocket; raw: Socket; ready: Promise<void> } {
  const raw = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const secure = tlsConnect({ socket: raw, ca: cert, servername: 'localhost' });
  raw.on('error', () => {});
  return { secure, raw, ready: once(secure, 'secureConnect').then(() => {}) };
}

function collect(socket: TLSSocket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function nextClose(proxy: { once(e: 'connectionClose', f: (c: ConnectionInfo) => void): unknown }) {
  return new Promise<ConnectionInfo>((resolve) => proxy.once('connectionClose', resolve));
}

test('TLS on both sides: bytes pass unchanged both ways, and half-close passes through', async (t) => {
  const toUpstream = patternBytes(3 * 1024 * 1024, 31);
  const toClient = patternBytes(3 * 1024 * 1024, 32);
  const later = Buffer.from('written after the client FIN');
  let upstreamGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
  const upstream = await startTlsUpstream(t, (socket) => {
    upstreamGot = collect(socket);
    socket.write(toClient);
    // Half-close: the client's FIN arrived; this side still writes, then ends.
    socket.on('end', () => socket.end(later));
  });
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...{ [kConnectionHooks]: hooks },
  });
  const closed = nextClose(proxy);
  const client = tlsClient(port);
  const clientGot = collect(client.secure);
  await client.ready;
  client.secure.end(toUpstream);
  await upstream.accepted();
  const got = await upstreamGot;
  assert.equal(sha256(got), sha256(toUpstream), 'upstream got the client bytes unchanged');
  const received = await clientGot;
  assert.equal(
    sha256(received),
    sha256(Buffer.concat([toClient, later])),
    'client got the upstream bytes, those after its FIN too, unchanged',
  );
  const info = await closed;
  assert.equal(info.cause, 'client_fin');
  assert.equal(info.bytesToUpstream, toUpstream.length, 'plaintext bytes counted');
  assert.equal(info.bytesToClient, toClient.length + later.length);
});

test('a slow TLS reader holds a TLS upstream back: the proxy holds bounded memory', async (t) => {
  // Per direction, the relay of 'data' events holds at most the near socket's readable
  // buffer (paused: its high-water mark plus a chunk) and the far socket's write queue
  // (under its high-water mark plus a chunk); a TLS chunk is at most 64 KiB here.
  const BOUND = 4 * 64 * 1024;
  const chunk = patternBytes(64 * 1024, 9);
  let written = 0;
  let upstreamSocket: TLSSocket | undefined;
  const upstream = await startTlsUpstream(t, (socket) => {
    upstreamSocket = socket;
    const pump = (): void => {
      while (written < 64 * 1024 * 1024 && socket.write(chunk)) written += chunk.length;
    };
    socket.on('drain', pump);
    pump();
  });
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...{ [kConnectionHooks]: hooks },
  });
  const client = tlsClient(port);
  await client.ready;
  client.secure.pause();
  await upstream.accepted();
  // Wait until the upstream is blocked and the proxy stopped reading it.
  let last = '';
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = `${written} ${proxy.connections()[0]?.bytesFromUpstream}`;
    if (now === last && (upstreamSocket?.writableLength ?? 0) > 0) break;
    last = now;
  }
  const [conn] = proxy.connections();
  assert.ok(conn !== undefined);
  assert.ok(
    conn.buffered <= BOUND,
    `proxy buffers ${conn.buffered} bytes for one slow reader (bound ${BOUND})`,
  );
  assert.ok(written < 64 * 1024 * 1024, 'the upstream was made to wait');
  // Reading again, the client gets every byte, in order.
  const expected = written;
  const clientGot = collect(client.secure);
  client.secure.resume();
  upstreamSocket?.end();
  const got = await clientGot;
  assert.ok(got.length >= expected, `client got ${got.length} of at least ${expected} bytes`);
  for (let at = 0; at < got.length; at += chunk.length) {
    assert.ok(got.subarray(at, at + chunk.length).equals(chunk.subarray(0, got.length - at)));
  }
});

test('a reset under the TLS upstream reaches the TLS client as a reset', async (t) => {
  const upstream = await startTlsUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...{ [kConnectionHooks]: hooks },
  });
  const closed = nextClose(proxy);
  const client = tlsClient(port);
  let clientError: string | null = null;
  client.secure.on('error', (err: NodeJS.ErrnoException) => {
    clientError = err.code ?? 'UNKNOWN';
  });
  await client.ready;
  const upstreamSecure = await upstream.accepted();
  upstreamSecure.write('hello');
  await once(client.secure, 'data');
  // The TCP socket under the upstream's TLS socket (a tls.Server's socket keeps it
  // in `_parent`) is reset.
  const upstreamRaw = (upstreamSecure as unknown as { _parent: Socket | null })._parent;
  assert.ok(upstreamRaw !== null, 'the TLS socket stands on a TCP socket');
  upstreamRaw.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'upstream_reset');
  await waitFor(() => clientError !== null, 5000, 'the client reset');
  assert.equal(clientError, 'ECONNRESET');
});

test('a client that resets the TCP socket under its TLS socket resets the TLS upstream', async (t) => {
  const upstream = await startTlsUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...{ [kConnectionHooks]: hooks },
  });
  const closed = nextClose(proxy);
  const client = tlsClient(port);
  client.secure.on('error', () => {});
  await client.ready;
  const upstreamSecure = await upstream.accepted();
  let upstreamError: string | null = null;
  upstreamSecure.on('error', (err: NodeJS.ErrnoException) => {
    upstreamError = err.code ?? 'UNKNOWN';
  });
  client.secure.write('ping');
  await once(upstreamSecure, 'data');
  client.raw.resetAndDestroy();
  const info = await closed;
  assert.equal(info.cause, 'client_reset');
  await waitFor(() => upstreamError !== null, 5000, 'the upstream reset');
  assert.equal(upstreamError, 'ECONNRESET');
});
