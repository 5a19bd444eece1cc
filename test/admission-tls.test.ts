/**
 * `--accept-proxy` (and access control) in front of TLS, as haproxy's `bind ...
 * accept-proxy ssl crt`: the PROXY header comes first in plain TCP, then the TLS
 * handshake; with `routes`, the ClientHello after the header chooses the route. The
 * admission handshake runs first and the TLS one (termination or SNI routing) after it
 * as its `next` (admission.ts, opening.ts). Real clients: a Node socket that writes the
 * header, then `tls.connect` over the same socket; certificates made by openssl.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type ConnectionInfo, createProxy, type TcpProxy } from '../src/index.js';
import { proxyHeaderFields } from '../src/proxy-protocol/preface.js';
import { encodeV1 } from '../src/proxy-protocol/v1.js';
import { encodeV2 } from '../src/proxy-protocol/v2.js';
import { withTimeout } from './helpers/cli.js';
import { answerGot, startProxy, startUpstream, waitFor } from './helpers/net.js';
import { makeCertificate, readLine, startTlsUpstream, tempDir } from './helpers/tls.js';

const header = (source: string, port: number) =>
  proxyHeaderFields({ address: source, port }, { address: '192.0.2.1', port: 443 });

/** A proxy terminating TLS with `options`, in front of an upstream that echoes `got <bytes>`. */
async function terminating(t: TestContext, options: object) {
  const dir = await tempDir(t);
  const cert = await makeCertificate(dir, 'proxy', 'localhost');
  const upstream = await startUpstream(t, answerGot);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    tlsCert: cert.certPath,
    tlsKey: cert.keyPath,
    log: { level: 'silent' },
    ...options,
  });
  return { proxy, port, upstream, ca: cert.cert };
}

function nextClose(proxy: TcpProxy): Promise<ConnectionInfo> {
  return new Promise((resolve) => proxy.once('connectionClose', resolve));
}

