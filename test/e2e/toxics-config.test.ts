/**
 * Toxics in the config file (issue #12), through the built CLI: a listener's `toxics`
 * act from the first connection (a `limit_data` cuts the echo after exactly N bytes,
 * and the access record says cause `toxic` and the toxic's name); the Toxiproxy API
 * lists them; `l4proxy check` prints them; a bad toxic is a positioned one-line error
 * (exit 2); a reload (SIGHUP) that changes the list replaces the file's toxics and
 * keeps those added over the API. Build first.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { Toxiproxy } from 'toxiproxy-node-client';
import { runCli, spawnCli, withTimeout } from '../helpers/cli.js';
import { connectClient, echo, startUpstream, waitFor } from '../helpers/net.js';
import { tempDir } from '../helpers/tls.js';

function configText(upstream: string, toxics: readonly string[]): string {
  return [
    'admin:',
    '  listen: 127.0.0.1:0',
    'listeners:',
    '  - name: echo',
    '    listen: 127.0.0.1:0',
    `    targets: [${upstream}]`,
    '    toxics:',
    ...toxics.map((line) => `      - ${line}`),
    '',
  ].join('\n');
}

interface ToxicJson {
  name: string;
  type: string;
  stream: string;
}

/** toxicsOf: the toxics of listener `echo`, as Toxiproxy's API lists them. */
async function toxicsOf(base: string): Promise<ToxicJson[]> {
  const reply = await fetch(`${base}/proxies/echo/toxics`);
  assert.equal(reply.status, 200);
  return (await reply.json()) as ToxicJson[];
}

const CUT = '{ name: cut, type: limit_data, attributes: { bytes: 10 } }';

async function setup(t: TestContext, toxics: readonly string[]) {
  const upstream = await startUpstream(t, echo);
  const dir = await tempDir(t, 'l4proxy-toxics-e2e-');
  const file = join(dir, 'proxy.yaml');
  writeFileSync(file, configText(upstream.address, toxics));
  return { upstream, dir, file };
}

test('toxics from the config file act from the start; the access record names the toxic', async (t) => {
  const { file } = await setup(t, [CUT]);
  const cli = spawnCli(t, ['--config', file, '--log-format', 'json']);
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 5000, 'listening');
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 5000, 'admin');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  client.socket.write('0123456789abcdefghij');
  await withTimeout(client.ended, 5000, 'the close by limit_data');
  assert.equal(client.received().toString(), '0123456789');
  const closed = await cli.waitForRecord((r) => r.msg === 'connection closed', 5000, 'the record');
  assert.equal(closed.cause, 'toxic');
  assert.equal(closed.toxic, 'cut');
  const toxics = await toxicsOf(`http://${admin.address}`);
  assert.deepEqual(
    toxics.map((x) => [x.name, x.type, x.stream]),
    [['cut', 'limit_data', 'downstream']],
  );
});

test('with --workers 2 every worker applies the file’s toxics', async (t) => {
  const { file } = await setup(t, [CUT]);
  const cli = spawnCli(t, ['--config', file, '--workers', '2', '--log-format', 'json']);
  const pids = () =>
    cli
      .records()
      .filter((r) => r.msg === 'worker started')
      .map((r) => (r as { pid?: number }).pid ?? 0);
  t.after(() => {
    for (const pid of pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  await cli.waitForRecord((r) => r.msg === 'workers listening', 10_000, 'every worker to listen');
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 1000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);
  for (let i = 0; i < 6; i += 1) {
    const client = connectClient(port);
    t.after(() => client.socket.destroy());
    client.socket.write('0123456789abcdefghij');
    await withTimeout(client.ended, 5000, `the close by limit_data (${i})`);
    assert.equal(client.received().toString(), '0123456789');
  }
  await waitFor(
    () => cli.records().filter((r) => r.msg === 'connection closed').length === 6,
    5000,
    'the six records',
  );
  const closed = cli.records().filter((r) => r.msg === 'connection closed');
  assert.ok(closed.every((r) => r.cause === 'toxic' && r.toxic === 'cut'));
  const workers = new Set(closed.map((r) => (r as { worker?: number }).worker));
  assert.equal(workers.size, 2, 'both workers relayed (round-robin)');
});

test('a reload that changes the list replaces the file’s toxics; one added over the API stays', async (t) => {
  const { file, upstream } = await setup(t, [CUT, '{ type: noop }']);
  const cli = spawnCli(t, ['--config', file, '--log-format', 'json']);
  const admin = await cli.waitForRecord((r) => r.msg === 'admin listening', 5000, 'admin');
  const api = new Toxiproxy(`http://${admin.address}`);
  await (await api.get('echo')).addToxic({ name: 'mine', type: 'noop' } as never);
  writeFileSync(
    file,
    configText(upstream.address, ['{ name: slow, type: latency, attributes: { latency: 1 } }']),
  );
  cli.child.kill('SIGHUP');
  await cli.waitForRecord((r) => r.msg === 'config reloaded', 5000, 'the reload');
  const names = (await toxicsOf(`http://${admin.address}`)).map((x) => x.name);
  assert.deepEqual(names, ['mine', 'slow']);
});

test('l4proxy check lists the toxics; a bad toxic is one positioned line, exit 2', async (t) => {
  const { file, dir } = await setup(t, [CUT]);
  const ok = await runCli(t, ['check', '--config', file]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(
    ok.stdout.split('\n').includes('    toxic cut: limit_data downstream (bytes 10)'),
    ok.stdout,
  );
  for (const [toxic, place] of [
    ['{ type: latency, attributes: { latency: 5, lag: 1 } }', 'attributes.lag'],
    ['{ type: latency, attributes: { latency: -5 } }', 'attributes.latency'],
    [
      '{ type: slicer, attributes: { average_size: 4, size_variation: 4 } }',
      'attributes.size_variation',
    ],
    ['{ type: latency, stream: sideways }', 'stream'],
    ['{ type: laggy }', 'type'],
    [CUT, 'name'],
  ] as const) {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, configText('127.0.0.1:1', [CUT, toxic]));
    for (const args of [
      ['check', '--config', bad],
      ['--config', bad],
    ]) {
      const result = await runCli(t, args);
      assert.equal(result.status, 2, result.stderr);
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.ok(lines[0]?.includes(`listeners[0].toxics[1].${place}: `), `${toxic}: ${lines[0]}`);
    }
  }
});
