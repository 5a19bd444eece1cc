/**
 * The handshake phase and the preface (src/handshake.ts), through test-only hooks
 * given to the library with `kConnectionHooks`: real sockets, bytes checked at both ends.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { type ConnectionHooks, type Handshake, kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo } from '../src/index.js';
import {
  blackholeAddress,
  connectClient,
  patternBytes,
  startProxy,
  startUpstream,
  waitFor,
} from './helpers/net.js';

function nextClose(proxy: { once(e: 'connectionClose', f: (c: ConnectionInfo) => void): unknown }) {
  return new Promise<ConnectionInfo>((resolve) => proxy.once('connectionClose', resolve));
}

function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return once(socket, 'end').then(() => Buffer.concat(chunks));
}

/** hello reads a line "HELLO <name>\n", consumes it and allows the client, known as <name> from then on. */
const hello: Handshake = {
  name: 'hello',
  timeoutMs: 5000,
  timeoutCause: 'proxy_header_timeout',
  maxBytes: 64,
  step(bytes) {
    const end = bytes.indexOf(0x0a);
    if (end < 0)
      return bytes.length >= 64 ? { allow: false, cause: 'bad_proxy_header' } : undefined;
    const line = bytes.subarray(0, end).toString('latin1');
    if (!line.startsWith('HELLO ')) return { allow: false, cause: 'bad_proxy_header' };
    return { allow: true, consumed: end + 1, client: line.slice(6) };
  },
};

const refuseAll: Handshake = {
  name: 'deny-all',
  timeoutMs: 5000,
  timeoutCause: 'proxy_header_timeout',
  maxBytes: 0,
  step: () => ({ allow: false, cause: 'denied', reason: 'test' }),
};

function withHooks(hooks: ConnectionHooks): object {
  return { [kConnectionHooks]: hooks };
}

/** An upstream that collects what each connection sends until its FIN, and echoes nothing. */
async function collectingUpstream(t: Parameters<typeof startUpstream>[0]) {
  const got: Promise<Buffer>[] = [];
  const upstream = await startUpstream(t, (socket) => {
    got.push(collect(socket));
    socket.on('end', () => socket.end());
  });
  return { upstream, got };
}

test('a handshake reads its line, then the bytes after it (same packet and later) reach the upstream in order, byte-exact', async (t) => {
  const { upstream, got } = await collectingUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...withHooks({ handshake: hello }),
  });
  const closed = nextClose(proxy);
  const first = patternBytes(300 * 1024, 3);
  const later = patternBytes(200 * 1024, 5);
  const client = connectClient(port);
  client.socket.write(Buffer.concat([Buffer.from('HELLO alice\n'), first]));
  await upstream.accepted();
  client.socket.end(later);
  await client.ended;
  const bytes = await (got[0] as Promise<Buffer>);
  assert.ok(
    bytes.equals(Buffer.concat([first, later])),
    'upstream got the bytes after the line, in order',
  );
  const info = await closed;
  assert.equal(info.client, 'alice');
  assert.equal(info.bytesToUpstream, first.length + later.length);
  assert.equal(info.cause, 'client_fin');
});

test('a connection waiting for its handshake is in state handshake and dials no upstream; the trace shows the handshake', async (t) => {
  const { upstream } = await collectingUpstream(t);
  const lines: { msg: string }[] = [];
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    log: { level: 'trace', format: 'json', write: (line) => lines.push(JSON.parse(line)) },
    ...withHooks({ handshake: hello }),
  });
  const client = connectClient(port);
  client.socket.write('HEL');
  await waitFor(() => proxy.connections()[0]?.bytesFromClient === 3, 5000, 'the partial line read');
  assert.equal(proxy.connections()[0]?.state, 'handshake');
  assert.equal(upstream.sockets.length, 0);
  const closed = nextClose(proxy);
  client.socket.write('LO bob\n');
  await upstream.accepted();
  client.socket.end();
  const info = await closed;
  assert.equal(info.client, 'bob');
  const msgs = lines.map((l) => l.msg);
  for (const want of [
    'handshake hello started',
    'read 3 bytes from client (held: handshake)',
    'handshake hello allowed bob',
  ]) {
    assert.ok(msgs.includes(want), `trace has "${want}": ${JSON.stringify(msgs)}`);
  }
  assert.ok(
    msgs.indexOf('handshake hello allowed bob') <
      msgs.findIndex((m) => m.startsWith('connecting to')),
    'dialled only after the handshake allowed',
  );
});

