/**
 * The admin server and SIGUSR1 from the built CLI: flags, config file section,
 * token enforcement, reload over HTTP.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { runCli, spawnCli } from '../helpers/cli.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-admin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startWithAdmin(t: TestContext, args: string[]) {
  const cli = spawnCli(t, [...args, '--log-format', 'json']);
  const record = await cli.waitForRecord(
    (r) => r.msg === 'admin listening',
    5000,
    'admin listening',
  );
  return { cli, admin: `http://${record.address}` };
}

test('a non-loopback --admin without a token is a usage error, naming the flag', async (t) => {
  const result = await runCli(t, [
    '-l',
    '127.0.0.1:0',
    '-t',
    '127.0.0.1:1',
    '--admin',
    '0.0.0.0:0',
  ]);
  assert.equal(result.status, 2);
  assert.match(
    result.stderr,
    /^l4proxy: --admin 0\.0\.0\.0:0: a non-loopback admin address needs --admin-token-file/,
  );
  assert.equal(result.stderr.trim().split('\n').length, 1);
  const lone = await runCli(t, [
    '-l',
    '127.0.0.1:0',
    '-t',
    '127.0.0.1:1',
    '--admin-token-file',
    '/x',
  ]);
  assert.equal(lone.status, 2);
  assert.match(lone.stderr, /--admin-token-file needs --admin/);
});

test('--admin serves the API; --admin-token-file makes every request need the token', async (t) => {
  const dir = tempDir(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'let-me-in\n');
  const upstream = await startUpstream(t, echo);
  const { admin } = await startWithAdmin(t, [
    '-l',
    '127.0.0.1:0',
    '-t',
    upstream.address,
    '--admin',
    '127.0.0.1:0',
    '--admin-token-file',
    tokenFile,
  ]);
  assert.equal((await fetch(`${admin}/api/status`)).status, 401);
  const wrong = await fetch(`${admin}/api/status`, { headers: { Authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  assert.deepEqual(await wrong.json(), { error: 'missing or wrong token' });
  const right = await fetch(`${admin}/api/status`, {
    headers: { Authorization: 'Bearer let-me-in' },
  });
  assert.equal(right.status, 200);
  const status = (await right.json()) as { version: string; connections_active: number };
  assert.equal(status.connections_active, 0);
});

test('admin: in the config file, and POST /api/reload re-reads the file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proxy.yaml');
  const a = await startUpstream(t, (s) => s.end('A'));
  const b = await startUpstream(t, (s) => s.end('B'));
  const text = (target: string): string =>
    `admin:\n  listen: 127.0.0.1:0\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    targets: [${target}]\n`;
  writeFileSync(file, text(a.address));
  const { cli, admin } = await startWithAdmin(t, ['--config', file]);
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 5000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  writeFileSync(file, text(b.address));
  const reply = await fetch(`${admin}/api/reload`, { method: 'POST' });
  assert.equal(reply.status, 200);
  assert.deepEqual(await reply.json(), { added: [], removed: [], changed: ['web'] });
  const client = connectClient(port);
  await client.ended;
  assert.equal(client.received().toString(), 'B');
  writeFileSync(file, 'listeners: [');
  const refused = await fetch(`${admin}/api/reload`, { method: 'POST' });
  assert.equal(refused.status, 422);
  assert.match(((await refused.json()) as { error: string }).error, /proxy\.yaml:\d+:\d+: /);
});

test('SIGUSR1 writes a snapshot of counters and live connections to the log', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(t, ['-l', '127.0.0.1:0', '-t', upstream.address, '--log-format', 'json']);
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 5000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  const client = connectClient(port);
  client.socket.write('abc');
  await waitFor(() => client.received().length === 3, 5000, 'echo');
  cli.child.kill('SIGUSR1');
  const snapshot = await cli.waitForRecord((r) => r.msg === 'snapshot', 5000, 'snapshot');
  assert.equal(snapshot['connections_active' as keyof typeof snapshot], 1);
  const live = await cli.waitForRecord((r) => r.msg === 'live connection', 5000, 'live connection');
  assert.equal(live['bytes_to_upstream' as keyof typeof live], 3);
  assert.equal(cli.exit, null, 'SIGUSR1 does not stop the proxy');
  client.socket.destroy();
});
