/**
 * The built CLI as a drop-in `toxiproxy-server`: `l4proxy --admin 127.0.0.1:0` alone
 * starts with no listeners, then serves a proxy created through Toxiproxy's API
 * with the npm `toxiproxy-node-client`, and exits 0 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Toxiproxy } from 'toxiproxy-node-client';
import { runCli, spawnCli } from '../helpers/cli.js';
import { connectClient, echo, startUpstream } from '../helpers/net.js';

test('--admin alone starts with no listeners and serves a proxy created over the Toxiproxy API', async (t) => {
  const upstream = await startUpstream(t, echo);
  const cli = spawnCli(t, ['--admin', '127.0.0.1:0', '--log-format', 'json']);
  const record = await cli.waitForRecord(
    (r) => r.msg === 'admin listening',
    5000,
    'admin listening',
  );
  const base = `http://${record.address}`;
  assert.equal(cli.records().filter((r) => r.msg === 'listening').length, 0);
  const listeners = await (await fetch(`${base}/api/listeners`)).json();
  assert.deepEqual(listeners, []);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);

  const toxiproxy = new Toxiproxy(base);
  assert.deepEqual(await toxiproxy.getAll(), {});
  const proxy = await toxiproxy.createProxy({
    name: 'echo',
    listen: '127.0.0.1:0',
    upstream: upstream.address,
  });
  await cli.waitForRecord(
    (r) => r.msg === 'listening' && r['listener'] === 'echo',
    5000,
    'listening',
  );
  const client = connectClient(Number(/:(\d+)$/.exec(proxy.listen)?.[1]));
  client.socket.end('through the CLI');
  await client.closed;
  assert.equal(client.received().toString(), 'through the CLI');

  cli.child.kill('SIGTERM');
  const exit = await cli.waitForExit(10_000);
  assert.equal(exit.status, 0);
});

test('--admin with --target but no --listen is still a usage error', async (t) => {
  const result = await runCli(t, ['--admin', '127.0.0.1:0', '--target', '127.0.0.1:1']);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /^l4proxy: --listen is required/);
});
