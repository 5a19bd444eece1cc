/**
 * `--balance`, backup targets, `--queue-timeout` and a reload that switches the
 * policy, end to end: the built CLI (dist/cli.js) in front of real target servers on
 * 127.0.0.1 that say who they are (test/helpers/targets.ts). Build first
 * (`npm run build`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type CliChild, type LogRecord, spawnCli, startCli } from '../helpers/cli.js';
import { connectClient } from '../helpers/net.js';
import { ask, isHealth, startTagTarget, tagOf } from '../helpers/targets.js';

/** tempFile is a path in a fresh directory removed after the test. */
function tempFile(t: TestContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-balance-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, name);
}

/** closedCount is the number of `connection closed` records so far. */
function closedCount(cli: CliChild): number {
  return cli.records().filter((r) => r.msg === 'connection closed').length;
}

/** waitClosed waits for the n-th `connection closed` record (1-based) and returns it. */
async function waitClosed(cli: CliChild, n: number): Promise<LogRecord> {
  await cli.waitForRecord(() => closedCount(cli) >= n, 5000, `${n} connection closed records`);
  return cli.records().filter((r) => r.msg === 'connection closed')[n - 1] as LogRecord;
}

/** startFileCli writes `yaml` and starts the CLI with it, waiting for `listening`. */
async function startFileCli(t: TestContext, yaml: string, args: readonly string[] = []) {
  const file = tempFile(t, 'proxy.yaml');
  writeFileSync(file, yaml);
  const cli = await startCli(t, ['--config', file, '--log-format', 'json', ...args]);
  return Object.assign(cli, { file });
}

test('--balance least-connections sends a new client to the target with fewer open connections', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const cli = await startCli(t, [
    ...['-l', '127.0.0.1:0', '-t', a.address, '-t', b.address],
    ...['--balance', 'least-connections', '--log-format', 'json'],
  ]);
  const held = await ask(t, cli.port); // open, on X
  const other = await ask(t, cli.port); // X has one: Y
  assert.notEqual(other.tag, held.tag);
  other.socket.destroy();
  await waitClosed(cli, 1);
  // Round-robin would now give X its turn; least-connections gives the idle Y.
  assert.equal(await tagOf(t, cli.port), other.tag);
  assert.equal(await tagOf(t, cli.port), other.tag);
  held.socket.destroy();
});

test('--balance source-hash sends one client address to the same target on every connection', async (t) => {
  const targets = await Promise.all(['A', 'B', 'C'].map((tag) => startTagTarget(t, tag)));
  const cli = await startCli(t, [
    ...['-l', '127.0.0.1:0', '--balance', 'source-hash'],
    ...targets.flatMap((target) => ['-t', target.address]),
  ]);
  const seen = new Set<string>();
  for (let host = 2; host <= 13; host++) {
    const source = `127.0.0.${host}`;
    const first = await tagOf(t, cli.port, source);
    seen.add(first);
    for (let i = 0; i < 3; i++) assert.equal(await tagOf(t, cli.port, source), first, source);
  }
  assert.ok(seen.size >= 2, `12 addresses spread over the targets, got ${[...seen].join(',')}`);
});

test('a backup: true target gets clients only while the primary is down', async (t) => {
  const primary = await startTagTarget(t, 'P');
  const backup = await startTagTarget(t, 'S');
  const cli = await startFileCli(
    t,
    [
      'defaults: { health_interval: 50ms, health_fall: 2, health_rise: 2 }',
      'listeners:',
      '  - listen: 127.0.0.1:0',
      `    targets: ['${primary.address}', { address: '${backup.address}', backup: true }]`,
    ].join('\n'),
  );
  for (let i = 0; i < 4; i++) assert.equal(await tagOf(t, cli.port), 'P');
  await primary.stop();
  await cli.waitForRecord(isHealth('target down', primary.address), 5000, 'the primary down');
  for (let i = 0; i < 4; i++) assert.equal(await tagOf(t, cli.port), 'S');
  await primary.start();
  await cli.waitForRecord(isHealth('target up', primary.address), 5000, 'the primary up');
  for (let i = 0; i < 4; i++) assert.equal(await tagOf(t, cli.port), 'P');
  assert.equal(cli.records().filter(isHealth('target down', backup.address)).length, 0);
});

