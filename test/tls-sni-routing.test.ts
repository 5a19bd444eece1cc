/**
 * Routing by SNI without decrypting (src/tls/sni-handshake.ts), wired through the
 * internal `kConnectionHooks`: three real TLS servers with certificates made by
 * openssl behind routes a.example.com, *.b.example.com and the default; real clients
 * (Node's tls.connect, openssl s_client) complete their TLS session end to end
 * through the proxy and see the server's own certificate. Garbage, a ClientHello cut
 * short, or none in time: `tls_handshake_failed`, and no upstream is dialled.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { Target } from '../src/config/address.js';
import { type ConnectionHooks, kConnectionHooks } from '../src/handshake.js';
import type { ConnectionInfo, TcpProxy } from '../src/index.js';
import { routePools, sniHandshake } from '../src/tls/sni-handshake.js';
import { withTimeout } from './helpers/cli.js';
import { connectClient, patternBytes, refusedTarget, startProxy, waitFor } from './helpers/net.js';
import {
  buildClientHello,
  makeCertificate,
  readLine,
  spawnTool,
  startTlsUpstream,
  type TlsUpstream,
  tempDir,
} from './helpers/tls.js';

interface Setup {
  proxy: TcpProxy;
  port: number;
  a: TlsUpstream;
  b: TlsUpstream;
  fallback: TlsUpstream;
  all: TlsUpstream[];
}

/**
 * setup: routes a.example.com → A, *.b.example.com → B, default → the fallback. The
 * listener's own target refuses connections, so a route that was not applied shows.
 */
async function setup(t: TestContext, timeoutMs = 5000): Promise<Setup> {
  const dir = await tempDir(t);
  const [certA, certB, certDefault] = await Promise.all([
    makeCertificate(dir, 'a', 'a.example.com'),
    makeCertificate(dir, 'b', 'b.example.com', ['*.b.example.com']),
    makeCertificate(dir, 'default', 'default.test'),
  ]);
  const a = await startTlsUpstream(t, 'A', certA);
  const b = await startTlsUpstream(t, 'B', certB);
  const fallback = await startTlsUpstream(t, 'default', certDefault);
  const pools = routePools([
    { sni: 'a.example.com', targets: [a.target] },
    { sni: '*.b.example.com', targets: [b.target] },
    { targets: [fallback.target] },
  ]);
  const { proxy, port } = await startProxy(t, {
    targets: [await refusedTarget()],
    ...hooks({ handshake: sniHandshake({ route: pools.route, timeoutMs }) }),
  });
  return { proxy, port, a, b, fallback, all: [a, b, fallback] };
}

/** hooks carries a listener's ConnectionHooks in its options, as the flags will (handshake.ts). */
function hooks(connectionHooks: ConnectionHooks): object {
  return { [kConnectionHooks]: connectionHooks };
}

function nextClose(proxy: TcpProxy): Promise<ConnectionInfo> {
  return new Promise((resolve) => proxy.once('connectionClose', resolve));
}

/** exchange connects through the proxy, reads the greeting, echoes `payload` and ends. */
async function exchange(port: number, servername: string | undefined, ca: string | undefined) {
  const socket = tlsConnect({
    port,
    host: '127.0.0.1',
    ...(servername === undefined ? {} : { servername }),
    ...(ca === undefined ? { rejectUnauthorized: false } : { ca }),
  });
  socket.on('error', () => {});
  await withTimeout(once(socket, 'secureConnect'), 5000, 'the TLS handshake through the proxy');
  const subject = socket.getPeerCertificate().subject.CN;
  const greeting = await withTimeout(readLine(socket), 5000, 'the greeting');
  const payload = patternBytes(200 * 1024, 11);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end(payload);
  await withTimeout(once(socket, 'end'), 5000, "the server's FIN");
  // The payload goes out only after the greeting came, so all that follows is its echo.
  const echoed = Buffer.concat(chunks);
  return {
    subject,
    greeting,
    echoedOk: echoed.equals(payload),
  };
}

describe('SNI routing through the proxy (tls.connect)', () => {
  test('a.example.com reaches server A, a name under *.b.example.com server B, others and none the default; TLS completes end to end', async (t) => {
    const { proxy, port, a, b, fallback } = await setup(t);
    for (const [servername, upstream, verify] of [
      ['a.example.com', a, true],
      ['A.EXAMPLE.COM', a, true],
      ['x.b.example.com', b, true],
      ['b.example.com', fallback, false],
      ['other.test', fallback, false],
      [undefined, fallback, false],
    ] as const) {
      const closed = nextClose(proxy);
      const result = await exchange(port, servername, verify ? upstream.cert.cert : undefined);
      const what = String(servername);
      assert.match(result.greeting, new RegExp(`^server ${upstream.name} sni=`), what);
      assert.equal(result.subject, upstream.cert.cn, `${what}: the server's own certificate`);
      assert.ok(result.echoedOk, `${what}: the payload came back whole`);
      const info = await closed;
      assert.equal(info.upstream, upstream.target.address, what);
      assert.equal(info.attempts, 1);
    }
  });

  test('a ClientHello arriving in many small reads still routes, and the session completes', async (t) => {
    const { proxy, port, a } = await setup(t);
    const closed = nextClose(proxy);
    const raw = connectClient(port);
    await once(raw.socket, 'connect');
    // Send a real ClientHello from tls.connect in 40-byte pieces, each read by the proxy
    // before the next is written (waiting on its byte count), then let TLS go on.
    const { Duplex } = await import('node:stream');
    let sent = 0;
    const transport = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        void (async () => {
          for (let at = 0; at < chunk.length; at += 40) {
            const piece = chunk.subarray(at, at + 40);
            raw.socket.write(piece);
            sent += piece.length;
            const want = sent;
            if (proxy.connections()[0]?.state === 'handshake')
              await waitFor(
                () => (proxy.connections()[0]?.bytesFromClient ?? 0) >= want,
                5000,
                `${want} bytes read`,
              );
          }
          callback();
        })().catch(callback);
      },
      final(callback) {
        raw.socket.end();
        callback();
      },
    });
    raw.socket.on('data', (c: Buffer) => transport.push(c));
    raw.socket.on('end', () => transport.push(null));
    const socket = tlsConnect({ socket: transport, servername: 'a.example.com', ca: a.cert.cert });
    socket.on('error', () => {});
    await withTimeout(once(socket, 'secureConnect'), 5000, 'the TLS handshake');
    assert.match(await readLine(socket), /^server A sni=a\.example\.com$/);
    socket.end();
    const info = await closed;
    assert.equal(info.upstream, a.target.address);
  });
});

