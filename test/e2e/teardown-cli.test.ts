/**
 * Resets through the built CLI (dist/cli.js; run `npm run build` first) where the
 * target is a Unix domain socket, which has no RST: a client reset used to throw
 * ERR_INVALID_HANDLE_TYPE out of a socket listener and end the process, and six of them
 * ended `--workers 2` as a whole (more than 5 worker deaths within 10 s).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnCli, withTimeout } from '../helpers/cli.js';
import { connectClient, waitFor } from '../helpers/net.js';

test('client resets on a TCP listener to a unix: target leave --workers 2 serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-teardown-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'up.sock');
  const sockets: Socket[] = [];
  const upstream = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  upstream.listen(path);
  await once(upstream, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    upstream.close();
  });

  const cli = spawnCli(t, [
    '--workers',
    '2',
    '--listen',
    '127.0.0.1:0',
    '--target',
    `unix:${path}`,
    '--log-format',
    'json',
  ]);
  await cli.waitForRecord((r) => r.msg === 'workers listening', 10_000, 'every worker to listen');
  const listening = await cli.waitForRecord((r) => r.msg === 'listening', 1000, 'listening');
  const port = Number(/:(\d+)$/.exec(listening.address ?? '')?.[1]);

  const resets = 6;
  for (let i = 0; i < resets; i++) {
    const client = connectClient(port);
    t.after(() => client.socket.destroy());
    client.socket.write('hi');
    await waitFor(() => client.received().length === 2, 5000, `the echo through client ${i}`);
    client.socket.resetAndDestroy();
    await withTimeout(client.closed, 5000, `client ${i} to close`);
  }
  const closed = (): number =>
    cli.records().filter((r) => r.msg === 'connection closed' && r.cause === 'client_reset').length;
  await waitFor(() => closed() === resets, 5000, `${resets} client_reset records`);
  assert.equal(cli.records().filter((r) => r.msg === 'worker died').length, 0);

  // Still serving: a round trip, then a clean shutdown.
  const client = connectClient(port);
  t.after(() => client.socket.destroy());
  client.socket.end('still here');
  await withTimeout(client.closed, 5000, 'the last echo');
  assert.equal(client.received().toString(), 'still here');
  cli.child.kill('SIGTERM');
  const exit = await cli.waitForExit(10_000);
  assert.equal(exit.status, 0);
});