test('a refusing handshake closes the client with denied before any upstream is dialled', async (t) => {
  const { upstream } = await collectingUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...withHooks({ handshake: refuseAll }),
  });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  client.socket.write('some bytes');
  const info = await closed;
  assert.equal(info.cause, 'denied');
  assert.equal(info.upstream, null);
  assert.equal(info.attempts, 0);
  await client.ended;
  assert.equal(upstream.sockets.length, 0, 'the upstream saw no connection');
  assert.deepEqual(proxy.connections(), []);
});

test('a handshake that never completes ends at its deadline with its own cause', async (t) => {
  const { upstream } = await collectingUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...withHooks({ handshake: { ...hello, timeoutMs: 200 } }),
  });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  client.socket.write('HELLO never-ends');
  const info = await closed;
  assert.equal(info.cause, 'proxy_header_timeout');
  assert.equal(info.upstream, null);
  assert.ok(info.ageMs >= 190, `closed after ${info.ageMs} ms`);
  await client.ended;
  assert.equal(upstream.sockets.length, 0);
});

test('a bad line closes the client with the cause the handshake gives', async (t) => {
  const { upstream } = await collectingUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [upstream.address],
    ...withHooks({ handshake: hello }),
  });
  const closed = nextClose(proxy);
  const client = connectClient(port);
  client.socket.write('GET / HTTP/1.1\r\n');
  assert.equal((await closed).cause, 'bad_proxy_header');
  assert.equal(upstream.sockets.length, 0);
});

for (const how of ['fin', 'reset'] as const) {
  test(`a client ${how === 'fin' ? 'finishing' : 'resetting'} during the handshake is torn down at once and nothing stays open`, async (t) => {
    const { upstream } = await collectingUpstream(t);
    const { proxy, port } = await startProxy(t, {
      targets: [upstream.address],
      ...withHooks({ handshake: { ...hello, timeoutMs: 60_000 } }),
    });
    const client = connectClient(port);
    client.socket.write('HELLO');
    await waitFor(
      () => proxy.connections()[0]?.bytesFromClient === 5,
      5000,
      'the partial line read',
    );
    const closed = nextClose(proxy);
    if (how === 'fin') client.socket.end();
    else client.socket.resetAndDestroy();
    const info = await closed;
    assert.equal(info.cause, how === 'fin' ? 'client_fin' : 'client_reset');
    assert.ok(info.ageMs < 5000, `closed after ${info.ageMs} ms, not at the deadline`);
    assert.deepEqual(proxy.connections(), []);
    await client.closed;
    assert.equal(upstream.sockets.length, 0);
  });
}

test('the preface reaches the upstream before the client bytes, also those sent while dialing; bytesToUpstream leaves it out', async (t) => {
  const silent = await blackholeAddress(t); // the first target never answers: bytes wait
  const { upstream, got } = await collectingUpstream(t);
  const preface = Buffer.from('PROXY TEST\r\n');
  const { proxy, port } = await startProxy(t, {
    targets: [silent, upstream.address],
    connectTimeoutMs: 300,
    ...withHooks({ preface: () => preface }),
  });
  const closed = nextClose(proxy);
  const early = patternBytes(64 * 1024, 9);
  const later = patternBytes(64 * 1024, 13);
  const client = connectClient(port);
  client.socket.write(early);
  await upstream.accepted();
  client.socket.end(later);
  await client.ended;
  const bytes = await (got[0] as Promise<Buffer>);
  assert.ok(bytes.equals(Buffer.concat([preface, early, later])), 'preface, then the client bytes');
  const info = await closed;
  assert.equal(info.bytesToUpstream, early.length + later.length);
});

test('bytes a client sends while the proxy dials are held up to a bound, then all relayed in order', async (t) => {
  const silent = await blackholeAddress(t);
  const { upstream, got } = await collectingUpstream(t);
  const { proxy, port } = await startProxy(t, {
    targets: [silent, upstream.address],
    connectTimeoutMs: 500,
  });
  const closed = nextClose(proxy);
  const data = patternBytes(4 * 1024 * 1024, 17);
  const client = connectClient(port);
  client.socket.end(data);
  await waitFor(
    () => (proxy.connections()[0]?.bytesFromClient ?? 0) > 0,
    5000,
    'bytes read while dialing',
  );
  const view = proxy.connections()[0];
  assert.equal(view?.state, 'connecting');
  // At most the bound plus one read: reading paused, the rest waits in the kernel.
  assert.ok((view?.bytesFromClient ?? 0) <= 32 * 1024, `held ${view?.bytesFromClient} bytes`);
  await upstream.accepted();
  const bytes = await (got[0] as Promise<Buffer>);
  assert.ok(bytes.equals(data), 'every byte arrived, in order');
  const info = await closed;
  assert.equal(info.cause, 'client_fin');
});