test('--max-connections 1 --queue-timeout 2s: a client waits for the slot, one that waits too long is closed with max_connections', async (t) => {
  const a = await startTagTarget(t, 'A');
  const cli = await startCli(t, [
    ...['-l', '127.0.0.1:0', '-t', a.address, '--log-format', 'json'],
    ...['--max-connections', '1', '--queue-timeout', '2s'],
  ]);
  const first = await ask(t, cli.port);
  const second = ask(t, cli.port, undefined, 10_000);
  // The second client is accepted and waits: nothing dials for it while the first holds the slot.
  assert.equal(a.sockets.size, 1);
  first.socket.destroy();
  const served = await second;
  assert.equal(served.tag, 'A');
  await waitClosed(cli, 1);
  const third = connectClient(cli.port);
  third.socket.write('WHO\n');
  const record = await waitClosed(cli, 2);
  assert.equal(record.cause, 'max_connections');
  assert.ok((record.duration_ms ?? 0) >= 1900, `waited the queue timeout: ${record.duration_ms}`);
  assert.equal(record.upstream, null);
  await third.closed;
  assert.equal(third.received().length, 0);
  served.socket.destroy();
});

test('a SIGHUP reload switching --balance applies to new connections; open ones stay', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const yaml = (balance: string) =>
    [
      'listeners:',
      '  - name: web',
      '    listen: 127.0.0.1:0',
      `    balance: ${balance}`,
      `    targets: ['${a.address}', '${b.address}']`,
    ].join('\n');
  const cli = await startFileCli(t, yaml('round-robin'));
  const held = await ask(t, cli.port); // X, held open
  const other = await ask(t, cli.port); // Y
  other.socket.destroy();
  await waitClosed(cli, 1);
  writeFileSync(cli.file, yaml('least-connections'));
  cli.child.kill('SIGHUP');
  const reload = await cli.waitForRecord((r) => r.msg === 'config reloaded', 5000, 'the reload');
  assert.deepEqual(reload.changed, ['web']);
  // Round-robin would give X its turn; least-connections gives the idle Y.
  assert.equal(await tagOf(t, cli.port), other.tag);
  held.socket.write('WHO\n');
  const again = await new Promise<string>((resolve) =>
    held.socket.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())),
  );
  assert.equal(again, held.tag, 'the open connection still reaches its target');
  held.socket.destroy();
});

test('l4proxy check shows the balancing and health options and backup targets', async (t) => {
  const file = tempFile(t, 'proxy.yaml');
  writeFileSync(
    file,
    [
      'defaults: { balance: source-hash, queue_timeout: 5s }',
      'listeners:',
      '  - listen: 127.0.0.1:7001',
      '    health_interval: 1s',
      '    health_fall: 4',
      '    health: { send: "PING\\n", expect: PONG }',
      "    targets: ['127.0.0.1:7002', { address: '127.0.0.1:7003', backup: true }]",
    ].join('\n'),
  );
  const cli = spawnCli(t, ['check', '--config', file]);
  const exit = await cli.waitForExit(5000);
  assert.equal(exit.status, 0, cli.stderr());
  const out = cli.stdout();
  assert.match(out, /127\.0\.0\.1:7003 \(backup\)/);
  assert.match(out, /balance source-hash/);
  assert.match(out, /health every 1s/);
  assert.match(out, /fall 4/);
  assert.match(out, /rise 2/);
  assert.match(out, /health check send "PING\\n" expect "PONG"/);
  assert.match(out, /queue 5s/);
});
