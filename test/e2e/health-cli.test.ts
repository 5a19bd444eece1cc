/**
 * Active health checks end to end: the built CLI (dist/cli.js) with `--health-*` and
 * the config file's `health: { send, expect }`, in front of real target servers on
 * 127.0.0.1 that are stopped and started again (test/helpers/targets.ts); the
 * `target down` / `target up` records, `no_healthy_target`, `/metrics` and
 * `/api/listeners`; and bad values, refused with exit 2 and one line. Build first
 * (`npm run build`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type LogRecord, runCli, spawnCli, startCli, withTimeout } from '../helpers/cli.js';
import { connectClient } from '../helpers/net.js';
import { type HealthRecord, isHealth, startTagTarget, tagOf } from '../helpers/targets.js';

const CHECKS = ['--health-interval', '50ms', '--health-fall', '2', '--health-rise', '2'];

function tempFile(t: TestContext, name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4proxy-health-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function count(records: readonly LogRecord[], match: (r: LogRecord) => boolean): number {
  return records.filter(match).length;
}

test('--health-interval: a stopped target is marked down once and skipped; all down closes clients with no_healthy_target; restarted, it is up again', async (t) => {
  const a = await startTagTarget(t, 'A');
  const b = await startTagTarget(t, 'B');
  const cli = await startCli(t, [
    ...['-l', '127.0.0.1:0', '-t', a.address, '-t', b.address, '--log-format', 'json'],
    ...CHECKS,
    ...['--admin', '127.0.0.1:0'],
  ]);
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 5000, 'the admin');
  const adminUrl = `http://${admin.address}`;

  await a.stop();
  const down = (await cli.waitForRecord(
    isHealth('target down', a.address),
    5000,
    'A down',
  )) as HealthRecord;
  assert.equal(down.level, 'warn');
  assert.ok(typeof down.reason === 'string' && down.reason !== '', 'a reason');
  for (let i = 0; i < 4; i++) assert.equal(await tagOf(t, cli.port), 'B');

  const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
  assert.match(metrics, new RegExp(`proxy_target_up\\{[^}]*target="${a.address}"[^}]*\\} 0`));
  assert.match(metrics, new RegExp(`proxy_target_up\\{[^}]*target="${b.address}"[^}]*\\} 1`));
  const [listener] = (await (await fetch(`${adminUrl}/api/listeners`)).json()) as {
    targets: { address: string; state: string; connections: number; backup: boolean }[];
  }[];
  assert.deepEqual(
    listener?.targets.map((x) => [x.address, x.state, x.connections, x.backup]),
    [
      [a.address, 'down', 0, false],
      [b.address, 'up', 0, false],
    ],
  );

  await b.stop();
  await cli.waitForRecord(isHealth('target down', b.address), 5000, 'B down');
  await cli.waitForRecord((r) => r.msg === 'no healthy target: every target is down', 5000);
  for (let i = 0; i < 3; i++) {
    const client = connectClient(cli.port);
    // Closed at once: the client sees the end (it keeps its own side open: allowHalfOpen).
    await withTimeout(Promise.race([client.ended, client.closed]), 5000, 'the client closed');
    client.socket.destroy();
    assert.equal(client.received().length, 0);
  }
  await cli.waitForRecord(
    () => count(cli.records(), (r) => r.cause === 'no_healthy_target') === 3,
    5000,
    'three clients closed with no_healthy_target',
  );
  for (const record of cli.records().filter((r) => r.cause === 'no_healthy_target')) {
    assert.equal(record.msg, 'connection closed');
    assert.equal(record.upstream, null);
  }
  assert.equal(
    count(cli.records(), (r) => r.msg.startsWith('no healthy target')),
    1,
    'said once',
  );

  await a.start();
  const up = (await cli.waitForRecord(
    isHealth('target up', a.address),
    5000,
    'A up',
  )) as HealthRecord;
  assert.equal(up.level, 'info');
  for (let i = 0; i < 3; i++) assert.equal(await tagOf(t, cli.port), 'A');
  // Many failed checks while it was down, one record of each change.
  assert.equal(count(cli.records(), isHealth('target down', a.address)), 1);
  assert.equal(count(cli.records(), isHealth('target up', a.address)), 1);
});

test('health: { send, expect } marks down a target that answers, but not what is expected', async (t) => {
  const good = await startTagTarget(t, 'G', 'PONG');
  const wrong = await startTagTarget(t, 'W', 'NOPE');
  const file = tempFile(
    t,
    'proxy.yaml',
    [
      'defaults: { health_interval: 50ms, health_fall: 2, health_rise: 2 }',
      'listeners:',
      '  - listen: 127.0.0.1:0',
      '    health: { send: "PING\\n", expect: PONG }',
      `    targets: ['${good.address}', '${wrong.address}']`,
    ].join('\n'),
  );
  const cli = await startCli(t, ['--config', file, '--log-format', 'json']);
  const down = (await cli.waitForRecord(
    isHealth('target down', wrong.address),
    5000,
    'W down',
  )) as HealthRecord;
  // W answers only what was sent (PING), and not what is expected.
  assert.match(String(down.reason), /answer ended without "PONG"/);
  for (let i = 0; i < 4; i++) assert.equal(await tagOf(t, cli.port), 'G');
  assert.equal(count(cli.records(), isHealth('target down', good.address)), 0);
});

const BAD_FLAGS: { args: string[]; flag: string }[] = [
  { args: ['--balance', 'fastest'], flag: '--balance' },
  { args: ['--health-interval', '5x'], flag: '--health-interval' },
  { args: ['--health-timeout', '-1s'], flag: '--health-timeout' },
  { args: ['--health-rise', '0'], flag: '--health-rise' },
  { args: ['--health-fall', 'two'], flag: '--health-fall' },
  { args: ['--queue-timeout', '1d'], flag: '--queue-timeout' },
];

for (const { args, flag } of BAD_FLAGS) {
  test(`a bad ${flag} exits 2 with one line naming it`, async (t) => {
    const result = await runCli(t, ['-l', '127.0.0.1:0', '-t', '127.0.0.1:9', ...args]);
    assert.equal(result.status, 2, result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.ok(lines[0]?.includes(flag), lines[0]);
  });
}

const BAD_KEYS: { yaml: string; key: string }[] = [
  { yaml: '    balance: fastest', key: 'listeners[0].balance' },
  { yaml: '    health_rise: 0', key: 'listeners[0].health_rise' },
  { yaml: '    health: { send: 1 }', key: 'listeners[0].health.send' },
  { yaml: '    health: { interval: 5s }', key: 'listeners[0].health.interval' },
  { yaml: '    queue_timeout: soon', key: 'listeners[0].queue_timeout' },
];

for (const { yaml, key } of BAD_KEYS) {
  test(`a bad ${key} in the config file exits 2 with one line naming it`, async (t) => {
    const file = tempFile(
      t,
      'proxy.yaml',
      ['listeners:', '  - listen: 127.0.0.1:0', "    targets: ['127.0.0.1:9']", yaml].join('\n'),
    );
    for (const args of [
      ['--config', file],
      ['check', '--config', file],
    ]) {
      const result = await runCli(t, args);
      assert.equal(result.status, 2, result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.ok(lines[0]?.includes(key), lines[0]);
    }
  });
}

test('a target with a bad backup value exits 2 with one line naming it', async (t) => {
  const file = tempFile(
    t,
    'proxy.yaml',
    [
      'listeners:',
      '  - listen: 127.0.0.1:0',
      "    targets: [{ address: '127.0.0.1:9', backup: yes please }]",
    ].join('\n'),
  );
  const cli = spawnCli(t, ['--config', file]);
  const exit = await cli.waitForExit(5000);
  assert.equal(exit.status, 2, cli.stderr());
  assert.equal(cli.lines().length, 1, cli.stderr());
  assert.match(cli.stderr(), /listeners\[0\]\.targets\[0\]\.backup/);
});
