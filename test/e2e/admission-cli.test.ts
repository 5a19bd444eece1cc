/**
 * Who may connect and the PROXY protocol, through the built command (issue #13): the
 * flags and config keys of cli-contract.md ("Who may connect", "PROXY protocol") on a
 * real proxy process, with clients from other loopback addresses (127.0.0.2,
 * 127.0.0.3, ...: all loopback on Linux), a real upstream, and haproxy in front.
 * A refused client must never cause an upstream connection.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { parseProxyHeader } from '../../src/proxy-protocol/parse.js';
import { encodeV2 } from '../../src/proxy-protocol/v2.js';
import {
  type CliChild,
  type LogRecord,
  runCli,
  spawnCli,
  startCli,
  withTimeout,
} from '../helpers/cli.js';
import { startUpstream, type Upstream, waitFor } from '../helpers/net.js';
import { deadline } from '../helpers/time.js';

const JSON_LOG = ['--log-format', 'json'];

/** echoUpstream: an upstream that echoes, so a relayed client gets its bytes back. */
function echoUpstream(t: TestContext): Promise<Upstream> {
  return startUpstream(t, (socket) => socket.pipe(socket));
}

/** clientFrom connects to the proxy from the loopback address `from` and resolves once connected. */
async function clientFrom(port: number, from: string): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
  socket.on('error', () => {});
  await withTimeout(once(socket, 'connect'), 5000, `a connection from ${from}`);
  return socket;
}

/** echoed: `socket` writes `text` and gets it back through the proxy and the echo upstream. */
async function echoed(socket: Socket, text: string): Promise<void> {
  let got = '';
  socket.on('data', (chunk: Buffer) => {
    got += chunk.toString();
  });
  socket.write(text);
  await waitFor(() => got === text, 5000, `the echo of ${text}`);
}

/** closedOf waits for the access record ("connection closed") of the client on `localPort`. */
function closedOf(cli: CliChild, localPort: number): Promise<LogRecord> {
  return cli.waitForRecord(
    (r) => r.msg === 'connection closed' && r.client?.endsWith(`:${localPort}`) === true,
    5000,
    `the access record of the client on port ${localPort}`,
  );
}

/** refusedWith: a client from `from` is closed by the proxy, logged with `cause` and no upstream. */
async function refusedWith(
  cli: CliChild & { port: number },
  from: string,
  cause: string,
): Promise<void> {
  const client = await clientFrom(cli.port, from);
  client.resume(); // to see its end
  const port = client.localPort as number;
  const record = await closedOf(cli, port);
  assert.equal(record.cause, cause);
  assert.equal(record.upstream, null);
  assert.equal(record.client, `${from}:${port}`);
  await waitFor(
    () => client.readableEnded || client.destroyed,
    5000,
    'the refused client to be closed',
  );
  client.destroy();
}

test('--allow refuses a client outside the range with denied, and dials nothing for it', async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--allow', '127.0.0.2/32'],
    ...JSON_LOG,
  ]);
  await refusedWith(cli, '127.0.0.3', 'denied');
  const allowed = await clientFrom(cli.port, '127.0.0.2');
  await echoed(allowed, 'let in');
  assert.equal(upstream.sockets.length, 1, 'only the allowed client reached the upstream');
  allowed.destroy();
});

test('--deny wins over --allow', async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address],
    ...['--allow', '127.0.0.0/8', '--deny', '127.0.0.3'],
    ...JSON_LOG,
  ]);
  await refusedWith(cli, '127.0.0.3', 'denied');
  const allowed = await clientFrom(cli.port, '127.0.0.2');
  await echoed(allowed, 'not denied');
  assert.equal(upstream.sockets.length, 1);
  allowed.destroy();
});

test('--max-connections-per-ip 2 refuses the third open connection from one address with rate_limited', async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--max-connections-per-ip', '2'],
    ...JSON_LOG,
  ]);
  const open = [await clientFrom(cli.port, '127.0.0.2'), await clientFrom(cli.port, '127.0.0.2')];
  for (const [i, socket] of open.entries()) await echoed(socket, `open ${i}`);
  await refusedWith(cli, '127.0.0.2', 'rate_limited');
  assert.equal(upstream.sockets.length, 2);
  // Another address has its own count.
  const other = await clientFrom(cli.port, '127.0.0.4');
  await echoed(other, 'another address');
  // One closed: its slot is free again.
  const first = open[0] as Socket;
  const closed = closedOf(cli, first.localPort as number);
  first.end();
  await closed;
  const again = await clientFrom(cli.port, '127.0.0.2');
  await echoed(again, 'a slot again');
  for (const socket of [...open, other, again]) socket.destroy();
});

test('--connection-rate-per-ip 2/1m refuses the third new connection from one address with rate_limited', async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address],
    ...['--connection-rate-per-ip', '2/1m'],
    ...JSON_LOG,
  ]);
  for (const i of [1, 2]) {
    const socket = await clientFrom(cli.port, '127.0.0.2');
    await echoed(socket, `new ${i}`);
    const closed = closedOf(cli, socket.localPort as number);
    socket.end();
    await closed;
  }
  await refusedWith(cli, '127.0.0.2', 'rate_limited');
  assert.equal(upstream.sockets.length, 2);
});

