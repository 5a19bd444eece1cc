/**
 * Routing by TLS server name without terminating (issue #15), through the built CLI
 * and a config file: a listener's `routes` in front of two real TLS servers on
 * 127.0.0.1 with their own certificates. Real clients (Node's tls.connect, `openssl
 * s_client -servername`) complete their session with the server their name routes
 * to; a client without a ClientHello is closed with `tls_handshake_failed` and
 * `upstream: null` (no target dialled), within `--proxy-header-timeout`; `l4proxy
 * check` prints the routes, a bad route is a positioned one-line error (exit 2), and
 * a reload (SIGHUP) changes a route for new connections only. Build first.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type CliChild, type LogRecord, runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { connectClient, waitFor } from '../helpers/net.js';
import {
  makeCertificate,
  readLine,
  spawnTool,
  startTlsUpstream,
  type TlsUpstream,
  tempDir,
} from '../helpers/tls.js';

interface Setup {
  dir: string;
  file: string;
  a: TlsUpstream;
  b: TlsUpstream;
}

/** upstreams starts server A (a.example.com) and server B (b.example.com, *.b.example.com). */
async function upstreams(t: TestContext): Promise<Setup> {
  const dir = await tempDir(t, 'l4proxy-sni-e2e-');
  const [certA, certB] = await Promise.all([
    makeCertificate(dir, 'a', 'a.example.com'),
    makeCertificate(dir, 'b', 'b.example.com', ['b.example.com', '*.b.example.com']),
  ]);
  const a = await startTlsUpstream(t, 'A', certA);
  const b = await startTlsUpstream(t, 'B', certB);
  return { dir, file: join(dir, 'proxy.yaml'), a, b };
}

/** configText routes a.example.com to `forA`, *.b.example.com to B, the rest to A. */
function configText(s: Setup, forA: TlsUpstream = s.a): string {
  return [
    'admin:',
    '  listen: 127.0.0.1:0',
    'listeners:',
    '  - name: tls',
    '    listen: 127.0.0.1:0',
    '    routes:',
    '      - sni: a.example.com',
    `        targets: [${forA.target.address}]`,
    '      - sni: "*.b.example.com"',
    `        targets: [${s.b.target.address}]`,
    '      - targets:',
    `          - ${s.a.target.address}`,
    '',
  ].join('\n');
}

interface Running {
  cli: CliChild;
  port: number;
  admin: string;
}

/** start writes the config and starts `l4proxy --config FILE --log-format json ...args`. */
async function start(t: TestContext, s: Setup, args: readonly string[] = []): Promise<Running> {
  writeFileSync(s.file, configText(s));
  const cli = spawnCli(t, ['--config', s.file, '--log-format', 'json', ...args]);
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 5000, 'listening');
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 5000, 'admin');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  return { cli, port, admin: `http://${admin.address}` };
}

/** closedRecords are the access records (`connection closed`) so far. */
function closedRecords(cli: CliChild): (LogRecord & { sni?: string })[] {
  return cli.records().filter((r) => r.msg === 'connection closed');
}

/**
 * openTls connects through the proxy with `servername`, trusting `ca` only, and reads
 * the greeting. The name is not checked against the certificate (a default route's
 * server has its own name); the tests check the subject.
 */
async function openTls(port: number, servername: string, ca: string) {
  const socket = tlsConnect({
    port,
    host: '127.0.0.1',
    servername,
    ca,
    checkServerIdentity: () => undefined,
  });
  socket.on('error', () => {});
  await withTimeout(once(socket, 'secureConnect'), 5000, `the TLS handshake for ${servername}`);
  const greeting = await withTimeout(readLine(socket), 5000, 'the greeting');
  return { socket, greeting, subject: socket.getPeerCertificate().subject.CN };
}

/** echoes sends a line and waits for it back (the server echoes), proving the session works. */
async function echoes(socket: TLSSocket, line: string): Promise<void> {
  let got = '';
  const onData = (chunk: Buffer) => {
    got += chunk.toString('latin1');
  };
  socket.on('data', onData);
  socket.write(`${line}\n`);
  await waitFor(() => got.includes(line), 5000, `the echo of ${line}`);
  socket.off('data', onData);
}

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url);
  assert.equal(response.status, 200, url);
  return response.json();
}

