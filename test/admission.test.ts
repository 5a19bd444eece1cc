/**
 * Admission end to end (src/admission.ts): the PROXY header handshake, access control
 * and the `--send-proxy` preface, given to a library proxy through `kConnectionHooks`
 * (no flags yet), with real sockets on loopback. Clients connect from different
 * loopback addresses (127.0.0.2, 127.0.0.3, ...: all loopback on Linux).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { AccessControl, type AccessOptions } from '../src/access/access-control.js';
import { parseCidr } from '../src/access/cidr.js';
import { parseRate } from '../src/access/rate-limit.js';
import { type AdmissionOptions, admissionHooks } from '../src/admission.js';
import { kConnectionHooks } from '../src/handshake.js';
import { type ConnectionInfo, createProxy, type TcpProxy } from '../src/index.js';
import type { ProxyHeader } from '../src/proxy-protocol/header.js';
import { parseProxyHeader } from '../src/proxy-protocol/parse.js';
import { proxyHeaderFields } from '../src/proxy-protocol/preface.js';
import { encodeV1 } from '../src/proxy-protocol/v1.js';
import { encodeV2 } from '../src/proxy-protocol/v2.js';
import { patternBytes, startProxy, startUpstream, waitFor } from './helpers/net.js';

/** LogLine: the fields of a JSON log line these tests look at. */
interface LogLine {
  msg: string;
  id?: string;
  client?: string;
  upstream?: string | null;
  bytes_to_upstream?: number;
  reason?: string;
}

/** A proxy with admission hooks in front of an upstream that collects each connection's bytes until FIN. */
async function setup(t: TestContext, admission: AdmissionOptions) {
  const got: Promise<Buffer>[] = [];
  const upstream = await startUpstream(t, (socket) => {
    got.push(collect(socket));
    socket.on('end', () => socket.end());
  });
  const lines: LogLine[] = [];
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    log: { level: 'debug', format: 'json', write: (line) => lines.push(JSON.parse(line)) },
    ...withHooks(admission),
  });
  return { proxy, port, upstream, got, lines };
}

/** withHooks: the listener option that carries the hooks (a symbol key: no public option yet). */
function withHooks(admission: AdmissionOptions): object {
  return { [kConnectionHooks]: admissionHooks(admission) };
}

function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

function nextClose(proxy: TcpProxy): Promise<ConnectionInfo> {
  return new Promise((resolve) => proxy.once('connectionClose', resolve));
}