async function rawClient(port: number, from = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** startTls begins a TLS session over `socket` (after the header it wrote). */
function startTls(socket: Socket, ca: string, servername = 'localhost'): TLSSocket {
  const secure = tlsConnect({ socket, ca, servername });
  secure.on('error', () => {});
  return secure;
}

/** closedBy resolves when the proxy closed the socket. */
function closedBy(socket: Socket): Promise<void> {
  socket.resume();
  return socket.closed ? Promise.resolve() : once(socket, 'close').then(() => {});
}

for (const version of ['v1', 'v2'] as const) {
  test(`a ${version} PROXY header, then TLS on the same socket: the handshake completes, the plaintext is relayed, the client is the header's source`, async (t) => {
    const { proxy, port, upstream, ca } = await terminating(t, { acceptProxy: true });
    const encode = version === 'v1' ? encodeV1 : encodeV2;
    const closed = nextClose(proxy);
    const raw = await rawClient(port);
    raw.write(encode(header('198.51.100.7', 40_000))); // usually read with the ClientHello
    const secure = startTls(raw, ca);
    await withTimeout(once(secure, 'secureConnect'), 5000, 'the TLS handshake after the header');
    secure.write('hello');
    const [answer] = (await withTimeout(once(secure, 'data'), 5000, 'the answer')) as [Buffer];
    assert.equal(answer.toString(), 'got hello');
    await upstream.accepted();
    secure.end();
    const info = await closed;
    assert.equal(info.client, '198.51.100.7:40000');
    assert.ok(info.clientTls?.version, 'the access record has the TLS facts');
  });
}

test('the header read on its own, the ClientHello later: TLS starts after the header', async (t) => {
  const { proxy, port, ca } = await terminating(t, { acceptProxy: true });
  const raw = await rawClient(port);
  raw.write(encodeV2(header('2001:db8::7', 40_001)));
  // The header was read and applied once the connection shows the header's source.
  await waitFor(
    () => proxy.connections().some((c) => c.client === '[2001:db8::7]:40001'),
    5000,
    'the header to be read',
  );
  const secure = startTls(raw, ca);
  await withTimeout(once(secure, 'secureConnect'), 5000, 'the TLS handshake');
  secure.write('later');
  const [answer] = (await withTimeout(once(secure, 'data'), 5000, 'the answer')) as [Buffer];
  assert.equal(answer.toString(), 'got later');
  secure.destroy();
});

test('each part keeps its deadline and cause: no header is proxy_header_timeout, a header and no TLS is tls_handshake_failed', async (t) => {
  const { proxy, port, upstream } = await terminating(t, {
    acceptProxy: true,
    proxyHeaderTimeoutMs: 300,
    connectTimeoutMs: 300,
  });
  let closed = nextClose(proxy);
  const silent = await rawClient(port);
  assert.equal((await closed).cause, 'proxy_header_timeout');
  await closedBy(silent);
  closed = nextClose(proxy);
  const headerOnly = await rawClient(port);
  headerOnly.write(encodeV1(header('198.51.100.8', 40_002)));
  const info = await closed;
  assert.equal(info.cause, 'tls_handshake_failed');
  assert.equal(info.client, '198.51.100.8:40002');
  assert.equal(info.upstream, null);
  await closedBy(headerOnly);
  assert.equal(upstream.sockets.length, 0, 'no upstream was dialled');
});

test('access control runs before TLS: a denied header source, or a denied socket address without --accept-proxy, is refused before any handshake', async (t) => {
  const withHeader = await terminating(t, { acceptProxy: true, deny: ['198.51.100.0/24'] });
  let closed = nextClose(withHeader.proxy);
  const raw = await rawClient(withHeader.port);
  raw.write(encodeV1(header('198.51.100.9', 40_003)));
  const secure = startTls(raw, withHeader.ca);
  let info = await closed;
  assert.equal(info.cause, 'denied');
  assert.equal(info.client, '198.51.100.9:40003', 'the refused client is the one the header names');
  assert.equal(info.clientTls, undefined, 'no TLS handshake took place');
  await closedBy(raw);
  secure.destroy();

  const plain = await terminating(t, { deny: ['127.0.0.5'] });
  closed = nextClose(plain.proxy);
  const denied = await rawClient(plain.port, '127.0.0.5');
  startTls(denied, plain.ca);
  info = await closed;
  assert.equal(info.cause, 'denied');
  await closedBy(denied);
  const allowed = startTls(await rawClient(plain.port, '127.0.0.6'), plain.ca);
  await withTimeout(once(allowed, 'secureConnect'), 5000, 'an allowed client');
  allowed.destroy();
  assert.equal(withHeader.upstream.sockets.length, 0);
});

test('SNI routes after a PROXY header: the ClientHello after the header picks the route, and the TLS session is end to end', async (t) => {
  const dir = await tempDir(t);
  const [certA, certDefault] = await Promise.all([
    makeCertificate(dir, 'a', 'a.example.com'),
    makeCertificate(dir, 'default', 'default.test'),
  ]);
  const a = await startTlsUpstream(t, 'A', certA);
  const fallback = await startTlsUpstream(t, 'default', certDefault);
  const proxy = createProxy({
    listen: '127.0.0.1:0',
    routes: [
      { sni: 'a.example.com', targets: [a.target.address] },
      { targets: [fallback.target.address] },
    ],
    acceptProxy: true,
    log: { level: 'silent' },
  });
  await proxy.listen();
  t.after(() => proxy.close({ graceful: false }));
  const port = proxy.address()?.port ?? 0;
  for (const [servername, upstream] of [
    ['a.example.com', a],
    ['default.test', fallback],
  ] as const) {
    const closed = nextClose(proxy);
    const raw = await rawClient(port);
    raw.write(encodeV2(header('198.51.100.10', 40_004)));
    const secure = startTls(raw, upstream.cert.cert, servername);
    await withTimeout(once(secure, 'secureConnect'), 5000, `the TLS handshake with ${servername}`);
    const greeting = await withTimeout(readLine(secure), 5000, 'the greeting');
    assert.equal(greeting, `server ${upstream.name} sni=${servername}`);
    secure.end();
    const info = await closed;
    assert.equal(info.upstream, upstream.target.address, servername);
    assert.equal(info.client, '198.51.100.10:40004');
    assert.equal(info.sni, servername);
  }
});