describe('routes in the config file (the built CLI)', () => {
  test('tls.connect reaches the server its name routes to; the access record and /api/connections carry the sni', async (t) => {
    const s = await upstreams(t);
    const { cli, port, admin } = await start(t, s);
    for (const [servername, upstream] of [
      ['a.example.com', s.a],
      ['x.b.example.com', s.b],
      ['other.example.com', s.a],
    ] as const) {
      const before = closedRecords(cli).length;
      const { socket, greeting, subject } = await openTls(port, servername, upstream.cert.cert);
      assert.equal(greeting, `server ${upstream.name} sni=${servername}`);
      assert.equal(subject, upstream.cert.cn, "the server's own certificate, never the proxy's");
      await echoes(socket, `hello ${servername}`);
      const connections = (await getJson(`${admin}/api/connections`)) as Record<string, unknown>[];
      assert.equal(connections.length, 1);
      assert.equal(connections[0]?.['sni'], servername);
      assert.equal(connections[0]?.['upstream'], upstream.target.address);
      socket.end();
      await waitFor(() => closedRecords(cli).length > before, 5000, 'the access record');
      const record = closedRecords(cli)[before];
      assert.equal(record?.sni, servername);
      assert.equal(record?.upstream, upstream.target.address);
    }
    assert.equal(s.b.tcpConnections, 1, 'B was dialled once, for its own name');
  });

  test('openssl s_client -servername reaches the server of its route and sees its certificate', async (t) => {
    const s = await upstreams(t);
    const { port } = await start(t, s);
    for (const [servername, want, cn] of [
      ['zz.b.example.com', 'B', 'b.example.com'],
      ['a.example.com', 'A', 'a.example.com'],
    ] as const) {
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
      await waitFor(() => out.includes(`server ${want} sni=${servername}`), 5000, want);
      assert.match(out, new RegExp(`subject=CN ?= ?${cn.replaceAll('.', '\\.')}`));
      child.stdin?.end('ping\n');
      await withTimeout(once(child, 'exit'), 5000, 's_client to exit');
    }
  });

  test('garbage is closed with tls_handshake_failed and upstream null, and no server is dialled', async (t) => {
    const s = await upstreams(t);
    const { cli, port } = await start(t, s);
    const client = connectClient(port);
    client.socket.write('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
    const record = await cli.waitForRecord((r) => r.msg === 'connection closed', 5000, 'close');
    assert.equal(record.cause, 'tls_handshake_failed');
    assert.equal(record.upstream, null);
    await withTimeout(client.ended, 5000, "the proxy's FIN");
    assert.deepEqual([s.a.tcpConnections, s.b.tcpConnections], [0, 0]);
  });

  test('--proxy-header-timeout bounds the wait for the ClientHello (tls_handshake_failed)', async (t) => {
    const s = await upstreams(t);
    const { cli, port } = await start(t, s, ['--proxy-header-timeout', '300ms']);
    const client = connectClient(port);
    await once(client.socket, 'connect');
    const record = await cli.waitForRecord((r) => r.msg === 'connection closed', 5000, 'close');
    assert.equal(record.cause, 'tls_handshake_failed');
    assert.equal(record.upstream, null);
    assert.ok((record.duration_ms ?? 0) >= 290, `closed after ${record.duration_ms} ms`);
    assert.ok((record.duration_ms ?? 0) < 4000, 'not at the default 5s');
    assert.deepEqual([s.a.tcpConnections, s.b.tcpConnections], [0, 0]);
  });

  test('a reload changes a route for new connections; an open one stays; /api/listeners shows the routes; a bad route is refused whole', async (t) => {
    const s = await upstreams(t);
    const { cli, port, admin } = await start(t, s);
    const first = await openTls(port, 'a.example.com', s.a.cert.cert);
    assert.equal(first.greeting, 'server A sni=a.example.com');
    type Json = {
      name: string;
      routes: { sni: string | null; targets: Record<string, unknown>[] }[];
    };
    const [before] = (await getJson(`${admin}/api/listeners`)) as Json[];
    assert.deepEqual(
      before?.routes.map((r) => [r.sni, r.targets.map((x) => [x['address'], x['connections']])]),
      [
        ['a.example.com', [[s.a.target.address, 1]]],
        ['*.b.example.com', [[s.b.target.address, 0]]],
        [null, [[s.a.target.address, 0]]],
      ],
    );

    writeFileSync(s.file, configText(s, s.b));
    process.kill(cli.child.pid as number, 'SIGHUP');
    const reloaded = await cli.waitForRecord((r) => r.msg === 'config reloaded', 5000, 'reload');
    assert.deepEqual(reloaded.changed, ['tls']);

    const second = await openTls(port, 'a.example.com', s.b.cert.cert);
    assert.equal(second.greeting, 'server B sni=a.example.com', 'the new route');
    await echoes(first.socket, 'still there');
    const [after] = (await getJson(`${admin}/api/listeners`)) as Json[];
    assert.deepEqual(
      after?.routes[0]?.targets.map((x) => [x['address'], x['connections']]),
      [[s.b.target.address, 1]],
    );
    first.socket.end();
    second.socket.end();

    // A file with a bad route is refused whole: the routes in force stay.
    writeFileSync(s.file, configText(s, s.b).replace('sni: a.example.com', 'sni: a.*.com'));
    process.kill(cli.child.pid as number, 'SIGHUP');
    const refused = await cli.waitForRecord(
      (r) => r.msg === 'config reload refused',
      5000,
      'the refusal',
    );
    assert.match(refused.reason ?? '', /listeners\[0\]\.routes\[0\]\.sni: "a\.\*\.com"/);
    const third = await openTls(port, 'a.example.com', s.b.cert.cert);
    assert.equal(third.greeting, 'server B sni=a.example.com', 'the routes in force');
    third.socket.end();
  });
});

describe('l4proxy check with routes', () => {
  test('prints each route with its targets', async (t) => {
    const s = await upstreams(t);
    writeFileSync(s.file, configText(s));
    const result = await runCli(t, ['check', '--config', s.file]);
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.ok(lines.includes('  tls: 127.0.0.1:0 -> routes by SNI'), result.stdout);
    assert.ok(lines.includes(`    sni a.example.com -> ${s.a.target.address}`), result.stdout);
    assert.ok(lines.includes(`    sni *.b.example.com -> ${s.b.target.address}`), result.stdout);
    assert.ok(lines.includes(`    default -> ${s.a.target.address}`), result.stdout);
    assert.match(result.stdout, /proxy header 5s/);
  });

  for (const [what, routes, extra, want] of [
    [
      'a wildcard in the middle',
      '[{sni: "a.*.com", targets: ["127.0.0.1:1"]}, {targets: ["127.0.0.1:2"]}]',
      '',
      /:4:\d+ listeners\[0\]\.routes\[0\]\.sni: "a\.\*\.com": a wildcard must be a whole first label/,
    ],
    [
      'a default route that is not last',
      '[{targets: ["127.0.0.1:2"]}, {sni: a.example.com, targets: ["127.0.0.1:1"]}]',
      '',
      /:4:\d+ listeners\[0\]\.routes\[0\]: a route without sni is the default and must come last/,
    ],
    [
      'no default route',
      '[{sni: a.example.com, targets: ["127.0.0.1:1"]}]',
      '',
      /:4:\d+ listeners\[0\]\.routes\[0\]: the last route is the default and has no sni/,
    ],
    [
      'a bad target in a route',
      '[{sni: a.example.com, targets: ["127.0.0.1:70000"]}, {targets: ["127.0.0.1:2"]}]',
      '',
      /:4:\d+ listeners\[0\]\.routes\[0\]\.targets\[0\]: port must be 1 to 65535, got 70000/,
    ],
    [
      'targets beside routes',
      '[{targets: ["127.0.0.1:2"]}]',
      '\n    targets: ["127.0.0.1:3"]',
      /:5:\d+ listeners\[0\]\.targets: a listener with routes has no targets of its own/,
    ],
    [
      'a route without targets',
      '[{sni: a.example.com}, {targets: ["127.0.0.1:2"]}]',
      '',
      /listeners\[0\]\.routes\[0\]: missing field "targets"/,
    ],
  ] as const) {
    test(`refuses ${what} with exit 2 and one positioned line`, async (t) => {
      const dir = await tempDir(t, 'l4proxy-sni-check-');
      const file = join(dir, 'bad.yaml');
      writeFileSync(
        file,
        `listeners:\n  - name: tls\n    listen: 127.0.0.1:0\n    routes: ${routes}${extra}\n`,
      );
      for (const args of [
        ['check', '--config', file],
        ['--config', file],
      ]) {
        const result = await runCli(t, args);
        assert.equal(result.status, 2, result.stderr);
        const lines = result.stderr.trimEnd().split('\n');
        assert.equal(lines.length, 1, result.stderr);
        assert.ok(lines[0]?.includes(`${file}:`), lines[0]);
        assert.match(lines[0] ?? '', want);
      }
    });
  }
});