describe('SNI routing through the proxy (openssl s_client)', () => {
  for (const [servername, want, cn] of [
    ['a.example.com', 'A', 'a.example.com'],
    ['zz.b.example.com', 'B', 'b.example.com'],
    ['c.example.com', 'default', 'default.test'],
  ] as const) {
    test(`-servername ${servername} reaches server ${want} and sees its certificate`, async (t) => {
      const { port } = await setup(t);
      const child = spawnTool('openssl', [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-servername',
        servername,
      ]);
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
      });
      child.stderr?.resume();
      await waitFor(
        () => out.includes(`server ${want} sni=${servername}`),
        5000,
        `the greeting of ${want}`,
      );
      assert.match(out, new RegExp(`subject=CN ?= ?${cn.replaceAll('.', '\\.')}`));
      child.stdin?.end('ping\n'); // stdin's end makes s_client close
      await withTimeout(once(child, 'exit'), 5000, 's_client to exit');
    });
  }
});

describe('SNI routing refuses clients without a valid ClientHello', () => {
  test('garbage closes the client with tls_handshake_failed and dials no upstream', async (t) => {
    const { proxy, port, all } = await setup(t);
    const closed = nextClose(proxy);
    const client = connectClient(port);
    client.socket.write('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
    const info = await closed;
    assert.equal(info.cause, 'tls_handshake_failed');
    assert.equal(info.upstream, null);
    assert.equal(info.attempts, 0);
    await withTimeout(client.ended, 5000, "the proxy's FIN to the client");
    assert.deepEqual(
      all.map((u) => u.tcpConnections),
      [0, 0, 0],
    );
  });

  test('a ClientHello with a broken extension is refused the same way', async (t) => {
    const { proxy, port, all } = await setup(t);
    const closed = nextClose(proxy);
    const client = connectClient(port);
    const hello = buildClientHello({ serverName: 'a.example.com', alpn: ['h2'] });
    hello.writeUInt16BE(0xfff0, hello.length - 7); // the ALPN extension's length
    client.socket.write(hello);
    assert.equal((await closed).cause, 'tls_handshake_failed');
    assert.deepEqual(
      all.map((u) => u.tcpConnections),
      [0, 0, 0],
    );
  });

  test('a ClientHello cut short is refused at the deadline with tls_handshake_failed', async (t) => {
    const { proxy, port, all } = await setup(t, 300);
    const closed = nextClose(proxy);
    const client = connectClient(port);
    client.socket.write(buildClientHello({ serverName: 'a.example.com' }).subarray(0, 60));
    await waitFor(() => proxy.connections()[0]?.bytesFromClient === 60, 5000, 'the 60 bytes read');
    assert.equal(proxy.connections()[0]?.state, 'handshake');
    const info = await closed;
    assert.equal(info.cause, 'tls_handshake_failed');
    assert.equal(info.upstream, null);
    assert.ok(info.ageMs >= 290, `closed after ${info.ageMs} ms`);
    assert.deepEqual(
      all.map((u) => u.tcpConnections),
      [0, 0, 0],
    );
  });
});

describe('routePools', () => {
  const target = (port: number): Target => ({
    address: `127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    weight: 1,
  });

  test('refuses a bad routes list with the one-line message of checkRoutes', () => {
    assert.throws(
      () => routePools([{ targets: [target(1)] }, { sni: 'a.*.com', targets: [target(2)] }]),
      {
        name: 'RangeError',
        message: /^routes\[0\]: a route without sni is the default and must come last/,
      },
    );
  });

  test('gives each route its own pool, the same one for every connection', () => {
    const pools = routePools([
      { sni: '*.example.com', targets: [target(1), target(2)] },
      { targets: [target(3)] },
    ]);
    const pool = pools.route('a.example.com');
    assert.equal(pools.route('B.example.com'), pool);
    assert.deepEqual(
      [pool.plan(undefined), pool.plan(undefined)].map((p) => p.targets[0]?.address),
      ['127.0.0.1:1', '127.0.0.1:2'],
      'round-robin goes on across connections',
    );
    assert.equal(pools.route(null).entries[0]?.address, '127.0.0.1:3');
  });
});
