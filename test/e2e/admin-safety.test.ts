/**
 * The admin server's start, stop and probes through the built CLI: the Unix socket
 * file is removed on a clean exit and a stale one is replaced (a regular file never
 * is), an admin address in use stops the start before anything is reported as
 * listening, /healthz and /readyz (single process and --workers), and --admin-host.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type CliChild, runCli, spawnCli } from '../helpers/cli.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-admin-safety-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** adminListening waits for the `admin listening` record of a CLI started with --log-format json. */
async function adminListening(cli: CliChild): Promise<string> {
  const record = await cli.waitForRecord(
    (r) => r.msg === 'admin listening',
    10_000,
    'admin listening',
  );
  return record.address ?? '';
}

interface Answer {
  status: number;
  body: string;
}

/** ask sends one request with exactly these headers and reads the answer. */
function ask(
  where: { port: number } | { socketPath: string },
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ ...where, host: '127.0.0.1', path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function portOf(address: string): number {
  return Number(/:(\d+)$/.exec(address)?.[1]);
}

test('the admin Unix socket is removed on a clean shutdown, so the next start binds it again', async (t) => {
  const upstream = await startUpstream(t, echo);
  const socketPath = join(tempDir(t), 'admin.sock');
  const args = [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--admin',
    `unix:${socketPath}`,
    '--log-format',
    'json',
  ];
  for (let run = 1; run <= 2; run++) {
    const cli = spawnCli(t, args);
    await adminListening(cli);
    assert.equal((await ask({ socketPath }, '/api/status')).status, 200);
    cli.child.kill('SIGTERM');
    const exit = await cli.waitForExit(10_000);
    assert.equal(exit.status, 0, `run ${run}: ${cli.stderr()}`);
    assert.ok(!existsSync(socketPath), `run ${run}: the socket file is gone`);
    assert.ok(!cli.stderr().includes('address in use'));
  }
});

test('a stale admin socket (its process killed) is replaced; a regular file there is never deleted', async (t) => {
  const upstream = await startUpstream(t, echo);
  const dir = tempDir(t);
  const socketPath = join(dir, 'admin.sock');
  const args = [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--admin',
    `unix:${socketPath}`,
    '--log-format',
    'json',
  ];
  const killed = spawnCli(t, args);
  await adminListening(killed);
  killed.child.kill('SIGKILL');
  await killed.waitForExit(10_000);
  assert.ok(existsSync(socketPath), 'SIGKILL leaves the socket file behind');

  const next = spawnCli(t, args);
  await adminListening(next);
  assert.ok(next.records().some((r) => r.msg === 'removing stale unix socket'));
  assert.equal((await ask({ socketPath }, '/api/status')).status, 200);
  next.child.kill('SIGTERM');
  assert.equal((await next.waitForExit(10_000)).status, 0);

  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'keep me\n');
  const refused = await runCli(
    t,
    ['--listen', '127.0.0.1:0', '--target', upstream.address, '--admin', `unix:${file}`],
    10_000,
  );
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /admin listen unix:.*notes\.txt: exists and is not a socket/);
  assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
});

for (const workers of [[], ['--workers', '2']]) {
  const mode = workers.length === 0 ? 'one process' : '--workers 2';
  test(`${mode}: an admin address in use exits 1 naming it, and nothing is reported as listening`, async (t) => {
    const upstream = await startUpstream(t, echo);
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    t.after(() => taken.close());
    const address = taken.address();
    assert.ok(address !== null && typeof address === 'object');
    const result = await runCli(
      t,
      [
        ...workers,
        '--listen',
        '127.0.0.1:0',
        '--target',
        upstream.address,
        '--admin',
        `127.0.0.1:${address.port}`,
      ],
      15_000,
    );
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      new RegExp(`admin listen 127\\.0\\.0\\.1:${address.port}: address in use`),
    );
    assert.doesNotMatch(result.stderr, /listening/);
  });
}