/** A v1 and a v2 header carrying the client 192.0.2.7:5000 (to 198.51.100.1:443). */
const HEADERS = {
  v1: Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 5000 443\r\n', 'latin1'),
  v2: encodeV2({
    command: 'PROXY',
    family: 'IPv4',
    transport: 'stream',
    source: { address: '192.0.2.7', port: 5000 },
    destination: { address: '198.51.100.1', port: 443 },
    tlvs: [],
  }),
};

for (const [version, header] of Object.entries(HEADERS)) {
  test(`--accept-proxy: a ${version} header's source is the client in the access log, and the bytes after it pass unchanged`, async (t) => {
    const upstream = await echoUpstream(t);
    const cli = await startCli(t, [
      ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--accept-proxy'],
      ...JSON_LOG,
    ]);
    const client = await clientFrom(cli.port, '127.0.0.2');
    // Split inside the header: it is read however it arrives.
    client.write(header.subarray(0, 7));
    await new Promise((resolve) => setImmediate(resolve));
    client.write(header.subarray(7));
    await echoed(client, 'after the header');
    client.end();
    const record = await cli.waitForRecord(
      (r) => r.msg === 'connection closed',
      5000,
      'the access record',
    );
    assert.equal(record.client, '192.0.2.7:5000');
    assert.equal(record.bytes_to_upstream, 'after the header'.length);
  });
}

test('--accept-proxy: a malformed header closes the client with bad_proxy_header before any dial', async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--accept-proxy'],
    ...JSON_LOG,
  ]);
  const client = await clientFrom(cli.port, '127.0.0.2');
  client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const record = await closedOf(cli, client.localPort as number);
  assert.equal(record.cause, 'bad_proxy_header');
  assert.equal(record.upstream, null);
  assert.equal(upstream.sockets.length, 0);
});

test('--accept-proxy: no header within --proxy-header-timeout 300ms closes the client with proxy_header_timeout', async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--accept-proxy'],
    ...['--proxy-header-timeout', '300ms'],
    ...JSON_LOG,
  ]);
  const startedMs = Date.now();
  const client = await clientFrom(cli.port, '127.0.0.2');
  client.write('PROXY TCP4 192.0.2.7'); // incomplete, then nothing
  const record = await closedOf(cli, client.localPort as number);
  assert.equal(record.cause, 'proxy_header_timeout');
  assert.equal(record.upstream, null);
  assert.ok(Date.now() - startedMs >= 250, 'not before the timeout');
  assert.equal(upstream.sockets.length, 0);
});

test('--send-proxy v2: the upstream gets a valid v2 header with the client address, then the bytes', async (t) => {
  const got: Buffer[] = [];
  const upstream = await startUpstream(t, (socket) => {
    socket.on('data', (chunk: Buffer) => got.push(chunk));
  });
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--send-proxy', 'v2'],
    ...JSON_LOG,
  ]);
  const client = await clientFrom(cli.port, '127.0.0.5');
  client.write('payload');
  await waitFor(
    () => {
      const all = Buffer.concat(got);
      const parsed = parseProxyHeader(all);
      return parsed.status === 'done' && all.subarray(parsed.length).toString() === 'payload';
    },
    5000,
    'a v2 header then the payload',
  );
  const parsed = parseProxyHeader(Buffer.concat(got));
  assert.equal(parsed.status, 'done');
  if (parsed.status !== 'done') return;
  assert.equal(parsed.header.version, 2);
  assert.equal(parsed.header.command, 'PROXY');
  assert.deepEqual(parsed.header.source, { address: '127.0.0.5', port: client.localPort });
  assert.deepEqual(parsed.header.destination, { address: '127.0.0.1', port: cli.port });
  client.destroy();
});

function installed(command: string): boolean {
  return spawnSync(command, ['-v'], { stdio: 'ignore' }).error === undefined;
}
// In CI (.ci/run installs haproxy) a missing haproxy is a failure, never a silent skip.
const SKIP_HAPROXY =
  installed('haproxy') || process.env['CI'] === 'true'
    ? false
    : 'haproxy is not installed (apt-get install -y haproxy)';

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** startHaproxy runs haproxy in the foreground (`-db`), ended by its PID after the test. */
async function startHaproxy(t: TestContext, front: number, server: string): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-admission-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend fe',
      `  bind 127.0.0.1:${front}`,
      '  default_backend be',
      'backend be',
      `  server s1 ${server}`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.resume();
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  return child;
}