/** client connects to the proxy from `from` (a loopback address), keeping half-close. */
async function client(port: number, from = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** closedBy resolves when the proxy closed the socket (FIN, answered with ours, or a reset). */
function closedBy(socket: Socket): Promise<void> {
  socket.resume();
  socket.once('end', () => socket.end());
  return socket.closed ? Promise.resolve() : once(socket, 'close').then(() => {});
}

const header = (
  source: string,
  sourcePort: number,
  destination = '192.0.2.1',
  destinationPort = 443,
) =>
  proxyHeaderFields(
    { address: source, port: sourcePort },
    { address: destination, port: destinationPort },
  );

function accessRecord(lines: LogLine[], id: string): LogLine {
  const line = lines.find((l) => l.msg === 'connection closed' && l.id === id);
  assert.ok(line, `an access record for ${id}`);
  return line;
}

test('a client sending a v1 header then data: the upstream gets the data unchanged, and the access record names the header source as the client', async (t) => {
  const { proxy, port, upstream, got, lines } = await setup(t, { acceptProxy: true });
  const closed = nextClose(proxy);
  const data = patternBytes(256 * 1024, 3);
  const socket = await client(port);
  // The header and the first data in one packet: the bytes after the header are the client's.
  socket.write(Buffer.concat([encodeV1(header('198.51.100.7', 40_000)), data.subarray(0, 1000)]));
  await upstream.accepted();
  socket.end(data.subarray(1000));
  assert.ok(
    (await (got[0] as Promise<Buffer>)).equals(data),
    'the data, unchanged, without the header',
  );
  const info = await closed;
  assert.equal(info.client, '198.51.100.7:40000');
  assert.equal(info.cause, 'client_fin');
  assert.equal(info.bytesToUpstream, data.length);
  const record = accessRecord(lines, info.id);
  assert.equal(record.client, '198.51.100.7:40000');
  assert.equal(record.bytes_to_upstream, data.length);
});

test('a v2 header split over several packets, with TLVs, from an IPv6 source: no dial until it is complete, then the data unchanged', async (t) => {
  const { proxy, port, upstream, got, lines } = await setup(t, { acceptProxy: true });
  const closed = nextClose(proxy);
  const bytes = encodeV2(
    {
      ...header('2001:db8::7', 5000, '2001:db8::1', 443),
      tlvs: [{ type: 0x02, value: Buffer.from('example.com') }],
    },
    { crc32c: true },
  );
  const socket = await client(port);
  let sent = 0;
  for (const cut of [5, 14, 30, bytes.length]) {
    socket.write(bytes.subarray(sent, cut));
    sent = cut;
    if (sent < bytes.length) {
      await waitFor(
        () => proxy.connections()[0]?.bytesFromClient === sent,
        5000,
        `${sent} header bytes read`,
      );
      assert.equal(proxy.connections()[0]?.state, 'handshake');
      assert.equal(upstream.sockets.length, 0, 'nothing dialled before the header is complete');
    }
  }
  await upstream.accepted();
  socket.end('after the header');
  assert.equal((await (got[0] as Promise<Buffer>)).toString(), 'after the header');
  const info = await closed;
  assert.equal(info.client, '[2001:db8::7]:5000');
  assert.equal(accessRecord(lines, info.id).client, '[2001:db8::7]:5000');
});

test("a v2 LOCAL header (a health check) and a v1 UNKNOWN one keep the socket's own address", async (t) => {
  const { proxy, port, upstream, got } = await setup(t, { acceptProxy: true });
  for (const bytes of [
    encodeV2(proxyHeaderFields(null, null)),
    encodeV1(proxyHeaderFields(null, null)),
  ]) {
    const closed = nextClose(proxy);
    const socket = await client(port, '127.0.0.2');
    socket.end(Buffer.concat([bytes, Buffer.from('ping')]));
    const info = await closed;
    assert.equal(info.client, `127.0.0.2:${socket.localPort}`);
    assert.equal(info.cause, 'client_fin');
  }
  assert.equal(upstream.sockets.length, 2);
  assert.equal((await (got[1] as Promise<Buffer>)).toString(), 'ping');
});

test('a malformed header closes the client with bad_proxy_header, logs why, and dials no upstream', async (t) => {
  const { proxy, port, upstream, lines } = await setup(t, { acceptProxy: true });
  const closed = nextClose(proxy);
  const socket = await client(port);
  const gone = closedBy(socket);
  socket.write('PROXY TCP4 192.0.2.1 192.0.2.2 99999 80\r\nGET / HTTP/1.1\r\n\r\n');
  const info = await closed;
  await gone;
  assert.equal(info.cause, 'bad_proxy_header');
  assert.equal(info.upstream, null);
  assert.equal(info.attempts, 0);
  assert.equal(upstream.sockets.length, 0);
  const refused = lines.find((l) => l.msg === 'client refused');
  assert.equal(refused?.reason, 'PROXY v1 header: bad source port "99999"');
  assert.equal(accessRecord(lines, info.id).upstream, null);
});

test('a client that sends no complete header within the timeout is closed with proxy_header_timeout', async (t) => {
  const { proxy, port, upstream } = await setup(t, {
    acceptProxy: true,
    proxyHeaderTimeoutMs: 200,
  });
  const closed = nextClose(proxy);
  const socket = await client(port);
  const gone = closedBy(socket);
  socket.write('PROXY TCP4 192.0.2.1'); // and then nothing
  const info = await closed;
  await gone;
  assert.equal(info.cause, 'proxy_header_timeout');
  assert.ok(info.ageMs >= 190, `closed after ${info.ageMs} ms`);
  assert.equal(info.upstream, null);
  assert.equal(upstream.sockets.length, 0);
});

function access(rules: AccessOptions): AccessControl {
  return new AccessControl(rules);
}

test('a denied client is closed with denied before any dial; an allowed one goes through', async (t) => {
  const rules = access({ allow: [parseCidr('127.0.0.0/8')], deny: [parseCidr('127.0.0.2')] });
  const { proxy, port, upstream, got, lines } = await setup(t, { access: rules });
  let closed = nextClose(proxy);
  const denied = await client(port, '127.0.0.2');
  await closedBy(denied);
  let info = await closed;
  assert.equal(info.cause, 'denied');
  assert.equal(info.upstream, null);
  assert.equal(upstream.sockets.length, 0);
  assert.equal(
    lines.find((l) => l.msg === 'client refused')?.reason,
    'in denied range 127.0.0.2/32',
  );
  closed = nextClose(proxy);
  const allowed = await client(port, '127.0.0.3');
  allowed.end('hello');
  info = await closed; // first: a refusal would never reach the upstream
  assert.equal(info.cause, 'client_fin');
  await upstream.accepted();
  assert.equal((await (got[0] as Promise<Buffer>)).toString(), 'hello');
});

test("with a PROXY header, access control checks the header's source, not the socket's", async (t) => {
  const rules = access({ allow: [parseCidr('10.0.0.0/8')] });
  const { proxy, port, upstream, got } = await setup(t, { acceptProxy: true, access: rules });
  let closed = nextClose(proxy);
  const outside = await client(port);
  outside.write(encodeV1(header('192.0.2.9', 1234)));
  let info = await closed;
  assert.equal(info.cause, 'denied');
  assert.equal(info.client, '192.0.2.9:1234', 'the refused client is the one the header names');
  assert.equal(upstream.sockets.length, 0);
  closed = nextClose(proxy);
  const inside = await client(port);
  inside.end(Buffer.concat([encodeV2(header('10.1.2.3', 1234)), Buffer.from('in')]));
  info = await closed; // first: a refusal would never reach the upstream
  assert.equal(info.cause, 'client_fin');
  assert.equal(info.client, '10.1.2.3:1234');
  await upstream.accepted();
  assert.equal((await (got[0] as Promise<Buffer>)).toString(), 'in');
});

test('max connections per address: a second open connection from one address is rate_limited until the first ends', async (t) => {
  const rules = access({ maxConnectionsPerIp: 1 });
  const { proxy, port, upstream } = await setup(t, { access: rules });
  const first = await client(port, '127.0.0.4');
  await upstream.accepted(0);
  const closed = nextClose(proxy);
  const second = await client(port, '127.0.0.4');
  await closedBy(second);
  assert.equal((await closed).cause, 'rate_limited');
  assert.equal(upstream.sockets.length, 1, 'the refused client dialled nothing');
  const other = await client(port, '127.0.0.5');
  await upstream.accepted(1);
  assert.equal(rules.openConnections('127.0.0.4'), 1);
  const firstClosed = nextClose(proxy);
  first.end();
  await firstClosed;
  await waitFor(() => rules.openConnections('127.0.0.4') === 0, 5000, 'the first counted off');
  const third = await client(port, '127.0.0.4');
  await upstream.accepted(2);
  third.destroy();
  other.destroy();
});

test('connection rate per address: the N+1th new connection within DUR is rate_limited', async (t) => {
  const rules = access({ connectionRatePerIp: parseRate('2/1h') });
  const { proxy, port, upstream } = await setup(t, { access: rules });
  for (let i = 0; i < 2; i++) {
    const closed = nextClose(proxy);
    (await client(port, '127.0.0.6')).end();
    assert.equal((await closed).cause, 'client_fin');
  }
  const closed = nextClose(proxy);
  await closedBy(await client(port, '127.0.0.6'));
  assert.equal((await closed).cause, 'rate_limited');
  assert.equal(upstream.sockets.length, 2);
  const elsewhere = nextClose(proxy);
  (await client(port, '127.0.0.7')).end();
  assert.equal((await elsewhere).cause, 'client_fin', 'another address has its own bucket');
});

/** The header an upstream received first, and what followed it. */
async function receivedHeader(
  got: Promise<Buffer>,
): Promise<{ header: ProxyHeader; rest: string }> {
  const result = parseProxyHeader(await got);
  assert.equal(result.status, 'done', JSON.stringify(result));
  if (result.status !== 'done') throw new Error('unreachable');
  return { header: result.header, rest: result.rest.toString() };
}

for (const version of ['v1', 'v2'] as const) {
  test(`the ${version} preface reaches the upstream before any relayed byte, with the client's address and the one it connected to`, async (t) => {
    const { port, upstream, got } = await setup(t, { sendProxy: version });
    const socket = await client(port, '127.0.0.8');
    socket.write('early '); // probably before the upstream is connected: held, then relayed after the header
    await upstream.accepted();
    socket.end('and late');
    const { header: h, rest } = await receivedHeader(got[0] as Promise<Buffer>);
    assert.equal(h.version, version === 'v1' ? 1 : 2);
    assert.equal(h.command, 'PROXY');
    assert.equal(h.family, 'IPv4');
    assert.deepEqual(h.source, { address: '127.0.0.8', port: socket.localPort });
    assert.deepEqual(h.destination, { address: '127.0.0.1', port });
    assert.equal(rest, 'early and late');
  });
}

for (const version of ['v1', 'v2'] as const) {
  test(`with both accept and send (${version}), the upstream's header carries the received header's source and destination`, async (t) => {
    const { port, upstream, got } = await setup(t, { acceptProxy: true, sendProxy: version });
    const received = [
      header('198.51.100.7', 40_000, '203.0.113.9', 8443),
      header('2001:db8::7', 40_001, '2001:db8::1', 443),
    ];
    for (const [i, fields] of received.entries()) {
      const socket = await client(port);
      socket.write(encodeV2(fields));
      await upstream.accepted(i);
      socket.end('data');
      const { header: h, rest } = await receivedHeader(got[i] as Promise<Buffer>);
      assert.deepEqual(h.source, fields.source);
      assert.deepEqual(h.destination, fields.destination);
      assert.equal(rest, 'data');
    }
  });
}

test("a v2 LOCAL header with send: the upstream's header carries the socket's own addresses", async (t) => {
  const { port, upstream, got } = await setup(t, { acceptProxy: true, sendProxy: 'v1' });
  const socket = await client(port, '127.0.0.6');
  socket.write(encodeV2({ ...header('198.51.100.7', 40_000), command: 'LOCAL' }));
  await upstream.accepted();
  socket.end('data');
  const { header: h, rest } = await receivedHeader(got[0] as Promise<Buffer>);
  assert.deepEqual(h.source, { address: '127.0.0.6', port: socket.localPort });
  assert.deepEqual(h.destination, { address: '127.0.0.1', port });
  assert.equal(rest, 'data');
});

test('a Unix socket client is sent as PROXY UNKNOWN (v1) and LOCAL/UNSPEC (v2)', async (t) => {
  const upstreamGot: Promise<Buffer>[] = [];
  const upstream = await startUpstream(t, (socket) => {
    upstreamGot.push(collect(socket));
    socket.on('end', () => socket.end());
  });
  for (const version of ['v1', 'v2'] as const) {
    const path = join(tmpdir(), `l4proxy-admission-${process.pid}-${version}.sock`);
    rmSync(path, { force: true });
    const proxy = createProxy({
      listen: `unix:${path}`,
      targets: [upstream.address],
      log: { level: 'error' },
      ...withHooks({ sendProxy: version }),
    });
    await proxy.listen();
    t.after(() => proxy.close({ graceful: false }));
    const socket = connect({ path, allowHalfOpen: true });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.end('x');
    const n = upstreamGot.length;
    await upstream.accepted(n);
    const { header: h, rest } = await receivedHeader(upstreamGot[n] as Promise<Buffer>);
    assert.equal(h.family, 'unspec');
    assert.equal(h.command, version === 'v1' ? 'PROXY' : 'LOCAL');
    assert.equal(rest, 'x');
  }
});