test('/healthz and /readyz: ready once listening, 503 while draining, no token needed', async (t) => {
  const upstream = await startUpstream(t, echo);
  const dir = tempDir(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'secret\n');
  const cli = spawnCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--admin',
    '127.0.0.1:0',
    '--admin-token-file',
    tokenFile,
    '--shutdown-timeout',
    '30s',
    '--log-format',
    'json',
  ]);
  const port = portOf(await adminListening(cli));
  assert.equal((await ask({ port }, '/api/status')).status, 401);
  assert.deepEqual(await ask({ port }, '/healthz'), { status: 200, body: 'ok\n' });
  assert.deepEqual(await ask({ port }, '/readyz'), { status: 200, body: 'ready\n' });

  // An open connection keeps the drain going while /readyz is asked.
  const listening = cli.records().find((r) => r.msg === 'listening');
  const client = connectClient(portOf(listening?.address ?? ''));
  t.after(() => client.socket.destroy());
  client.socket.write('x');
  await waitFor(() => client.received().toString() === 'x', 5000, 'the echo through the proxy');
  cli.child.kill('SIGTERM');
  await cli.waitForRecord((r) => r.msg === 'shutting down', 10_000, 'shutting down');
  assert.deepEqual(await ask({ port }, '/readyz'), { status: 503, body: 'not ready\n' });
  assert.equal((await ask({ port }, '/healthz')).status, 200);
  client.socket.end();
  assert.equal((await cli.waitForExit(10_000)).status, 0);
});

test('--workers 2: /readyz answers from the primary once every worker listens', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(t, [
    '--workers',
    '2',
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--admin',
    '127.0.0.1:0',
    '--log-format',
    'json',
  ]);
  const port = portOf(await adminListening(cli));
  assert.ok(cli.records().some((r) => r.msg === 'workers listening'));
  assert.deepEqual(await ask({ port }, '/readyz'), { status: 200, body: 'ready\n' });
  assert.deepEqual(await ask({ port }, '/healthz'), { status: 200, body: 'ok\n' });
  cli.child.kill('SIGTERM');
  assert.equal((await cli.waitForExit(15_000)).status, 0);
});

test('--admin-host and admin.hosts name the Host headers answered besides loopback', async (t) => {
  const upstream = await startUpstream(t, echo);
  const flags = spawnCli(t, [
    '--listen',
    '127.0.0.1:0',
    '--target',
    upstream.address,
    '--admin',
    '127.0.0.1:0',
    '--admin-host',
    'proxy.internal',
    '--log-format',
    'json',
  ]);
  const port = portOf(await adminListening(flags));
  assert.equal((await ask({ port }, '/api/status', { Host: 'proxy.internal:80' })).status, 200);
  assert.equal((await ask({ port }, '/api/status', { Host: 'evil.example' })).status, 403);

  const file = join(tempDir(t), 'proxy.yaml');
  writeFileSync(
    file,
    `admin:\n  listen: 127.0.0.1:0\n  hosts: [from-file.internal]\nlisteners:\n  - listen: 127.0.0.1:0\n    targets: [${upstream.address}]\n`,
  );
  const config = spawnCli(t, [
    '--config',
    file,
    '--admin-host',
    'from-flag.internal',
    '--log-format',
    'json',
  ]);
  const filePort = portOf(await adminListening(config));
  for (const host of ['from-file.internal', 'from-flag.internal', 'localhost']) {
    assert.equal((await ask({ port: filePort }, '/api/status', { Host: host })).status, 200, host);
  }
  assert.equal(
    (await ask({ port: filePort }, '/api/status', { Host: 'evil.example' })).status,
    403,
  );
});

test('a malformed --admin-host, or one without any admin server, is a usage error', async (t) => {
  const upstream = await startUpstream(t, echo);
  const base = ['--listen', '127.0.0.1:0', '--target', upstream.address];
  const bad = await runCli(t, [...base, '--admin', '127.0.0.1:0', '--admin-host', 'a b:80']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^l4proxy: --admin-host: expected a host name without a port/);
  const alone = await runCli(t, [...base, '--admin-host', 'proxy.internal']);
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /^l4proxy: --admin-host needs --admin ADDR/);
});