test('haproxy (send-proxy-v2) in front of --accept-proxy: the client is the one haproxy saw', {
  skip: SKIP_HAPROXY,
}, async (t) => {
  const upstream = await echoUpstream(t);
  const cli = await startCli(t, [
    ...['--listen', '127.0.0.1:0', '--target', upstream.address, '--accept-proxy'],
    ...['--allow', '127.0.0.9'], // the real client's address, not haproxy's 127.0.0.1
    ...JSON_LOG,
  ]);
  const front = await freePort();
  await startHaproxy(t, front, `127.0.0.1:${cli.port} send-proxy-v2`);
  let client: Socket | undefined;
  const endMs = Date.now() + deadline(10_000);
  while (client === undefined) {
    client = await clientFrom(front, '127.0.0.9').catch(() => undefined);
    if (client === undefined) {
      if (Date.now() > endMs) throw new Error('haproxy did not listen');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  await echoed(client, 'through haproxy');
  const port = client.localPort as number;
  client.end();
  const record = await closedOf(cli, port);
  assert.equal(record.client, `127.0.0.9:${port}`);
  assert.equal(record.cause, 'client_fin');
});

test('a bad value of a new flag exits 2 with one line naming the flag', async (t) => {
  const base = ['--listen', '127.0.0.1:0', '--target', '127.0.0.1:9'];
  const cases: [string[], RegExp][] = [
    [['--allow', '10.1.0.0/8'], /^l4proxy: --allow: .*did you mean 10\.0\.0\.0\/8\?$/],
    [['--deny', 'example.com'], /^l4proxy: --deny: expected an IP address or CIDR range/],
    [['--max-connections-per-ip', '0'], /^l4proxy: --max-connections-per-ip: expected a whole/],
    [['--connection-rate-per-ip', '5'], /^l4proxy: --connection-rate-per-ip: expected N\/DUR/],
    [['--send-proxy', 'v3'], /^l4proxy: --send-proxy: expected one of v1, v2, got "v3"$/],
    [['--proxy-header-timeout', '5x'], /^l4proxy: --proxy-header-timeout: /],
    [['--accept-proxy=yes'], /^l4proxy: --accept-proxy takes no value$/],
  ];
  await Promise.all(
    cases.map(async ([flags, message]) => {
      const result = await runCli(t, [...base, ...flags]);
      assert.equal(result.status, 2, flags.join(' '));
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0] ?? '', message);
    }),
  );
});

test('in a config file: defaults and a listener set them, check shows them, a bad CIDR names its place', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-admission-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'proxy.yaml');
  writeFileSync(
    file,
    [
      'defaults:',
      '  deny: [192.0.2.7]',
      '  proxy_header_timeout: 2s',
      'listeners:',
      '  - name: edge',
      '    listen: 127.0.0.1:0',
      '    targets: [127.0.0.1:9]',
      '    allow: [10.0.0.0/8, "::1"]',
      '    max_connections_per_ip: 3',
      '    connection_rate_per_ip: 20/1s',
      '    accept_proxy: true',
      '    send_proxy: v1',
      '',
    ].join('\n'),
  );
  const check = await runCli(t, ['check', '--config', file]);
  assert.equal(check.status, 0, check.stderr);
  for (const shown of [
    'allow 10.0.0.0/8 ::1/128',
    'deny 192.0.2.7/32',
    'per-IP connections 3',
    'per-IP rate 20/1s',
    'accept-proxy on',
    'send-proxy v1',
    'proxy header 2s',
  ]) {
    assert.ok(check.stdout.includes(shown), `check shows ${shown}: ${check.stdout}`);
  }
  writeFileSync(
    file,
    'listeners:\n  - listen: 127.0.0.1:0\n    targets: [127.0.0.1:9]\n    allow: [10.0.0.0/8, 10.1.0.0/8]\n',
  );
  const bad = await runCli(t, ['check', '--config', file]);
  assert.equal(bad.status, 2);
  assert.match(
    bad.stderr,
    /^l4proxy: .*proxy\.yaml:4:\d+ listeners\[0\]\.allow\[1\]: .*10\.1\.0\.0\/8/,
  );
  assert.equal(bad.stderr.trimEnd().split('\n').length, 1);
});

test('SIGHUP with a changed allow list applies to new connections', async (t) => {
  const upstream = await echoUpstream(t);
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-admission-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'proxy.yaml');
  const port = await freePort();
  const write = (allow: string) =>
    writeFileSync(
      file,
      `listeners:\n  - listen: 127.0.0.1:${port}\n    targets: [${upstream.address}]\n    allow: [${allow}]\n`,
    );
  write('127.0.0.2');
  const cli = spawnCli(t, ['--config', file, ...JSON_LOG]);
  await cli.waitForRecord((r) => r.msg === 'listening', 5000, 'listening');
  const running = Object.assign(cli, { port });
  await refusedWith(running, '127.0.0.3', 'denied');
  const kept = await clientFrom(port, '127.0.0.2');
  await echoed(kept, 'before');
  write('127.0.0.3');
  process.kill(cli.child.pid as number, 'SIGHUP');
  await cli.waitForRecord((r) => r.msg === 'config reloaded', 5000, 'config reloaded');
  const now = await clientFrom(port, '127.0.0.3');
  await echoed(now, 'allowed now');
  await refusedWith(running, '127.0.0.2', 'denied');
  // The connection open before the reload is not touched.
  await echoed(kept, 'still');
  for (const socket of [kept, now]) socket.destroy();
});
